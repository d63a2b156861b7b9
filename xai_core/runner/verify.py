"""``xai verify RUN_DIR``: is a finished run intact?

A run is intact when ``results.json`` is strict JSON marked ``"complete": true``, every record
its ``index`` names (under ``records/``, or ``<model>/records/`` in a run that compares models)
is present and strict JSON, its summary agrees with those records' items, and every file an
item or the run names (``digests``, ``run_files``) is present with the recorded size and
sha256.
Only hashes are compared, nothing is decoded, so checking a large run costs one read of its
outputs. Every problem is named by file, so the fix (rerun the same config: it recomputes what
does not match) is obvious.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from xai_core.errors import XaiError
from xai_core.io import FileDigest
from xai_core.runner.ledger import file_problem
from xai_core.runner.lock import lock_holder
from xai_core.store import RUN_KEY, indexed_records

__all__ = ["Verification", "verify_run", "strict_json", "records_folders"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """Parse JSON as strict parsers do: ``NaN`` and ``Infinity`` are errors."""
    return json.loads(text, parse_constant=_reject_constant)


@dataclass
class Verification:
    """What :func:`verify_run` found: the files checked and every problem, one line each."""

    run_dir: Path
    files: int = 0
    items: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str | None) -> None:
        """Note a problem (``None`` is none); each is reported once."""
        if problem is not None and problem not in self.problems:
            self.problems.append(problem)


def verify_run(run_dir: str | Path) -> Verification:
    """Check a finished run's integrity; see the module doc for what is checked."""
    run_dir = Path(run_dir)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise XaiError(f"{str(run_dir)!r} holds no results.json; give the output folder of a run")
    report = Verification(run_dir)
    results = _read_results(run_dir, report)
    if results is None:
        return report
    if isinstance(results.get("items"), list):  # a run of an older version
        items = results["items"]
        _check_records(run_dir, results, items, report)
    else:
        items = _indexed_items(run_dir, results, report)
    report.items = len(items)
    _check_summary(results, items, report)
    files = _Files(run_dir)
    for item in items:
        if not item.get("error"):
            _check_item_files(item, files, report)
    for rel, expected in (results.get("run_files") or {}).items():
        report.add(files.problem(rel, expected))
    _check_figures(run_dir, results, report)
    report.files = len(files.seen)
    return report


class _Files:
    """Each recorded file of a run checked once, however many items name it."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.seen: dict[str, str | None] = {}
        self.on_disk: dict[str, FileDigest | None] = {}

    def problem(self, rel: str, expected: Any) -> str | None:
        if rel not in self.seen:
            self.seen[rel] = file_problem(self.run_dir, rel, expected, self.on_disk)
        return self.seen[rel]


def _read_results(run_dir: Path, report: Verification) -> dict[str, Any] | None:
    """``results.json`` of a run that no one is writing, or ``None`` (the problem reported)."""
    holder = lock_holder(run_dir)
    if holder is not None:
        report.add(f"a run is writing this folder now ({holder}); verify it after")
        return None
    try:
        results = strict_json((run_dir / "results.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        report.add(f"results.json: not strict JSON ({exc})")
        return None
    if not isinstance(results, dict):
        report.add("results.json: not a JSON object")
        return None
    if results.get("complete") is not True:
        report.add(
            "results.json: not marked complete (the run was interrupted or is running); rerun "
            "the same config to finish it"
        )
    return results


def _check_summary(
    results: dict[str, Any], items: list[dict[str, Any]], report: Verification
) -> None:
    summary = results.get("summary", {})
    failed = sum(1 for item in items if item.get("error"))
    if summary.get("items") != len(items) or summary.get("failed") != failed:
        report.add(
            f"results.json: summary says {summary.get('items')} item(s), {summary.get('failed')} "
            f"failed; the items list holds {len(items)}, {failed} failed"
        )


def _check_item_files(item: dict[str, Any], files: _Files, report: Verification) -> None:
    """Every file a finished item names has a recorded digest, and matches it."""
    named = set((item.get("files") or {}).values())
    digests = item.get("digests") or {}
    for rel in sorted(named - set(digests)):
        report.add(f"{rel}: named by an item but no size and sha256 recorded")
    for rel, expected in digests.items():
        report.add(files.problem(rel, expected))


def records_folders(results: dict[str, Any]) -> dict[str, str]:
    """Each model's records folder relative to the run (``records``, or ``<model>/records`` in a
    run that compares models), by the model's name and (winning over names) by its label."""
    models = results.get("models") or []
    folders: dict[str, str] = {}
    for key in ("name", "label"):
        for model in models:
            if model.get(key) is not None:
                folders[model[key]] = str(PurePosixPath(model.get("output_dir") or ".") / "records")
    return folders


def _check_records(
    run_dir: Path, results: dict[str, Any], items: list[dict[str, Any]], report: Verification
) -> None:
    """Each (model, image, method)'s record holds exactly the items ``results.json`` lists."""
    folders = records_folders(results)
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        folder = folders.get(item.get("model"), "records")
        rel = f"{folder}/{item.get('key') or RUN_KEY}/{item.get('label')}.json"
        groups.setdefault(rel, []).append(item)
    for rel, group in groups.items():
        try:
            record = strict_json((run_dir / rel).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            report.add(f"{rel}: missing or not strict JSON")
            continue
        if not isinstance(record, dict) or record.get("items") != group:
            report.add(f"{rel}: disagrees with the items of results.json")


def _indexed_items(
    run_dir: Path, results: dict[str, Any], report: Verification
) -> list[dict[str, Any]]:
    """The items of every record ``results.json``'s ``index`` names, each record strict JSON
    (see :func:`xai_core.store.load_items`)."""
    index = results.get("index")
    if not isinstance(index, list):
        report.add("results.json: no index of the run's records (rerun the same config)")
        return []
    items: list[dict[str, Any]] = []
    for rel in indexed_records(results):
        try:
            record = strict_json((run_dir / rel).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            report.add(f"{rel}: missing or not strict JSON (rerun the same config)")
            continue
        found = record.get("items") if isinstance(record, dict) else None
        if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
            report.add(f"{rel}: not a record of items (rerun the same config)")
            continue
        items.extend(found)
    return items


def _check_figures(run_dir: Path, results: dict[str, Any], report: Verification) -> None:
    if results.get("grid") and "figures/grid.png" not in (results.get("run_files") or {}):
        report.add("figures/grid.png: named by results.json but not recorded")
    for rel in results.get("comparisons") or []:
        if not (run_dir / rel).is_file():
            report.add(f"{rel}: named by results.json but missing (rerun the same config)")
    if not (run_dir / "report.html").is_file():
        report.add("report.html: missing (xai report RUN_DIR rebuilds it)")
