"""What building and opening report.html costs, against the size of the run.

    .venv/bin/python benchmarks/bench_report.py [--images 400] [--methods 5] [--size 32]
    .venv/bin/python benchmarks/bench_report.py --images 2000 --methods 5 --size 224

Writes a run folder without a model (``tests/report/report_runs.make_run``: photos, maps,
records and ``results.json``), then times:

- ``build_report`` from nothing (every thumbnail made, on one thread per core), and again over
  the same files (every thumbnail cached: what a resumed run or ``xai report`` pays);
- opening the page in headless Chromium (when ``/usr/bin/chromium`` or ``chromium`` is found):
  the page's own time from navigation to the first page of images drawn (``performance.now()``
  when report.js finishes), and that time after filtering to one method.

Prints each, per item, and the ratios of the cached rebuild to the first build.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import TESTS, parser_with

sys.path.append(str(TESTS / "report"))

from report_runs import make_run  # noqa: E402

from xai_core.report.html import build_report  # noqa: E402

METHODS = ("gradient", "saliency", "grad_cam", "integrated_gradients", "rise", "occlusion",
           "lime", "shap")


def _open_ms(report: Path) -> tuple[float, float] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox",
                                                                    "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=60000)
            opened = page.evaluate("window.XAI_READY_AT")
            page.select_option("#f-method", "0")
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=60000)
            filtered = page.evaluate("window.XAI_RENDER_MS")
        finally:
            browser.close()
    return opened, filtered


def main() -> None:
    args = parser_with(__doc__, images=400, methods=5, size=32, models=1).parse_args()
    methods = METHODS[: args.methods]
    models = tuple(f"m{i}" for i in range(args.models))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = make_run(Path(tmp) / "run", images=args.images, methods=methods, models=models,
                       size=args.size, fail_every=97)
        items = args.images * len(methods) * len(models)
        print(f"run of {items} items ({args.images} images x {len(methods)} methods x "
              f"{len(models)} model(s), {args.size} px) written in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        build_report(run)
        first = time.perf_counter() - started
        started = time.perf_counter()
        build_report(run)
        again = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (run / "report").rglob("*") if p.is_file())
        data = (run / "report" / "data.js").stat().st_size
        print(f"build_report, first:  {first:.2f} s ({1000 * first / items:.2f} ms per item)")
        print(f"build_report, cached: {again:.2f} s ({1000 * again / items:.2f} ms per item), "
              f"{again / first:.2f} of the first")
        print(f"report/: {size / 1e6:.1f} MB ({size / items / 1e3:.1f} kB per item), "
              f"data.js {data / 1e6:.2f} MB")
        opened = _open_ms(run / "report.html")
        if opened is None:
            print("chromium not found: the page's opening time is not measured")
        else:
            print(f"page opened and drew its first page in {opened[0]:.0f} ms; "
                  f"filtering to one method redrew it in {opened[1]:.0f} ms")


if __name__ == "__main__":
    main()
