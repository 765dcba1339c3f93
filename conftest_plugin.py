"""pytest plugin for fakedriver (registered through the ``pytest11`` entry point).

The ``fake_netdriver`` fixture and its routing, journal helpers and leak audit come with
the testing-kit work; until then this module only registers the plugin.
"""
