"""``xai verify RUN_DIR``: is a finished run intact?

A run is intact when ``results.json`` is strict JSON marked ``"complete": true``, its summary
agrees with its items, every item agrees with its record under ``records/``, and every file an
item or the run names (``digests``, ``run_files``) is present with the recorded size and sha256.
Only hashes are compared, nothing is decoded, so checking a large run costs one read of its
outputs. Every problem is named by file, so the fix (rerun the same config: it recomputes what
does not match) is obvious.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xai_core.errors import XaiError
from xai_core.io import FileDigest
from xai_core.runner.ledger import file_problem
from xai_core.runner.lock import lock_holder
from xai_core.runner.results import RUN_KEY

__all__ = ["Verification", "verify_run", "strict_json"]


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


def _check_file(
    run_dir: Path, rel: str, expected: Any, seen: dict[str, str | None],
    digests: dict[str, FileDigest | None],
) -> str | None:
    """A problem with one recorded file, or ``None``; each file is checked once."""
    if rel not in seen:
        seen[rel] = file_problem(run_dir, rel, expected, digests)
    return seen[rel]


def verify_run(run_dir: str | Path) -> Verification:
    """Check a finished run's integrity; see the module doc for what is checked."""
    run_dir = Path(run_dir)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise XaiError(f"{str(run_dir)!r} holds no results.json; give the output folder of a run")
    report = Verification(run_dir)
    holder = lock_holder(run_dir)
    if holder is not None:
        report.problems.append(f"a run is writing this folder now ({holder}); verify it after")
        return report
    try:
        results = strict_json(results_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        report.problems.append(f"results.json: not strict JSON ({exc})")
        return report
    if not isinstance(results, dict):
        report.problems.append("results.json: not a JSON object")
        return report
    if results.get("complete") is not True:
        report.problems.append(
            "results.json: not marked complete (the run was interrupted or is running); rerun "
            "the same config to finish it"
        )
    items = results.get("items") if isinstance(results.get("items"), list) else []
    report.items = len(items)
    summary = results.get("summary", {})
    failed = sum(1 for item in items if item.get("error"))
    if summary.get("items") != len(items) or summary.get("failed") != failed:
        report.problems.append(
            f"results.json: summary says {summary.get('items')} item(s), {summary.get('failed')} "
            f"failed; the items list holds {len(items)}, {failed} failed"
        )
    seen: dict[str, str | None] = {}
    digests_on_disk: dict[str, FileDigest | None] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault((item.get("key") or RUN_KEY, item.get("label")), []).append(item)
        if item.get("error"):
            continue
        files = set((item.get("files") or {}).values())
        digests = item.get("digests") or {}
        for rel in sorted(files - set(digests)):
            report.problems.append(f"{rel}: named by an item but no size and sha256 recorded")
        for rel, expected in digests.items():
            problem = _check_file(run_dir, rel, expected, seen, digests_on_disk)
            if problem is not None and problem not in report.problems:
                report.problems.append(problem)
    for (key, label), group in groups.items():
        record_file = run_dir / "records" / key / f"{label}.json"
        try:
            record = strict_json(record_file.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            report.problems.append(f"records/{key}/{label}.json: missing or not strict JSON")
            continue
        if record.get("items") != group:
            report.problems.append(
                f"records/{key}/{label}.json: disagrees with the items of results.json"
            )
    for rel, expected in (results.get("run_files") or {}).items():
        problem = _check_file(run_dir, rel, expected, seen, digests_on_disk)
        if problem is not None:
            report.problems.append(problem)
    if results.get("grid") and "figures/grid.png" not in (results.get("run_files") or {}):
        report.problems.append("figures/grid.png: named by results.json but not recorded")
    if not (run_dir / "report.html").is_file():
        report.problems.append("report.html: missing (xai report RUN_DIR rebuilds it)")
    report.files = len(seen)
    return report
