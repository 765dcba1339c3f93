"""The fakedriver pytest plugin, for a checkout that does not install fakedriver.

An installed fakedriver registers its plugin, :mod:`fakedriver.pytest_plugin`, through
the ``pytest11`` entry point: nothing to write. From a checkout on ``sys.path`` instead,
a ``conftest.py`` can load it by this module's name::

    pytest_plugins = ["conftest_plugin"]

This module is not installed (a project's own ``conftest_plugin.py`` stays its own); it
only names the real plugin, and re-exports :class:`FakeNetDriverFactory` for annotations.
"""

from __future__ import annotations

from fakedriver.pytest_plugin import FakeNetDriverFactory

pytest_plugins = ["fakedriver.pytest_plugin"]

__all__ = ["FakeNetDriverFactory"]
