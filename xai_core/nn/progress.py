"""The progress bar techniques, synthesizers and metrics show over long loops of model passes.

One helper, so that every long loop behaves the same: silent in tests, logs and pipes, and on a
terminal only once a loop has run for a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "img") -> Any:
    """A ``tqdm`` bar (a context manager with ``update(n)``) that appears only after a second and
    only on a terminal; ``enabled=False`` hides it."""
    return _bar(None, total, desc, enabled, unit)


T = TypeVar("T")


def progress_steps(
    steps: Iterable[T], total: int, desc: str, enabled: bool = True, unit: str = "step"
) -> Iterator[T]:
    """``steps`` under the same bar as :func:`progress_bar` (for a loop that counts its own
    steps, such as a synthesizer's optimisation)."""
    return iter(_bar(steps, total, desc, enabled, unit))


def _bar(steps: Iterable[Any] | None, total: int, desc: str, enabled: bool, unit: str) -> Any:
    # ``disable=None`` lets tqdm switch itself off when stderr is not a terminal.
    disable = None if enabled else True
    return tqdm(steps, total=total, desc=desc, unit=unit, leave=False, delay=1.0, disable=disable)
