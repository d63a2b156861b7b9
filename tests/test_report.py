"""report.html: built from a run's files, static, and checked in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from xai_core.cli import main
from xai_core.report.html import IMAGES_PER_PAGE, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-run")
    code = main(
        [
            "explain",
            "sample:cat",
            "sample:coffee",
            "--method",
            "saliency",
            "--method",
            "grad_cam",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_report_lists_every_item_and_needs_no_network(small_run):
    page = (small_run / "report.html").read_text()
    for needle in (
        "tiger cat",
        "espresso",
        "saliency",
        "grad_cam",
        "Resolved config",
        "Environment",
        "Timings",
        'src="inputs/cat.png"',
    ):
        assert needle in page
    assert "http://" not in page and "https://" not in page
    assert (small_run / "report" / "cat" / "saliency.png").is_file()


def test_report_is_rebuilt_by_the_cli(small_run, capsys):
    (small_run / "report.html").unlink()
    assert main(["report", str(small_run)]) == 0
    assert (small_run / "report.html").is_file()
    assert main(["report", str(small_run / "nope")]) == 2
    assert "holds no results.json" in capsys.readouterr().err


def test_large_runs_are_paginated(tmp_path):
    items = [
        {
            "key": f"img{i}",
            "label": "x",
            "kind": "attributor",
            "error": "failed on purpose",
            "files": {},
            "image": f"img{i}.png",
        }
        for i in range(IMAGES_PER_PAGE * 2 + 1)
    ]
    (tmp_path / "results.json").write_text(json.dumps({"items": items, "summary": {}}))
    build_report(tmp_path)
    pages = sorted(p.name for p in tmp_path.glob("report*.html"))
    assert pages == ["report-2.html", "report-3.html", "report.html"]
    assert 'href="report-3.html"' in (tmp_path / "report.html").read_text()


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it when run as root)",
)
def test_report_in_headless_chromium(small_run, tmp_path):
    assert CHROMIUM, "chromium must be installed by the test set-up in CI"
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed request {r.url}"))
            page.goto((small_run / "report.html").as_uri(), wait_until="load")
            # Lazy images load when scrolled into view.
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_function(
                "Array.from(document.images).every(i => i.complete)", timeout=20000
            )
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)"
            )
            count = page.evaluate("document.images.length")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert count == 2 * 3, "an input photo and two maps per image"
    assert broken == []
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("XAI_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "report.png")
