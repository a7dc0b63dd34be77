"""Progress bars on a terminal, silenced by ``quiet``; wall time and memory per stage.

Bars go to stderr and only when stderr is a terminal: piped or redirected output (a log
file, a notebook, CI) gets no carriage returns or escape sequences, only the lines the
command prints.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def shown(quiet: bool = False) -> bool:
    """Whether progress bars are drawn: not ``quiet`` and stderr is a terminal (checked
    at call time, so a redirected or captured stderr is seen)."""
    if quiet:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def bar(iterable: Iterable[T], desc: str, *, quiet: bool = False, total: int | None = None) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when :func:`shown`."""
    if not shown(quiet):
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def steps(desc: str, total: int, *, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A bar of ``total`` named steps for a stage that is not a loop over items.

    ``with steps("align", 8) as step: ...; step("text views")`` advances the bar by one
    and shows the step just finished. The callable does nothing when bars are not
    :func:`shown`, so a stage can call it unconditionally.
    """
    if not shown(quiet):
        yield lambda label: None
        return
    with tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True) as t:

        def step(label: str) -> None:
            t.set_postfix_str(label, refresh=False)
            t.update()

        yield step


class Timer:
    """Collects wall time and peak RSS at the end of each named stage:
    ``with timer("cooccur"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            # process peak resident memory so far (Linux reports KiB)
            self.peak_rss_mb[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
