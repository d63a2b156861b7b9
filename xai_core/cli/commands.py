"""The commands that run things: ``run``, ``explain``, ``config``, ``report``, ``verify`` and
``new-plugin``, and the summary a run ends with.

The runner pulls in torch, matplotlib and the report code: each command imports it when it runs,
so that ``xai list`` and ``xai --help`` do not wait for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xai_core.errors import ConfigError, XaiError, did_you_mean
from xai_core.plugins.factory import parse_target
from xai_core.report.figures import target_text

__all__ = [
    "cmd_run_args",
    "cmd_run",
    "cmd_explain",
    "cmd_config",
    "cmd_report",
    "cmd_verify",
    "cmd_new_plugin",
    "explain_config",
]


def _prediction_lines(result: Any) -> list[str]:
    """For a run on one image: what each model predicted, and the target if it differs."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for item in result.items:
        if item.get("kind") == "attributor" and item.get("error") is None:
            first.setdefault((item.get("model", ""), item["key"]), item)
    if len({key for _, key in first}) != 1:
        return []
    lines = []
    for (model, key), item in first.items():
        if item.get("target_value_name"):  # a target kind: no class prediction
            lines.append(f"target ({model}, {key}): {target_text(item)}")
            continue
        line = (f"prediction ({model}, {key}): {item.get('predicted_label')} "
                f"({item.get('predicted_probability') or 0:.2f})")
        if item.get("target") != item.get("predicted"):
            line += (f"; explained for {item.get('target_label')} "
                     f"({item.get('target_probability') or 0:.2f})")
        lines.append(line)
    return lines


def _summary(result: Any, debug: bool = False) -> int:
    failed = result.failures
    total = len(result.items)
    skipped = result.results.get("summary", {}).get("skipped", 0)
    wall = result.results.get("wall_seconds") or 0.0
    compute = result.results.get("compute_seconds") or 0.0
    untrained = [m.get("label", m.get("name")) for m in result.results.get("models", [])
                 if m.get("weights") == "random"]
    print(
        f"done: {total - len(failed)} of {total} item(s) succeeded, {len(failed)} failed"
        + (f", {skipped} already done (skipped)" if skipped else "")
        + f"; wall time {wall:.1f} s, compute {compute:.1f} s (all items)"
        + (f"; RANDOM WEIGHTS (untrained): {', '.join(untrained)}" if untrained else "")
    )
    for item in failed:
        print(f"  failed: {item['image']} / {item['label']}: {item['error']}")
        if debug:
            # Each failed item keeps its traceback in results.json; --debug shows it here.
            text = item.get("traceback") or "(no traceback recorded)\n"
            print("    " + text.rstrip("\n").replace("\n", "\n    "))
    for line in _prediction_lines(result):
        print(line)
    out = result.output_dir
    print(f"results: {out / 'results.json'}")
    if (out / "report.html").is_file():
        print(f"report:  {out / 'report.html'}")
    grid = out / "figures" / "grid.png"
    if grid.is_file():
        print(f"figures: {out / 'figures'} (side by side: {grid})")
    if result.results.get("comparisons"):
        print(f"figures: {out / 'figures' / 'compare'} (models side by side, one per image)")
    sinks_failed = _sink_lines(result.results)
    return 1 if failed or sinks_failed else 0


def _sink_lines(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Print where each sink logged the run, and each failed sink on stderr; returns the
    failed ones."""
    failed = []
    for record in results.get("sinks") or []:
        if record.get("ok"):
            where = ", ".join(f"{k} {v}" for k, v in (record.get("logged") or {}).items())
            print(f"sink:    {record['label']}: {where or 'logged'}")
        else:
            failed.append(record)
            print(f"error: sink {record['label']!r} failed: {record['error']} (the run's outputs "
                  "are complete; its traceback is in results.json's `sinks`; rerunning the "
                  "config logs the run again)", file=sys.stderr)
    return failed


def cmd_run(
    config_path: str | None,
    overrides: Sequence[str],
    base: dict | None = None,
    force: bool = False,
    debug: bool = False,
) -> int:
    from xai_core.runner.config import load_config

    # Checked before the runner (torch, matplotlib) is even imported: a bad config fails fast.
    config = load_config(config_path if base is None else base, overrides)
    from xai_core.runner.run import run_experiment
    from xai_core.runner.state import print_progress

    result = run_experiment(config, progress=print_progress, force=force)
    if "environment" not in result.results:
        # A torchrun rank other than 0: rank 0 merges and reports for everyone.
        return 1 if result.failures else 0
    return _summary(result, debug)


def cmd_run_args(args: argparse.Namespace) -> int:
    return cmd_run(args.config, args.overrides, force=args.force, debug=args.debug)


def cmd_config(args: argparse.Namespace) -> int:
    from xai_core.runner.examples import example_path, list_examples

    if args.example is not None:
        if args.config is not None or args.overrides:
            raise ConfigError(
                "xai config --example NAME prints an example as shipped; to resolve it with "
                "overrides, use `xai config example:NAME key=value ...`"
            )
        if not args.example:
            print("\n".join(f"example:{name}" for name in list_examples()))
            return 0
        print(example_path(args.example).read_text(), end="")
        return 0
    if args.config is None:
        raise ConfigError(
            "xai config needs a CONFIG file or example:NAME, or --example NAME to print an "
            f"example (examples: {', '.join(list_examples())})"
        )
    from xai_core.runner.config import load_config, to_yaml

    config = load_config(args.config, args.overrides)
    if args.check:
        models = ", ".join(m.run_label for m in config.model_list)
        print(f"ok: {args.config}: {len(config.methods)} method(s), {len(config.metrics)} "
              f"metric(s), model(s) {models}")
        return 0
    print(to_yaml(config), end="")
    return 0


#: What ``xai report RUN key=value`` may change: how a finished run is drawn, nothing else.
RESTYLE_KEYS = ("figure", "figures")


def cmd_report(args: argparse.Namespace) -> int:
    from xai_core.report.html import build_report

    if not args.overrides:
        print(f"report: {build_report(args.run_dir)}")
        return 0
    return restyle(Path(args.run_dir), args.overrides)


def restyle(run_dir: Path, overrides: Sequence[str]) -> int:
    """Redraw a finished run's figures and report with other figure settings, from its saved
    maps: the run's own ``config.yaml`` with ``overrides``, run with ``restyle=True``."""
    from xai_core.runner.config import load_config

    for override in overrides:
        key = override.split("=", 1)[0].strip().split(".", 1)[0]
        if "=" not in override or key not in RESTYLE_KEYS:
            import dataclasses

            from xai_core.report.figures import FigureOptions

            figure_keys = [f.name for f in dataclasses.fields(FigureOptions)]
            raise ConfigError(
                f"xai report restyles a finished run: {override!r} is not a figure setting "
                f"(give figure.KEY=VALUE or figures=true/false; figure keys: "
                f"{', '.join(figure_keys)}). To change anything else, run the config again: "
                f"xai run {run_dir / 'config.yaml'} {override}"
            )
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} holds no config.yaml: is it a run's output folder?")
    config = load_config(config_file, [*overrides, f"output_dir={run_dir}"])
    from xai_core.runner.run import run_experiment
    from xai_core.runner.state import print_progress

    result = run_experiment(config, progress=print_progress, restyle=True)
    return _summary(result)


def cmd_verify(args: argparse.Namespace) -> int:
    from xai_core.runner.verify import verify_run

    found = verify_run(args.run_dir)
    if found.ok:
        print(f"ok: {found.items} item(s), {found.files} file(s) match their recorded sha256")
        return 0
    for problem in found.problems:
        print(f"mismatch: {problem}")
    print(
        f"{len(found.problems)} problem(s) in {args.run_dir}; rerun the same config to recompute "
        "what does not match"
    )
    return 1


def cmd_table(args: argparse.Namespace) -> int:
    """``xai table RUN``: the run's tidy table (one row per model, image, method and target),
    printed as markdown or CSV, or exported to ``--output``."""
    from xai_core.io import write_text
    from xai_core.report.tables import rows_csv, rows_markdown
    from xai_core.store import TABLE_EXTRA, read_rows, write_table

    rows = read_rows(args.run_dir)
    if args.format == "parquet":
        if args.output is None:
            raise XaiError("--format parquet writes a file: give --output FILE.parquet")
        written = Path(args.output)
        if not write_table(written.parent, rows, name=written.name, force=True):
            raise XaiError(f"--format parquet needs pyarrow: {TABLE_EXTRA}")
    else:
        text = rows_csv(rows) if args.format == "csv" else rows_markdown(rows)
        if args.output is None:
            sys.stdout.write(text)
            return 0
        write_text(args.output, text)
    print(f"wrote {len(rows)} row(s) to {args.output}", file=sys.stderr)
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from xai_core.dev.scaffold import new_plugin

    target = new_plugin(args.name, args.dir)
    print(f"created {target}; next: pip install -e '{target}[test]' && pytest {target}")
    return 0


def _method_params(methods: list[str], params: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--param grad_cam.layer=layer4`` as ``{"grad_cam": {"layer": "layer4"}}`` (nested keys
    with more dots: ``noise_tunnel.base_params.abs=false``)."""
    from xai_core.runner.config import parse_override

    found: dict[str, dict[str, Any]] = {}
    for text in params:
        key, value = parse_override(text)
        method, _, path = key.partition(".")
        if not path:
            raise ConfigError(
                f"--param {text!r} names no parameter; write METHOD.KEY=VALUE, e.g. "
                "--param grad_cam.layer=layer4"
            )
        if method not in methods:
            hint = did_you_mean(method, methods, n=1, otherwise=".")
            raise ConfigError(
                f"--param {text!r}: {method!r} is not one of the --method names{hint} "
                f"Methods: {', '.join(methods)}"
            )
        node = found.setdefault(method, {})
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--param {text!r}: {part!r} is set to a value already")
        node[last] = value
    return found


def explain_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config ``xai explain`` runs: images, methods with their ``--param``s, one model or
    several, one target or several."""
    methods = list(args.method)
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise XaiError(
            f"--method {', '.join(twice)} given more than once; to run one technique with two "
            "settings, write a config with distinct `label`s"
        )
    params = _method_params(methods, args.params)
    models = args.model or ["efficientnet_lite0"]
    targets = [parse_target(t) for t in args.target or ["predicted"]]
    if len(targets) > 1 and any(isinstance(t, dict) for t in targets):
        raise XaiError(
            "--target KIND:... (a target kind) is given alone; repeat --target for several "
            "class targets only"
        )
    base: dict[str, Any] = {
        "inputs": list(args.images),
        "target": targets[0] if len(targets) == 1 else targets,
        "methods": [{"name": m, "params": params.get(m, {})} for m in methods],
        "output_dir": args.out,
    }
    if len(models) == 1:
        base["model"] = {"name": models[0]}
    else:
        base["models"] = [{"name": m} for m in models]
    return base


def cmd_explain(args: argparse.Namespace) -> int:
    return cmd_run(None, args.overrides, explain_config(args), force=args.force, debug=args.debug)
