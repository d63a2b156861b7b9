"""The progress bar techniques and metrics show over long loops of forward passes.

One helper, so that every long loop behaves the same: silent in tests, logs and pipes, and on a
terminal only once a loop has run for a second.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "img") -> Any:
    """A ``tqdm`` bar (a context manager with ``update(n)``) that appears only after a second and
    only on a terminal; ``enabled=False`` hides it."""
    # ``disable=None`` lets tqdm switch itself off when stderr is not a terminal.
    disable = None if enabled else True
    return tqdm(total=total, desc=desc, unit=unit, leave=False, delay=1.0, disable=disable)
