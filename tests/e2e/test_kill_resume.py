"""Smoke test of ``scripts/kill_resume.py`` (issue 15) with tiny settings: 4 images, 2 SIGKILLs.

The full check (40 images, 20 kills) takes minutes; run the script by hand for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kill_resume.py"


@pytest.mark.slow
def test_killed_run_matches_uninterrupted_run(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--images", "4", "--kills", "2", "--workers", "1",
         "--workdir", str(work), "--keep"],
        capture_output=True, text=True, timeout=900, cwd=SCRIPT.parents[1],
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((work / "summary.json").read_text())
    assert summary["kills"] == 2
    assert summary["items"] == 12  # 4 images x 3 methods
    assert summary["files_compared"] > 40
    assert summary["mismatches"] == [] and summary["problems"] == []
    assert not list((work / "killed").rglob("*.tmp"))
