"""Serving a fake on real sockets: the unix-socket (and TCP) server dockerd talks to, its
connections on h11, the control API, ``serving()`` (a served fake in a thread), log lines,
and veth links. Imports the core, the transports and ``fakedriver.fake``; never the
cluster, the CLI or the plugin bundle."""
