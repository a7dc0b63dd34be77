"""One limit on CPU threads for a whole command: torch, BLAS/OpenMP and mash's own pools.

``mash --threads N COMMAND`` runs the command inside :func:`limit_threads`. Without it,
each library keeps its own default (all cores the process may use).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

__all__ = ["available_cores", "limit_threads", "thread_limit"]

_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("mash_thread_limit", default=None)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def thread_limit() -> int:
    """The active limit, or :func:`available_cores` when none is set."""
    limit = _LIMIT.get()
    return available_cores() if limit is None else limit


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """Run the block with at most ``n`` threads in torch, BLAS/OpenMP pools
    (``threadpoolctl``) and mash's counting pool; ``None`` changes nothing.

    Parameters
    ----------
    n : int or None
        A positive thread count.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or int(n) < 1:
        from mash.errors import MashInputError

        raise MashInputError(f"threads must be a positive integer, got {n!r}")
    import torch
    from threadpoolctl import threadpool_limits

    token = _LIMIT.set(int(n))

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(before)
        _LIMIT.reset(token)
