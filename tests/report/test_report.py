"""report.html: built from a run's files, static, and checked in headless Chromium.

Two real runs feed the browser checks: a small demo (a tiny model, two photos, signed and
non-negative attributors, a metric, a per-photo and a per-run synthesizer: the run whose report
once had a ``None`` row) and a run with an unreadable input. Each page is loaded at 1440 and at
390 px (a phone). Run folders made without a model (``report_runs.make_run``) check what needs
many images or several models: filters, sorting, paging, shared scales, the colours against
``render_map``, and a report of 2,000 items opening in under 3 s. Full-page screenshots go to
pytest's tmp dir, and to ``$XAI_SCREENSHOTS`` (or ``$XAI_TEST_ARTIFACTS``) when set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_runs import make_run

from xai_core.cli import main
from xai_core.io import PHOTO_SUFFIX
from xai_core.report.figures import FigureOptions, render_map
from xai_core.report.html import MAP_FIELDS, build_report
from xai_core.store import load_items, read_results

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


def _data(run: Path) -> dict:
    """The page's data (``report/data.js``) as Python objects."""
    text = (run / "report" / "data.js").read_text()
    prefix, suffix = "window.XAI_REPORT=JSON.parse(", ");\n"
    assert text.startswith(prefix) and text.endswith(suffix)
    return json.loads(json.loads(text[len(prefix) : -len(suffix)]))


def _maps(data: dict) -> list[dict]:
    assert data["map_fields"] == list(MAP_FIELDS)
    return [dict(zip(data["map_fields"], row)) for row in data["maps"]]


def _fast_writes(monkeypatch) -> None:
    """No fsync while a test writes thousands of files: the bytes are the same, and the disk
    is shared by every test running."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_report_data_has_each_photo_once_with_target_prediction_and_scores(demo_run):
    page = (demo_run / "report.html").read_text()
    data = _data(demo_run)
    items = load_items(demo_run)
    first = next(i for i in items if i["kind"] == "attributor")
    assert 'content="width=device-width, initial-scale=1"' in page
    assert [i["key"] for i in data["images"]] == ["cat", "coffee"], "no row for synthesizers"
    assert data["methods"] == ["saliency", "gradient_x_input", "grad_cam"]
    cat = data["images"][0]["models"][0]
    assert cat["targets"] == [f"{first['target_label']} ({first['target_probability']:.2f})"]
    assert cat["pred"][0] == first["predicted_label"]
    assert cat["pred"][1] == pytest.approx(first["predicted_probability"], rel=5e-3)
    assert cat["photo"] == f"inputs/cat{PHOTO_SUFFIX}"
    maps = _maps(data)
    assert len(maps) == 2 * 3 and not any(m["error"] for m in maps)
    assert maps[0]["figure"] == "figures/cat/saliency.png"
    assert all(m["size"] == [64, 64] and set(m["scales"]) == {"all", "positive", "negative",
                                                              "absolute"} for m in maps)
    assert data["metrics"] == ["deletion"] and data["directions"] == {"deletion": False}
    scored = [i for i in items if i["kind"] == "attributor"]
    for row, item in zip(maps, scored):
        assert row["metrics"][0] == pytest.approx(item["metrics"]["deletion"], rel=1e-5)
        assert row["seconds"] == pytest.approx(item["seconds"], rel=1e-3)
    for needle in ("Attributions", "Resolved config", "Environment", "Timings", "± ",
                   "standard error", "lower is better", "weights: random", "compute"):
        assert needle in page, needle
    assert "inputs/None" not in page and ">None<" not in page
    # Each synthesis figure once: the class visualization figure holds both classes.
    assert page.count('href="figures/class_visualization.png"') == 1
    assert page.count('class="card"') == 3, "a fooling figure per photo, one class visualization"
    assert "target_probability:" not in page, "a summary line, not raw keys"
    script = (demo_run / "report" / "report.js").read_text()
    for text in (page, script, (demo_run / "report" / "data.js").read_text()):
        assert "http://" not in text and "https://" not in text
    assert '<script src="report/data.js"></script>' in page and "loading=" not in page
    # One pixel script per photo (its photo and its three maps), small beside the figures.
    scripts = sorted((demo_run / "report" / "px").glob("*.js"))
    assert [p.name for p in scripts] == ["cat.js", "coffee.js"]
    assert all(p.stat().st_size < 60_000 for p in scripts)


def test_report_uses_top5_models_and_targets_when_items_carry_them(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    results = read_results(run)
    items = load_items(run, results)
    extra = []
    for item in items:
        if item["kind"] == "attributor" and item["key"] == "cat":
            item["top5"] = [{"class": 7, "label": "cock", "probability": 0.125}]
            other = json.loads(json.dumps(item))
            other.update(target=3, target_label="tiger shark", target_probability=0.01)
            if "map" in other["files"]:
                # Several targets name their maps <method>.<rank>_<class>.<suffix>.
                path = Path(other["files"]["map"])
                name = str(path.with_name(f"{path.stem}.2_tiger_shark{path.suffix}"))
                shutil.copy(run / other["files"]["map"], run / name)
                other["files"]["map"] = name
            extra.append(other)
    # Written as runs of older versions wrote them (every item in results.json).
    results.pop("index", None)
    results["items"] = items + extra
    (run / "results.json").write_text(json.dumps(results))
    build_report(run)
    data = _data(run)
    cat = data["images"][0]["models"][0]
    assert cat["top5"] == [["cock", 0.125]]
    assert "tiger shark (0.01)" in cat["targets"] and len(cat["targets"]) == 2
    assert len(data["images"]) == 2
    files = {m["file"]: m for m in _maps(data)}
    assert any(".2_tiger_shark." in f and m["scales"] for f, m in files.items())
    assert sum(1 for f in files if f.startswith("maps/cat/saliency.")) == 2


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
    data = _data(failing_run)
    broken, good = data["images"]
    assert broken["error"] and broken["models"][0]["photo"] is None
    assert good["error"] is None and good["models"][0]["photo"]
    assert 'id="failures"' in page
    data_js = (failing_run / "report" / "data.js").read_text()
    assert f"inputs/broken{PHOTO_SUFFIX}" not in page + data_js


def test_pages_of_earlier_versions_go_and_every_image_is_in_the_data(tmp_path):
    items = [
        {"key": f"img{i}", "label": "x", "kind": "attributor", "error": "failed on purpose",
         "files": {}, "image": f"img{i}.png"}
        for i in range(41)
    ]
    (tmp_path / "results.json").write_text(json.dumps({"items": items, "summary": {}}))
    (tmp_path / "report-2.html").write_text("an earlier version's second page")
    build_report(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("report*.html")) == ["report.html"]
    data = _data(tmp_path)
    assert [i["key"] for i in data["images"]] == [f"img{i}" for i in range(41)]
    assert all(m["error"] == "failed on purpose" for m in _maps(data))
    assert all(i["error"] == "failed on purpose" for i in data["images"])


def test_several_models_each_show_their_own_weights_predictions_and_timings(tmp_path):
    run = make_run(tmp_path / "run", images=3, models=("a", "b"), fail_every=5)
    build_report(run)
    page = (run / "report.html").read_text()
    data = _data(run)
    assert "weights: weights-of-a" in page and "weights: weights-of-b" in page
    assert "<b>a</b> (net-a)" in page and "input 32×32" in page
    timings = page[page.index('id="timings"'):]
    timings = timings[: timings.index("</section>")]
    assert "<th>model</th><th>method</th>" in timings
    assert timings.count("<td>a</td>") == 2 and timings.count("<td>b</td>") == 2
    failures = page[page.index('id="failures"'):page.index('id="timings"')]
    assert "<th>model</th>" in failures
    items = load_items(run)
    for entry in data["images"]:
        for model, part in zip(("a", "b"), entry["models"]):
            mine = next(i for i in items if i["key"] == entry["key"] and i["model"] == model)
            assert part["photo"] == f"{model}/inputs/{entry['key']}{PHOTO_SUFFIX}"
            assert part["pred"][0] == mine["predicted_label"]
            assert part["top5"][0][0] == mine["top5"][0]["label"]
    assert [m["label"] for m in data["models"]] == ["a", "b"]
    assert {m["model"] for m in _maps(data)} == {0, 1}


def test_the_models_come_from_the_results_given_or_the_first_from_model(tmp_path):
    # A run builds its report before results.json has its `models`: it may pass what it holds.
    run = make_run(tmp_path / "run", images=2, models=("a", "b"))
    full = read_results(run)
    written = {k: v for k, v in full.items() if k != "models"}
    (run / "results.json").write_text(json.dumps(written))
    page = build_report(run).read_text()
    assert "<b>a</b>: weights: random" in page and "<b>b</b>: weights: ?" in page
    page = build_report(run, results=full).read_text()
    assert "weights: weights-of-a" in page and "weights: weights-of-b" in page


def test_thumbnails_made_on_threads_equal_those_made_one_by_one(tmp_path):
    # The report makes every image's pixel script from the run's files, an image per task on a
    # thread pool; the bytes must not depend on the threads, and a second make redoes nothing.
    from xai_core.io import write_array, write_png
    from xai_core.report.thumbnails import Thumbnails

    rng = np.random.default_rng(0)
    images = []
    for key in "abc":
        write_png(tmp_path / f"inputs/{key}.png", rng.random((3, 64, 64)).astype(np.float32))
        maps = [f"maps/{key}/{m}.npz" for m in ("s", "g")]
        for rel in maps:
            write_array(tmp_path / rel, rng.standard_normal((64, 64)).astype(np.float32))
        images.append((key, [f"inputs/{key}.png"], maps))

    def made(threads: int) -> tuple[dict[str, bytes], list]:
        shutil.rmtree(tmp_path / "report", ignore_errors=True)
        found = Thumbnails(tmp_path, FigureOptions()).make(images, threads=threads)
        files = (tmp_path / "report" / "px").rglob("*.js")
        return {str(p.relative_to(tmp_path)): p.read_bytes() for p in files}, found

    one_by_one, pooled = made(1), made(2)
    assert len(one_by_one[0]) == 3 and pooled == one_by_one
    assert set(pooled[1][0]["maps"]) == {"maps/a/s.npz", "maps/a/g.npz"}
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "report").rglob("*.js")}
    Thumbnails(tmp_path, FigureOptions()).make(images, threads=2)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # A newer map is made again; an unreadable one is an error of its own, not of its image.
    (tmp_path / "maps/b/g.npz").write_bytes(b"not an array")
    found = Thumbnails(tmp_path, FigureOptions()).make(images, threads=2)
    assert found[1]["maps"]["maps/b/g.npz"].startswith("map not readable: maps/b/g.npz")
    assert isinstance(found[1]["maps"]["maps/b/s.npz"], dict)


def test_map_scales_fits_each_distinct_part_once_and_equals_fitting_every_sign():
    # map_scales fits a map of one sign once (its parts under the signs are itself, its
    # negation or zeros): the numbers must be those of fitting each sign's part on its own.
    from xai_core.report.figures import scale_bounds
    from xai_core.report.thumbnails import _short, map_scales, sign_values

    def one_by_one(values, options):
        values = np.nan_to_num(values.astype(np.float32))
        scales = {}
        for sign in ("all", "positive", "negative", "absolute"):
            shown = sign_values(values, sign)
            signed = sign == "all" and float(shown.min()) < 0
            lo, top = scale_bounds(-shown if sign == "negative" else shown, signed, options)
            scales[sign] = [_short(float(shown.min())), _short(float(shown.max())),
                            _short(lo), _short(top), int(signed)]
        return scales

    rng = np.random.default_rng(3)
    heavy = np.abs(rng.standard_t(3, size=(40, 56))).astype(np.float32)
    mixed = rng.standard_normal((40, 56)).astype(np.float32)
    holes = heavy.copy()
    holes[::7, ::5] = np.nan
    maps = {
        "non-negative": heavy, "non-positive": -heavy, "mixed": mixed, "zeros": 0 * heavy,
        "constant": np.full((8, 8), 2.5, np.float32), "with NaN": holes,
        "one negative value": np.where(heavy > heavy.max() * 0.99, -1.0, heavy),
    }
    for clip in (99.0, 100.0, 90.0):
        options = FigureOptions(clip_percentile=clip)
        for name, values in maps.items():
            assert map_scales(values, options) == one_by_one(values, options), (name, clip)


def test_page_scales_reproduce_render_map(tmp_path):
    # The page colours a map from its 8-bit levels and the scales of map_scales; the strength
    # they give must be render_map's, under every sign.
    from xai_core.io import read_array
    from xai_core.report.thumbnails import map_scales, sign_values

    run = make_run(tmp_path / "run", images=2)
    options = FigureOptions()
    for rel in ("maps/img00000/gradient.npz", "maps/img00001/saliency.npz"):
        saliency = read_array(run / rel)
        for sign, (low, high, lo, top, signed) in map_scales(saliency, options).items():
            rendered = render_map(saliency, FigureOptions(sign=sign))
            shown = sign_values(saliency, sign)
            assert (low, high) == pytest.approx((rendered.low, rendered.high), rel=1e-4)
            assert bool(signed) == rendered.signed
            if signed:
                strength = np.clip(shown / top, -1, 1)
            else:
                fitted = -shown if sign == "negative" else shown
                strength = np.clip((fitted - lo) / (top - lo), 0, 1)
            np.testing.assert_allclose(strength, rendered.strength, atol=1e-3)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it when run as root)",
)


@contextlib.contextmanager
def _browser():
    """A headless Chromium page and the list of its problems (console errors, page errors,
    failed requests)."""
    assert CHROMIUM, "chromium must be installed by the test set-up in CI"
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed request {r.url}"))
            yield page, problems
        finally:
            browser.close()


def _ready(page) -> None:
    """Wait until the page has drawn every image of its view (report.js sets ``ready``)."""
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=30000)


def _open(page, report: Path, width: int = 1440, view: str = "") -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(report.as_uri() + view, wait_until="load")
    _ready(page)


def _choose(page, control: str, value: str) -> None:
    page.select_option(f"#f-{control}", value)
    _ready(page)


FACTS = """() => ({
    broken: Array.from(document.images).filter(i => !i.complete || !i.naturalWidth).length,
    bodyScroll: document.documentElement.scrollWidth - window.innerWidth,
    rows: document.querySelectorAll('tr.photo-row').length,
    maps: document.querySelectorAll('canvas.map').length,
    unpainted: Array.from(document.querySelectorAll('canvas.map')).filter(
        c => !c.dataset.painted).length,
    mapsWithoutKey: Array.from(document.querySelectorAll('canvas.map')).filter(
        c => !c.closest('.cell').querySelector('.cbar .lo')).length,
    shownMaps: Array.from(document.querySelectorAll('canvas.map')).filter(
        c => c.offsetWidth > 0).length,
    photosUnder: document.querySelectorAll('.stack img').length,
    gridScrolls: Array.from(document.querySelectorAll('.scroll')).some(
        d => getComputedStyle(d).overflowX === 'auto'),
    keys: Array.from(document.querySelectorAll('tr.photo-row')).map(r => r.dataset.key),
    methods: Array.from(document.querySelectorAll('td[data-method]')).map(
        td => td.dataset.method),
    models: Array.from(document.querySelectorAll('td[data-model]')).map(td => td.dataset.model),
    headers: document.querySelectorAll('table.grid tr:first-child th').length,
})"""


def _facts(page) -> dict:
    return page.evaluate(FACTS)


def _save(shots: list[Path]) -> None:
    artifacts = os.environ.get("XAI_SCREENSHOTS") or os.environ.get("XAI_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(artifacts) / shot.name)


@needs_chromium
def test_reports_in_headless_chromium_at_desktop_and_phone_widths(
    demo_run, failing_run, tmp_path
):
    seen: dict[tuple[str, int], dict] = {}
    shots = []
    with _browser() as (page, problems):
        for name, run in (("demo", demo_run), ("bad-input", failing_run)):
            for width in WIDTHS:
                _open(page, run / "report.html", width)
                facts = _facts(page)
                shot = tmp_path / f"report-{name}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                shots.append(shot)
                page.check("#f-overlay")
                _ready(page)
                on_photo = _facts(page)
                facts["photosUnder"] = on_photo["photosUnder"]
                facts["overlaysUnpainted"] = on_photo["unpainted"]
                facts["overlayBroken"] = on_photo["broken"]
                page.uncheck("#f-overlay")
                _ready(page)
                seen[name, width] = facts
        text = page.inner_text("#grid")
    assert problems == []
    for (name, width), facts in seen.items():
        where = f"{name} at {width} px"
        assert facts["broken"] == 0 and facts["overlayBroken"] == 0, where
        assert facts["rows"] == 2, f"{where}: one row per input photo"
        assert facts["bodyScroll"] <= 0, f"{where}: the page body scrolls sideways"
        assert facts["gridScrolls"], where
        assert facts["maps"] > 0 and facts["mapsWithoutKey"] == 0, f"{where}: colour keys"
        assert facts["unpainted"] == 0 and facts["overlaysUnpainted"] == 0, where
        assert facts["shownMaps"] == facts["maps"] == facts["photosUnder"], where
    assert seen["demo", 1440]["maps"] == 2 * 3
    assert seen["bad-input", 390]["maps"] == 2, "the readable photo's two maps"
    assert "input failed:" in text
    for shot in shots:
        assert shot.stat().st_size > 10_000
    _save(shots)


def _canvas_rgb(page, index: int) -> np.ndarray:
    values = page.evaluate(
        """(i) => { const c = document.querySelectorAll('canvas.map')[i];
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""",
        index,
    )
    return np.asarray(values, np.float32).reshape(32, 32, 4)


@pytest.mark.slow
@needs_chromium
def test_page_colours_maps_as_render_map_and_shares_scales_on_request(tmp_path):
    from xai_core.io import read_array

    run = make_run(tmp_path / "run", images=3, methods=("gradient", "saliency"))
    build_report(run)
    maps = _maps(_data(run))
    with _browser() as (page, problems):
        _open(page, run / "report.html")
        colours = {}
        for sign in ("all", "positive", "negative"):
            _choose(page, "sign", sign)
            colours[sign] = [_canvas_rgb(page, i) for i in range(len(maps))]
        _choose(page, "sign", "all")
        bars = lambda: page.evaluate(  # noqa: E731
            "Array.from(document.querySelectorAll('td[data-method] .cbar')).map("
            "b => [b.closest('td').dataset.method, b.dataset.low, b.dataset.high])"
        )
        own = bars()
        _choose(page, "scale", "method")
        column = bars()
        _choose(page, "scale", "image")
        row = bars()
        # The value under the pointer.
        page.hover("canvas.map >> nth=0", position={"x": 80, "y": 80})
        page.wait_for_function("document.getElementById('readout').textContent.length > 0")
        readout = page.inner_text("#readout")
    assert problems == []
    for sign, painted in colours.items():
        for row_data, rgba in zip(maps, painted):
            expected = render_map(read_array(run / row_data["file"]), FigureOptions(sign=sign))
            difference = np.abs(rgba[..., :3] - 255 * expected.rgb)
            where = f"{row_data['file']} under sign={sign}"
            # 8-bit levels of the map's range move a value by at most 1/510 of it: a colour
            # table entry or two, a few levels of each channel.
            assert difference.mean() < 2.5 and np.percentile(difference, 99) < 16, where
            assert (rgba[..., 3] == 255).all(), where
    assert len({(low, high) for _, low, high in own}) == len(own), "each map its own range"
    for method in ("gradient", "saliency"):
        ranges = {(low, high) for m, low, high in column if m == method}
        assert len(ranges) == 1, f"one key for the {method} column"
    assert len({(low, high) for _, low, high in row}) == 3, "one key per row"
    first = maps[0]
    assert readout.startswith("gradient on img00000 at (")
    value = float(readout.rsplit(": ", 1)[1])
    assert first["min"] <= value <= first["max"]


@pytest.mark.slow
@needs_chromium
def test_several_models_filter_to_one_model_in_the_browser(tmp_path):
    run = make_run(tmp_path / "run", images=3, models=("a", "b"))
    build_report(run)
    with _browser() as (page, problems):
        _open(page, run / "report.html")
        both = _facts(page)
        caption = page.inner_text("td.photo >> nth=0")
        _choose(page, "model", "1")
        only_b = _facts(page)
        clean = list(problems)
        # A missing pixel script fails its own image, says so, and the rest is drawn.
        (run / "report" / "px" / "img00001.js").unlink()
        _open(page, run / "report.html")
        missing = _facts(page)
        told = page.inner_text('tr[data-key="img00001"]')
    assert clean == []
    assert any("img00001.js did not load" in p for p in problems)
    assert missing["unpainted"] == 2 * 2 and "thumbnail missing" in told
    assert set(both["models"]) == {"a", "b"} and both["headers"] == 1 + 2 * 2
    assert set(only_b["models"]) == {"b"} and only_b["headers"] == 1 + 2
    assert only_b["unpainted"] == 0
    assert "a\n" in caption and "b\n" in caption and caption.count("predicted:") == 2


@pytest.mark.slow
@needs_chromium
def test_a_report_of_2000_items_opens_in_under_3_s_and_filters_sorts_and_prints(
    tmp_path, monkeypatch
):
    _fast_writes(monkeypatch)
    methods = ("gradient", "saliency", "grad_cam", "integrated_gradients", "rise")
    run = make_run(tmp_path / "run", images=400, methods=methods, fail_every=97)
    build_report(run)
    data = _data(run)
    assert len(data["maps"]) == 2000
    with _browser() as (page, problems):
        # The page's own time from navigation to every image of the first page drawn
        # (performance.now() when report.js finishes), in the browser: the issue's "opens in
        # under 3 s". Generous: about 1 to 1.5 s on a busy 2-core machine; the best of three
        # opens, as other processes on a shared machine can stall any one of them. It fails
        # when opening does work proportional to the run rather than to one page.
        opened_ms = float("inf")
        for _ in range(3):
            _open(page, run / "report.html")
            opened_ms = min(opened_ms, page.evaluate("window.XAI_READY_AT"))
        first = _facts(page)
        _choose(page, "method", "2")
        one_method = _facts(page)
        _choose(page, "method", "")
        _choose(page, "sort", "0:0")  # deletion of the gradient column, ascending
        ascending = page.evaluate(
            "Array.from(document.querySelectorAll('td[data-method=\"gradient\"] .cap'))"
            ".map(c => c.innerText).filter(t => t.includes('deletion'))"
        )
        page.fill("#f-min", "0.5")
        _ready(page)
        ranged = _facts(page)
        page.fill("#f-min", "")
        _ready(page)
        page.fill("#f-q", "img0001")
        _ready(page)
        searched = _facts(page)
        page.fill("#f-q", "")
        _ready(page)
        _choose(page, "cls", "0")
        classed = page.evaluate(
            "Array.from(document.querySelectorAll('td.photo .cap')).map(c => c.innerText)"
        )
        _choose(page, "cls", "")
        _choose(page, "sort", "")
        page.click(".pager >> nth=0 >> text=next ›")
        _ready(page)
        second = _facts(page)
        page.emulate_media(media="print")
        printed = _facts(page)
        shot = tmp_path / "report-2000-print.png"
        page.screenshot(path=str(shot), full_page=True)
        label = page.evaluate("XAI_REPORT.classes[0]")
    assert problems == []
    assert opened_ms < 3000, f"the page took {opened_ms:.0f} ms to open"
    assert first["rows"] == 25 and first["unpainted"] == 0 and first["broken"] == 0
    assert first["keys"] == [f"img{n:05d}" for n in range(25)]
    assert set(one_method["methods"]) == {"grad_cam"} and one_method["headers"] == 2
    assert one_method["rows"] == 25 and one_method["unpainted"] == 0
    scores = [float(t.split("deletion ↓: ")[1].split()[0]) for t in ascending]
    assert len(scores) >= 20 and scores == sorted(scores)
    assert ranged["rows"] > 0
    values = {m[0]: m[5][0] for m in data["maps"] if m[2] == 0 and m[5]}
    low_keys = [data["images"][i]["key"] for i, v in values.items() if v >= 0.5]
    assert set(ranged["keys"]) <= set(low_keys)
    assert sorted(searched["keys"]) == [f"img0001{n}" for n in range(10)], "sorted as chosen"
    assert classed and all(f"target: {label}" in c or f"predicted: {label}" in c
                           for c in classed)
    assert second["keys"] == [f"img{n:05d}" for n in range(25, 50)]
    assert printed["unpainted"] == 0 and printed["broken"] == 0 and printed["rows"] == 25
    assert shot.stat().st_size > 50_000
    _save([shot])
