"""Being told when a module has been imported: a post-import hook, so that a client
library is patched when it is first imported, and not before (see
`registry.ClientRoutes`).

[`watch()`][fakedriver.transports.imports.watch] puts one finder first on
``sys.meta_path`` while anything is watched, and takes it out when nothing is. The finder
finds nothing itself: for a watched name it asks the finders after it, and wraps the
loader they found so that the callbacks run right after the module's code has run, in the
thread that imported it, before the import statement returns. The module keeps its own
loader (``__loader__``, ``__spec__.loader``): the wrapper is gone from it before its code
runs, so ``importlib.reload`` and everything that reads a module's loader see what they
would without fakedriver. An import that fails calls nothing (it is not imported).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

#: Called with the name of the module just imported.
Callback = Callable[[str], None]


class _Loader(Loader):
    """A found loader, which runs the callbacks of its module once its code has run."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader, attribute)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        made: ModuleType | None = self._loader.create_module(spec)
        return made

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # the module's own loader, as if never watched
        spec = module.__spec__
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        self._loader.exec_module(module)
        _imported(self._name)


class _Finder:
    """First on ``sys.meta_path`` while a name is watched: wraps the loader of a watched
    module that the other finders find."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in _WATCHED:
            return None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _Loader(spec.loader, name)
            return spec
        return None

    def invalidate_caches(self) -> None:
        """Nothing is cached here."""


#: name -> the callbacks waiting for its import (each once, in the order given).
_WATCHED: dict[str, list[Callback]] = {}
_FINDER = _Finder()
_guard = threading.Lock()


def watch(names: Sequence[str], callback: Callback) -> None:
    """Call ``callback(name)`` each time one of ``names`` is imported (its code has run),
    until [`unwatch()`][fakedriver.transports.imports.unwatch]. Watching again is a no-op."""
    with _guard:
        for name in names:
            callbacks = _WATCHED.setdefault(name, [])
            if callback not in callbacks:
                callbacks.append(callback)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def unwatch(names: Sequence[str], callback: Callback) -> None:
    """Stop calling ``callback`` for ``names``; the finder goes once nothing is watched."""
    with _guard:
        for name in names:
            callbacks = _WATCHED.get(name, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                _WATCHED.pop(name, None)
        if not _WATCHED and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


def watching() -> bool:
    """Whether the finder is on ``sys.meta_path`` (something is watched)."""
    return _FINDER in sys.meta_path


def _imported(name: str) -> None:
    with _guard:
        callbacks = list(_WATCHED.get(name, ()))
    for callback in callbacks:  # outside the guard: a callback may watch, unwatch, import
        callback(name)


def initializing(name: str, done: str | None = None) -> bool:
    """Whether module ``name`` is being imported now (in ``sys.modules``, its code not run
    to the end), ``done`` excepted (a module whose code has just run, whose import is still
    finishing)."""
    if name == done:
        return False
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))
