"""Seeded torch work that leaves the caller's random state alone.

Library functions that seed torch (initial weights, dropout, sampling) run inside
:func:`isolated_torch_rng`, so ``torch.manual_seed`` there affects only that call: a
user's own seeded process draws the same numbers before and after calling mash.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def forked_torch_rng() -> Iterator[None]:
    """Fork torch's CPU (and, when present, CUDA) random state; restore it on exit."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield


def isolated_torch_rng(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` in :func:`forked_torch_rng`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with forked_torch_rng():
            return fn(*args, **kwargs)

    return wrapper
