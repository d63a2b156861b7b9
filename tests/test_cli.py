"""The xai command line: listings, runs, and one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from xai_core.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_attributors_names_the_plugin(capsys):
    code, out, _ = run(capsys, "list", "attributors")
    assert code == 0
    assert any(line.split()[:2] == ["saliency", "[saliency]"] for line in out.splitlines())


def test_list_samples_and_models(capsys):
    _, out, _ = run(capsys, "list", "samples")
    assert "sample:cat" in out and "sample:coffee" in out
    _, out, _ = run(capsys, "list", "models", "timm/resnet1*")
    assert "timm/resnet18" in out.split()
    _, out, _ = run(capsys, "list", "models")
    assert "efficientnet_lite0" in out and "timm/*" in out


def test_config_prints_the_resolved_config(capsys):
    code, out, _ = run(capsys, "config", "configs/demo.yaml", "seed=3")
    assert code == 0 and "seed: 3" in out and "name: saliency" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "sample:cat", "--method", "salincy"], "did you mean 'saliency'"),
        (
            ["explain", "sample:cat", "--method", "saliency", "--model", "timm/resnt18"],
            "did you mean 'timm/resnet18'",
        ),
        (
            ["explain", "sample:kat", "--method", "saliency"],
            "unknown sample 'kat'; did you mean 'cat'",
        ),
        (["explain", "no/such/file.png", "--method", "saliency"], "is not a file, folder, glob"),
        (["explain", "sample:cat", "--method", "saliency", "--target", "1000"], "out of range"),
        (
            ["explain", "sample:cat", "--method", "saliency", "--model", "timm/resnet10t"],
            "cannot download pretrained weights",
        ),
        (["run", "configs/demo.yaml", "sed=1"], "unknown config key 'sed'; did you mean 'seed'"),
        (["run", "configs/demo.yaml", "seed=x"], "'seed'"),
        (["run", "configs/missing.yaml"], "does not exist"),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, *(["--out", str(tmp_path)] if argv[0] == "explain" else []))
    assert code == 2
    errors = [line for line in err.splitlines() if not line.startswith("[xai] ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0]
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    from xai_core.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        main(["--debug", "explain", "sample:cat", "--method", "nope"])


def test_unreadable_image_fails_its_item_not_the_run(capsys, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    good = tmp_path / "cat.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 100, 50)).save(good)
    out_dir = tmp_path / "out"
    code, out, _ = run(
        capsys, "explain", str(bad), str(good), "--method", "saliency", "--out", str(out_dir)
    )
    assert code == 1
    assert "1 of 2 item(s) succeeded, 1 failed" in out
    items = {i["key"]: i for i in json.loads((out_dir / "results.json").read_text())["items"]}
    assert "is not an image PIL can read" in items["broken"]["error"]
    assert items["cat"]["error"] is None and items["cat"]["files"]["map"]
