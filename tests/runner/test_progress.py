"""Progress of a run: one count, rate and time left per method, in place or as log lines."""

from __future__ import annotations

import io

import pytest

from xai_core.runner.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_name_the_method_its_count_rate_and_time_left():
    out, clock = io.StringIO(), Clock()
    progress = Progress(["saliency", "rise"], total=4, stream=out, clock=clock, log_every=10)
    assert not progress.is_tty, "a StringIO is not a terminal"
    for _ in range(2):
        progress.start("saliency")
        clock.now += 1
        progress.advance("saliency", 2)
        progress.start("rise")
        clock.now += 9
        progress.advance("rise", 2)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[xai] saliency 2/4 2 img/s eta 0:01"
    # rise began at 101 and did 2 images by 110: 0.222 img/s, 2 left: 9 s.
    assert lines[1] == "[xai] rise 2/4 0.222 img/s eta 0:09"
    # saliency's second batch ended 11 s after its first began: 4 / 11 img/s, done.
    assert lines[2] == "[xai] saliency 4/4 0.364 img/s done"
    assert lines[3] == "[xai] rise 4/4 0.211 img/s done"
    assert len(lines) == 4


def test_plain_lines_are_throttled_per_method_but_the_last_is_always_written():
    out, clock = io.StringIO(), Clock()
    progress = Progress(["m"], total=10, stream=out, clock=clock, log_every=5)
    for _ in range(10):
        clock.now += 1
        progress.advance("m")
    text = out.getvalue()
    assert [line.split()[2] for line in text.splitlines()] == ["1/10", "6/10", "10/10"]


def test_terminal_bars_are_redrawn_in_place_and_mark_the_method_at_work():
    out, clock = io.StringIO(), Clock()
    progress = Progress(["a", "bb"], total={"a": 2, "bb": 4}, stream=out, is_tty=True,
                        clock=clock)
    progress.start("bb")
    frame = out.getvalue()
    assert frame.count("\n") == 2 and "\x1b[" in frame
    assert "> bb |" in frame and "  a  |" in frame
    clock.now += 2
    progress.advance("bb", 2)
    progress.close()
    text = out.getvalue()
    assert "\x1b[2F" in text, "later frames move the cursor back over the two bars"
    last = text.split("\x1b[2F")[-1]
    assert "bb |############............| 2/4 1 img/s eta 0:02" in last
    assert "a  |........................| 0/2 - img/s eta ?" in last


def test_disabled_progress_writes_nothing_and_unknown_methods_are_named():
    out = io.StringIO()
    progress = Progress(["a"], total=1, stream=out, enabled=False)
    progress.advance("a")
    progress.close()
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match="unknown method 'b'; known: a"):
        progress.advance("b")


def test_durations_read_as_clock_times():
    assert format_seconds(5) == "0:05"
    assert format_seconds(3725) == "1:02:05"
    assert format_seconds(None) == "?"


def test_a_method_whose_images_failed_says_so_not_done():
    out, clock = io.StringIO(), Clock()
    progress = Progress(["saliency", "rise", "occlusion"], total=4, stream=out, clock=clock,
                        log_every=10)
    for method in progress.counts:
        progress.start(method)
    clock.now += 1
    progress.advance("saliency", 4, failed=4)
    progress.advance("rise", 2, failed=1)
    progress.advance("rise", 2)
    progress.advance("occlusion", 4)
    progress.close()
    assert out.getvalue().splitlines() == [
        "[xai] saliency 4/4 4 img/s all 4 failed",
        "[xai] rise 2/4 2 img/s eta 0:01, 1 failed",
        "[xai] rise 4/4 4 img/s done, 1 failed",
        "[xai] occlusion 4/4 4 img/s done",
    ]
    from xai_core.runner.item import ResultItem

    def item(error):
        return ResultItem(image="a.png", key="a", model="m", method="saliency",
                          kind="attributor", label="saliency", error=error)

    assert Progress.failed_in([[item(None)], [item(None), item("x")], []]) == 1


def test_a_run_whose_images_all_fail_does_not_say_done(tmp_path, capsys):
    from xai_core.runner.config import load_config
    from xai_core.runner.run import run_experiment

    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    config = load_config({
        "model": {"name": "timm/resnet10t", "pretrained": False, "input_size": 32},
        "inputs": [str(tmp_path / "broken.png")], "methods": ["saliency"],
        "output_dir": str(tmp_path / "out"), "workers": 0, "figures": False,
    })
    result = run_experiment(config, progress=lambda message: None)
    assert result.failures
    lines = [line for line in capsys.readouterr().err.splitlines() if "saliency 1/1" in line]
    assert lines and lines[-1].endswith("all 1 failed"), lines
