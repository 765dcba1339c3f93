"""The tests' helpers, one module per subject: ``wire`` (a fake driven over WSGI),
``rawhttp`` and ``serve_env`` (real sockets and ``fakedriver serve`` subprocesses),
``dockerd_env`` and ``dockerd_versions`` (an isolated real dockerd and what each version
does), ``swarm_env``, ``swarm_checks`` and ``swarm_transcripts`` (swarms, live and
replayed), ``browser_env`` (headless chromium), ``cookbook``, ``independent_plugin`` and
``transports``. ``conftest.py`` defines the fixtures and imports from here; tests import
from here too, never from ``conftest``."""
