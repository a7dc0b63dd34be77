"""Names a package imports on first use (PEP 562), so ``import mash`` stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(namespace: dict[str, Any], table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` and caches the attribute.

    Parameters
    ----------
    namespace : dict
        The package's ``globals()``; a loaded name is stored there, so the next access
        does not call ``__getattr__`` again.
    table : mapping of str to str
        Public name -> the module that defines it.

    Returns
    -------
    callable
        ``__getattr__(name)``, raising ``AttributeError`` for a name not in ``table``.

    Examples
    --------
    >>> ns = {"__name__": "demo"}
    >>> get = lazy_getattr(ns, {"sqrt": "math"})
    >>> get("sqrt")(4.0), "sqrt" in ns
    (2.0, True)
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    return __getattr__
