"""The state on disk: the ``--state`` SQLite store (each call's records committed), its
schema and the checks of what a file holds, and the JSON state file of earlier versions.
Imports only ``fakedriver.core``; the driver sees a store through ``core.ports.Store``."""
