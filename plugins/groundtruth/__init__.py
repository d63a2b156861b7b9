"""The ground-truth benchmark: a procedural image set whose decisive pixels are known exactly, and
the small CNN trained on it (registered as the model ``groundtruth_cnn``).

Every 64x64 image holds one *class object* (a triangle, square, star or disk) with random position,
rotation, size and colour, on a textured background, plus two *distractors* (bars and rings) drawn
with the same colour distribution and equally frequent in every class. The class is decided by the
object alone, and the object's mask is exact: it is the set of pixels the object was painted on,
and distractors never overlap it. Each image is also rendered without its object (the same
background and distractors), which the leakage check uses: a classifier that has learned the object
and nothing else falls to chance on those.

Images are generated from ``(seed, index)``, so item ``i`` of a set is the same whatever the set's
size, and the training set (seeds 0 and 1 in ``scripts/train_groundtruth.py``) never overlaps the
benchmark set (:data:`BENCHMARK_SEED`).

This module is the plugin: it registers the model and the ``xai benchmark CONFIG [key=value ...]``
command (``register_commands``), whose handler runs
:func:`xai_core_plugins.groundtruth.benchmark.run_benchmark`.

What does not live here: the metrics (``plugins/metrics``) and the benchmark runner
(``xai_core_plugins.groundtruth.benchmark``).
"""

from __future__ import annotations

import argparse

from xai_core import hookimpl
from xai_core.runner.config import load_config
from xai_core.runner.state import print_progress

from .model import load_groundtruth_cnn


@hookimpl
def register_models(register):
    register(
        "groundtruth_cnn",
        load_groundtruth_cnn,
        description="small CNN for the procedural ground-truth benchmark (64x64, 4 shapes)",
    )


@hookimpl
def register_commands(register):
    register(
        "benchmark",
        _benchmark,
        help="score methods with metrics on the procedural ground-truth image set",
        configure=_benchmark_arguments,
    )


def _benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file (e.g. configs/benchmark.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _benchmark(args: argparse.Namespace) -> int:
    # The runner pulls in matplotlib and the report code: every `xai` start loads this plugin,
    # only `xai benchmark` needs them.
    from .benchmark import run_benchmark

    result = run_benchmark(load_config(args.config, args.overrides), progress=print_progress)
    print(result.markdown, end="")
    print(f"table: {result.output_dir / 'benchmark.md'} and {result.output_dir / 'benchmark.json'}")
    print(f"plots: {', '.join(str(result.output_dir / p) for p in result.figures)}")
    return 0
