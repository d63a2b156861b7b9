"""Resuming trusts a record only for the same input bytes, settings, plugin and intact files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_core.cli import main
from xai_core.io import read_array
from xai_core.runner import plan as plan_module
from xai_core.runner import run as run_module
from xai_core.runner.config import load_config
from xai_core.runner.inputs import content_sha256
from xai_core.runner.run import run_experiment
from xai_core.runner.verify import strict_json, verify_run
from xai_core.store import load_items

# A small random-weight model keeps these runs quick; the runner is what is under test.
TINY = ["model.name=timm/resnet10t", "model.pretrained=false", "workers=0", "figures=false"]


def _photo(path: Path, seed: int, size=(36, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _run(inputs: list[Path], out: Path, *extra: str):
    config = load_config(
        {"inputs": [str(p) for p in inputs], "methods": ["saliency"], "output_dir": str(out)},
        TINY + list(extra),
    )
    return run_experiment(config)


def test_same_name_in_another_folder_is_recomputed_and_reported(tmp_path):
    first, second, out = tmp_path / "a" / "cat.png", tmp_path / "b" / "cat.png", tmp_path / "out"
    _photo(first, 1)
    _photo(second, 2)
    one = _run([first], out)
    two = _run([second], out)
    assert two.results["summary"]["skipped"] == 0
    (item,) = two.items
    assert item["image"] == str(second)
    results = strict_json((out / "results.json").read_text())
    (reported,) = load_items(out, results)
    assert reported["image"] == str(second)
    assert reported["image_sha256"] != one.items[0]["image_sha256"]
    assert reported["image_sha256"] == content_sha256(second)
    assert verify_run(out).ok


def test_image_replaced_in_place_is_recomputed(tmp_path):
    photo, out = tmp_path / "in" / "dog.png", tmp_path / "out"
    _photo(photo, 3)
    before = _run([photo], out)
    again = _run([photo], out)
    assert again.results["summary"]["skipped"] == 1
    _photo(photo, 4)
    after = _run([photo], out)
    assert after.results["summary"]["skipped"] == 0
    assert after.items[0]["image_sha256"] != before.items[0]["image_sha256"]
    record = json.loads((out / "records" / "dog" / "saliency.json").read_text())
    assert record["input"] == {"source": str(photo.resolve()),
                               "sha256": after.items[0]["image_sha256"]}


def test_new_plugin_version_redoes_its_items(tmp_path, monkeypatch):
    photo, out = tmp_path / "in" / "x.png", tmp_path / "out"
    _photo(photo, 5)
    _run([photo], out)
    provider = plan_module.provider
    monkeypatch.setattr(
        plan_module, "provider",
        lambda name, registry: {**provider(name, registry), "version": "9.9"},
    )
    assert _run([photo], out).results["summary"]["skipped"] == 0


def test_corrupt_map_fails_verify_by_name_and_is_recomputed(tmp_path, capsys):
    photo, out = tmp_path / "in" / "bird.png", tmp_path / "out"
    _photo(photo, 6)
    first = _run([photo], out)
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    map_rel = first.items[0]["files"]["map"]
    path = out / map_rel
    data = bytearray(path.read_bytes())
    size = len(data)
    data[-16:] = np.full(4, np.nan, dtype=np.float32).tobytes()  # same size, NaN pixels
    path.write_bytes(bytes(data))
    assert path.stat().st_size == size
    assert main(["verify", str(out)]) == 1
    printed = capsys.readouterr().out
    assert map_rel in printed and "sha256" in printed

    again = _run([photo], out)
    assert again.results["summary"]["skipped"] == 0
    assert np.isfinite(read_array(path)).all()
    assert main(["verify", str(out)]) == 0


def test_resume_skips_without_decoding(tmp_path, monkeypatch):
    photo, out = tmp_path / "in" / "fish.png", tmp_path / "out"
    _photo(photo, 7)
    _run([photo], out)

    def no_decoding(*args, **kwargs):
        raise AssertionError("resuming a finished item must not decode anything")

    monkeypatch.setattr(np, "load", no_decoding)
    monkeypatch.setattr(Image, "open", no_decoding)
    again = _run([photo], out)
    assert again.results["summary"]["skipped"] == 1
    assert again.results["complete"] is True
    assert again.results["compute_seconds"] > 0


def test_new_checkpoint_content_under_the_same_path_redoes_items(tmp_path):
    import timm
    import torch

    photo, out, weights = tmp_path / "in" / "y.png", tmp_path / "out", tmp_path / "w.pt"
    _photo(photo, 8)
    module = timm.create_model("resnet10t", pretrained=False)
    torch.save(module.state_dict(), weights)
    assert _run([photo], out, f"model.checkpoint={weights}").results["summary"]["skipped"] == 0
    assert _run([photo], out, f"model.checkpoint={weights}").results["summary"]["skipped"] == 1
    with torch.no_grad():
        module.fc.weight.mul_(2)
    torch.save(module.state_dict(), weights)
    assert _run([photo], out, f"model.checkpoint={weights}").results["summary"]["skipped"] == 0


def _files(out: Path, folder: str) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / folder).rglob("*.*"))}


def _no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing left to compute: the model must not be loaded")

    monkeypatch.setattr(run_module, "load_model", refuse)


def test_new_figure_options_redraw_the_figures_from_the_saved_maps(tmp_path, monkeypatch):
    photo, out = tmp_path / "in" / "f.png", tmp_path / "out"
    _photo(photo, 9)
    assert _run([photo], out, "figures=true").results["summary"]["skipped"] == 0
    maps, figures = _files(out, "maps"), _files(out, "figures")
    _no_model(monkeypatch)
    # the map stands: only the figure is drawn again, with the new options
    again = _run([photo], out, "figures=true", "figure={sign: absolute}")
    assert again.results["summary"]["skipped"] == 1
    assert _files(out, "maps") == maps
    redrawn = _files(out, "figures")
    name = "figures/f/saliency.png"
    assert redrawn[name] != figures[name]
    assert main(["verify", str(out)]) == 0
    assert _run([photo], out, "figures=true", "figure={sign: absolute}").results[
        "summary"]["skipped"] == 1
    assert _files(out, "figures")[name] == redrawn[name]


def test_cosmetic_settings_recompute_nothing(tmp_path, monkeypatch):
    photo, out = tmp_path / "in" / "c.png", tmp_path / "out"
    _photo(photo, 10)
    methods = [{"name": "saliency"},
               {"name": "occlusion", "params": {"window": 8, "stride": 8}}]
    config = {"inputs": [str(photo)], "methods": methods, "output_dir": str(out)}
    first = run_experiment(load_config(config, TINY + ["figures=true"]))
    assert first.results["summary"]["skipped"] == 0
    maps, records = _files(out, "maps"), _files(out, "records")
    _no_model(monkeypatch)
    cosmetic = [{"name": "saliency", "params": {"channels_last": False}},
                {"name": "occlusion", "params": {"window": 8, "stride": 8, "batch_size": 3,
                                                 "progress": False, "channels_last": False}}]
    again = run_experiment(load_config(
        {**config, "methods": cosmetic}, TINY + ["batch_size=3", "channels_last=false"]
    ))
    assert again.results["summary"]["skipped"] == 2
    assert _files(out, "maps") == maps
    assert _files(out, "records") == records  # figures switched off: nothing to renew
    # a parameter that changes the result recomputes that method's items only
    monkeypatch.undo()
    changed = [cosmetic[0], {"name": "occlusion", "params": {"window": 16, "stride": 8}}]
    third = run_experiment(load_config({**config, "methods": changed}, TINY))
    assert third.results["summary"]["skipped"] == 1
    assert _files(out, "maps")["maps/c/saliency.npz"] == maps["maps/c/saliency.npz"]


def test_an_added_metric_is_scored_from_the_saved_maps(tmp_path, monkeypatch):
    photo, out, fresh = tmp_path / "in" / "m.png", tmp_path / "out", tmp_path / "fresh"
    _photo(photo, 11)
    _run([photo], out, "metrics=[sparseness]")
    maps = _files(out, "maps")
    calls = []
    attribute = run_module.run_attributor
    monkeypatch.setattr(run_module, "run_attributor",
                        lambda *a, **k: calls.append(1) or attribute(*a, **k))
    metrics = "metrics=[sparseness, {name: deletion, params: {steps: 4}}]"
    again = _run([photo], out, metrics)
    assert calls == [] and again.results["summary"]["skipped"] == 1
    assert _files(out, "maps") == maps
    (item,) = again.items
    (reference,) = _run([photo], fresh, metrics).items
    assert set(item["metrics"]) == {"sparseness", "deletion"}
    assert item["metrics"] == reference["metrics"]
    assert main(["verify", str(out)]) == 0
    # a metric dropped from the config leaves the items; a changed one alone is scored again
    _no_model(monkeypatch)
    (item,) = _run([photo], out, "metrics=[sparseness]").items
    assert set(item["metrics"]) == {"sparseness"}
    record = json.loads((out / "records" / "m" / "saliency.json").read_text())
    assert set(record["scores"]) == {"sparseness"}


def test_a_finished_run_with_nothing_to_do_loads_no_model(tmp_path, monkeypatch):
    photo, out = tmp_path / "in" / "n.png", tmp_path / "out"
    _photo(photo, 12)
    first = _run([photo], out)
    _no_model(monkeypatch)
    again = _run([photo], out)
    assert again.results["summary"]["skipped"] == 1
    assert again.results["model"] == first.results["model"]
    assert again.results["models"] == first.results["models"]


def test_xai_report_restyles_a_finished_run_without_recomputing(tmp_path, monkeypatch, capsys):
    photo, out = tmp_path / "in" / "r.png", tmp_path / "out"
    _photo(photo, 13)
    _run([photo], out, "figures=true")
    maps, figures = _files(out, "maps"), _files(out, "figures")
    _no_model(monkeypatch)
    assert main(["report", str(out), "figure.cmap=magma"]) == 0
    assert _files(out, "maps") == maps
    assert _files(out, "figures")["figures/r/saliency.png"] != figures["figures/r/saliency.png"]
    assert "magma" in (out / "config.yaml").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True and results["summary"]["skipped"] == 1
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    # anything but figure settings is refused, naming what may change, and touches nothing
    before = (out / "results.json").read_bytes()
    assert main(["report", str(out), "seed=3"]) == 2
    err = capsys.readouterr().err
    assert "'seed=3' is not a figure setting" in err and "xai run" in err
    # a run whose inputs changed would need computing: refused before anything is written
    _photo(photo, 14)
    assert main(["report", str(out), "figure.cmap=viridis"]) == 2
    assert "would need computing" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before


def test_a_bad_layer_leaves_a_finished_folder_as_it_was(tmp_path):
    photo, out = tmp_path / "in" / "l.png", tmp_path / "out"
    _photo(photo, 15)
    _run([photo], out)
    before = {name: (out / name).read_bytes() for name in ("results.json", "config.yaml")}
    config = load_config(
        {"inputs": [str(photo)], "output_dir": str(out),
         "methods": [{"name": "grad_cam", "params": {"layer": "layer9"}}]}, TINY,
    )
    with pytest.raises(Exception, match="layer9"):
        run_experiment(config)
    assert {name: (out / name).read_bytes() for name in before} == before
