"""The core: the protocols on the state, the driver, the fault rules, the journal, the
clock, the persona. No I/O beyond the clock (no sockets, no files, no subprocesses), and it
imports nothing outside ``fakedriver.core``: what it needs of the world (host links, a
store) it names as protocols in ``ports``, which the layers above implement."""
