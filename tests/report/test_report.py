"""report.html: built from a run's files, static, and checked in headless Chromium.

Two runs feed the browser checks: a small demo (a tiny model, two photos, signed and
non-negative attributors, a metric, a per-photo and a per-run synthesizer: the run whose report
once had a ``None`` row) and a run with an unreadable input. Each page is loaded at 1440 and at
390 px (a phone). Full-page screenshots go to pytest's tmp dir, and to ``$XAI_SCREENSHOTS`` (or
``$XAI_TEST_ARTIFACTS``) when set.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from xai_core.cli import main
from xai_core.report.html import IMAGES_PER_PAGE, build_report
from xai_core.store import load_items

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
WIDTHS = (1440, 390)

DEMO = """
model: {name: timm/resnet10t, pretrained: false, input_size: 64}
inputs: [sample:cat, sample:coffee]
target: predicted
methods:
  - name: saliency
  - name: gradient_x_input
  - name: grad_cam
  - name: fooling
    params: {classes: [1], max_iterations: 1}
  - name: class_visualization
    params: {classes: [1, 2], steps: 2, image_size: 32, record_every: 1}
metrics:
  - name: deletion
    params: {steps: 4}
device: cpu
seed: 0
"""


def _run(tmp_path_factory, name: str, config: str) -> Path:
    folder = tmp_path_factory.mktemp(name)
    (folder / "config.yaml").write_text(config + f"output_dir: {folder / 'out'}\n")
    main(["run", str(folder / "config.yaml")])
    assert (folder / "out" / "report.html").is_file()
    return folder / "out"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return _run(tmp_path_factory, "report-demo", DEMO)


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-bad-input")
    broken = folder / "broken.png"
    broken.write_bytes(b"not an image")
    config = (
        "model: {name: timm/resnet10t, pretrained: false, input_size: 64}\n"
        f"inputs: [{broken}, sample:coffee]\n"
        "methods: [{name: saliency}, {name: grad_cam}]\ndevice: cpu\n"
    )
    return _run(tmp_path_factory, "report-bad-input-run", config)


def test_report_shows_each_photo_once_with_target_prediction_and_scores(demo_run):
    page = (demo_run / "report.html").read_text()
    results = json.loads((demo_run / "results.json").read_text())
    first = load_items(demo_run, results)[0]
    assert 'content="width=device-width, initial-scale=1"' in page
    assert page.count('class="photo-row"') == 2, "one row per photo, none for class_visualization"
    assert "inputs/None" not in page and ">None<" not in page
    assert f"target: {first['target_label']} ({first['target_probability']:.2f})" in page
    assert f"predicted: {first['predicted_label']}" in page
    for needle in ("saliency", "gradient_x_input", "grad_cam", "deletion ↓", "Resolved config",
                   "Environment", "Timings", "± ", "standard error", "lower is better"):
        assert needle in page, needle
    # Each synthesis figure once: the class visualization figure holds both classes.
    assert page.count('href="figures/class_visualization.png"') == 1
    assert page.count('class="card"') == 3, "a fooling figure per photo, one class visualization"
    assert "target_probability:" not in page, "a summary line, not raw keys"
    assert "http://" not in page and "https://" not in page
    # Thumbnails are JPEGs at display size; the full PNGs are linked.
    thumbs = list((demo_run / "report" / "maps").rglob("*.jpg"))
    assert len(thumbs) == 2 * 3 * 2, "a map and an overlay per photo and attributor"
    assert all(t.stat().st_size < 40_000 for t in thumbs)
    assert 'href="inputs/cat.png"' in page and 'href="figures/cat/saliency.png"' in page


def test_report_uses_top5_models_and_targets_when_items_carry_them(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    results = json.loads((run / "results.json").read_text())
    # The items written into results.json itself, as runs of older versions did: the report
    # reads them too (xai_core.store.load_items).
    results["items"] = load_items(run, results)
    extra = []
    for item in results["items"]:
        if item["kind"] == "attributor" and item["key"] == "cat":
            item["top5"] = [{"class": 7, "label": "cock", "probability": 0.125}]
            other = json.loads(json.dumps(item))
            other.update(target=3, target_label="tiger shark", target_probability=0.01)
            if "map" in other["files"]:
                # Several targets name their maps <method>.<rank>_<class>.npz.
                name = other["files"]["map"].replace(".npz", ".2_tiger_shark.npz")
                shutil.copy(run / other["files"]["map"], run / name)
                other["files"]["map"] = name
            extra.append(other)
    results["items"].extend(extra)
    (run / "results.json").write_text(json.dumps(results))
    page = build_report(run).read_text()
    assert "top 5:<ol><li>cock (0.12)</li>" in page
    assert "target: tiger shark (0.01)" in page
    assert page.count('class="photo-row"') == 2
    assert "report/maps/cat/saliency.2_tiger_shark.map.jpg" in page
    assert "report/maps/cat/saliency.map.jpg" in page


def test_report_is_rebuilt_by_the_cli(demo_run, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()
    assert main(["report", str(run / "nope")]) == 2
    assert "holds no results.json" in capsys.readouterr().err


def test_failed_input_is_shown_as_a_failure(failing_run):
    page = (failing_run / "report.html").read_text()
    assert page.count('class="photo-row"') == 2
    assert "input failed:" in page and 'id="failures"' in page
    assert "inputs/broken.png" not in page


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


def _inspect(page, report: Path, width: int, shot: Path) -> dict:
    """Load ``report`` at ``width``: overlays off and on, every image loaded, a screenshot."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(report.as_uri(), wait_until="load")
    # Lazy images load when shown; load them all to check every one.
    page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20000)
    facts = page.evaluate(
        """() => ({
        broken: Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src),
        bodyScroll: document.documentElement.scrollWidth - window.innerWidth,
        rows: document.querySelectorAll('tr.photo-row').length,
        maps: document.querySelectorAll('img.m').length,
        mapsWithoutBar: Array.from(document.querySelectorAll('img.m')).filter(
            i => !i.closest('.cell').querySelector('.cbar .lo')).length,
        shownMaps: Array.from(document.querySelectorAll('img.m')).filter(
            i => i.offsetWidth > 0).length,
        gridScrolls: Array.from(document.querySelectorAll('.scroll')).some(
            d => getComputedStyle(d).overflowX === 'auto'),
        })"""
    )
    page.screenshot(path=str(shot), full_page=True)
    page.check("#overlays")
    facts["shownOverlays"] = page.evaluate(
        "Array.from(document.querySelectorAll('img.o')).filter(i => i.offsetWidth > 0).length"
    )
    facts["hiddenMaps"] = page.evaluate(
        "Array.from(document.querySelectorAll('img.m')).filter(i => i.offsetWidth == 0).length"
    )
    return facts


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it when run as root)",
)
def test_reports_in_headless_chromium_at_desktop_and_phone_widths(
    demo_run, failing_run, tmp_path
):
    assert CHROMIUM, "chromium must be installed by the test set-up in CI"
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    seen: dict[tuple[str, int], dict] = {}
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed request {r.url}"))
            for name, run in (("demo", demo_run), ("bad-input", failing_run)):
                for width in WIDTHS:
                    shot = tmp_path / f"report-{name}-{width}.png"
                    seen[name, width] = _inspect(page, run / "report.html", width, shot)
                    shots.append(shot)
        finally:
            browser.close()
    assert problems == []
    for (name, width), facts in seen.items():
        where = f"{name} at {width} px"
        assert facts["broken"] == [], where
        assert facts["rows"] == 2, f"{where}: one row per input photo"
        assert facts["bodyScroll"] <= 0, f"{where}: the page body scrolls sideways"
        assert facts["gridScrolls"], where
        assert facts["maps"] > 0 and facts["mapsWithoutBar"] == 0, f"{where}: colour bars"
        assert facts["shownMaps"] == facts["maps"], where
        assert facts["shownOverlays"] == facts["maps"] == facts["hiddenMaps"], where
    assert seen["demo", 1440]["maps"] == 2 * 3
    assert seen["bad-input", 390]["maps"] == 2, "the readable photo's two maps"
    for shot in shots:
        assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("XAI_SCREENSHOTS") or os.environ.get("XAI_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(artifacts) / shot.name)


def test_thumbnails_made_on_threads_equal_those_made_one_by_one(tmp_path):
    # The report makes every thumbnail from the run's files, a photo's row per task on a thread
    # pool; the bytes must not depend on the threads, and a second make redoes nothing.
    from xai_core.io import write_npy, write_png
    from xai_core.report.figures import FigureOptions
    from xai_core.report.html import THUMB, Thumbnails

    rng = np.random.default_rng(0)
    rows = []
    for key in "abc":
        write_png(tmp_path / f"inputs/{key}.png", rng.random((3, 64, 64)).astype(np.float32))
        maps = [f"maps/{key}/{m}.npy" for m in ("s", "g")]
        for rel in maps:
            write_npy(tmp_path / rel, rng.standard_normal((64, 64)).astype(np.float32))
        rows.append((f"inputs/{key}.png", maps))

    def made(threads: int | None) -> dict[str, bytes]:
        shutil.rmtree(tmp_path / "report", ignore_errors=True)
        thumbs = Thumbnails(tmp_path, FigureOptions())
        if threads is None:
            for photo, maps in rows:
                thumbs.picture(photo, THUMB)
                for rel in maps:
                    thumbs.map(rel, photo)
        else:
            thumbs.make(rows, threads=threads)
        files = (tmp_path / "report").rglob("*.*")
        return {str(p.relative_to(tmp_path)): p.read_bytes() for p in files if p.is_file()}

    one_by_one, pooled = made(None), made(2)
    assert len(one_by_one) == 1 + 3 + 3 * 2 * 3 and pooled == one_by_one
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "report").rglob("*.jpg")}
    Thumbnails(tmp_path, FigureOptions()).make(rows, threads=2)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
