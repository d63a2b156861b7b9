"""What several benchmarks share: the command line they start from and interleaved timing.

A benchmark runs as ``python benchmarks/bench_NAME.py``, so this folder is on ``sys.path`` and the
benchmark imports this module as ``_common``. :data:`TESTS` goes on ``sys.path`` too, for the
adapters through which the tests compare our methods with a reference library
(``tests/reference_adapters.py``): the benchmarks time that library through the same ones, and
take them from here.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))

from reference_adapters import PixelModel, relu6_as_relu  # noqa: E402

__all__ = ["TESTS", "PixelModel", "interleaved_best", "parser_with", "relu6_as_relu"]


def parser_with(doc: str, **defaults: object) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc`` with one option per keyword, in order:
    ``ig_steps=32`` is ``--ig-steps`` of the default's type (``int``), default 32."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return parser


def interleaved_best_times(
    runs: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall-clock and best CPU seconds (all threads) of each run over ``repeats`` rounds
    that take the runs in turn (after one warm-up of each), so that a change in the machine's
    load hits them alike; on a shared machine the CPU time is the less disturbed of the two."""
    for run in runs.values():
        run()
    wall = {name: float("inf") for name in runs}
    cpu = dict(wall)
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return wall, cpu


def interleaved_best(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall-clock seconds of each run (see :func:`interleaved_best_times`)."""
    return interleaved_best_times(runs, repeats)[0]
