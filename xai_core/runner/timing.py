"""Where a run's wall time goes: model passes, waiting for inputs, writing, figures, the report.

:class:`Phases` adds up the seconds the main thread spends in each named phase of a run;
``results.json`` carries the sums as ``time_breakdown`` (with ``other``: the wall time no phase
claimed), and ``benchmarks/bench_throughput.py`` prints them. Phases do not nest: each second of
the main thread counts once. Work done by the background writer (:mod:`xai_core.runner.writer`)
counts only where the main thread waits for it (``writing``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

__all__ = ["PHASES", "Phases"]

#: The phases a run reports, in the order of a run.
PHASES = (
    "model_load",  # building the model and loading its weights
    "inputs",  # waiting for the next batch of decoded images
    "model",  # technique calls and prediction passes (forward and backward)
    "metrics",  # scoring maps
    "writing",  # encoding and writing files and records, or waiting for the writer to catch up
    "figures",  # per-item figures and the run's grid and comparison figures
    "report",  # results.json and report.html
)


class Phases:
    """Seconds per phase of one run (see :data:`PHASES`), measured on the main thread."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._open: str | None = None

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Count the time inside the ``with`` block as ``name``; a phase opened inside another
        counts as the outer one (so no second is counted twice)."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; phases are {', '.join(PHASES)}")
        if self._open is not None:
            yield
            return
        self._open = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self._open = None

    def breakdown(self) -> dict[str, float]:
        """Seconds per phase so far, with ``other`` (the rest of the wall time) and ``wall``."""
        wall = time.perf_counter() - self.started
        out = {name: round(seconds, 3) for name, seconds in self.seconds.items()}
        out["other"] = round(max(0.0, wall - sum(self.seconds.values())), 3)
        out["wall"] = round(wall, 3)
        return out
