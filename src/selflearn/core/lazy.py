"""Public names imported on first access (PEP 562), shared by the packages that re-export them.

A package lists ``name -> module`` and binds what :func:`lazy_exports` returns::

    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

The first access imports the module and caches the value in the package's namespace, so later
accesses are plain attribute lookups.
"""

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, names: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, importing ``names[name]`` on first access."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
