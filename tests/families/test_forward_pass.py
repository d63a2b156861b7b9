"""One forward pass serves the prediction, the target and the map (Attributor.forward_pass)."""

from __future__ import annotations

import json

import pytest
import torch
from numerics import assert_float32_close

import xai_core
from xai_core.families.gradient import input_forward_pass, pass_input_gradients
from xai_core.nn.gradients import input_gradients
from xai_core.runner.config import load_config
from xai_core.runner.run import run_experiment
from xai_core.testing import ContractError, check_attributor

SHARED = ["saliency", "gradient_x_input", "guided_backprop", "grad_cam", "eigen_cam"]


def _count_passes(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("name", SHARED)
def test_predicted_target_costs_no_extra_pass(name, tiny_resnet):
    technique = xai_core.get_attributor(name)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    technique.attribute(tiny_resnet, x, 0)  # resolves `layer: auto` once (cached)
    calls = _count_passes(tiny_resnet.module)
    result = technique.attribute(tiny_resnet, x, "predicted")
    assert len(calls) == 1
    with torch.no_grad():
        logits = tiny_resnet.module(x)
    # ResNet-10-T's forward, maybe through other kernels: ~12 layers, 3x3x512 reductions.
    assert_float32_close(result.logits, logits, depth=12, fan_in=3 * 3 * 512)
    assert result.targets.tolist() == logits.argmax(1).tolist()


def test_saliency_from_the_shared_pass_is_the_plain_input_gradient(tiny_resnet):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    result = xai_core.get_attributor("saliency", channels_last=False).attribute(
        tiny_resnet, x, "predicted"
    )
    module = tiny_resnet.module.eval().requires_grad_(False)
    plain = input_gradients(module, x, result.targets, channels_last=False).abs().amax(1)
    # The gradient back through ResNet-10-T (~12 layers, 3x3x512 reductions).
    assert_float32_close(result.maps, plain, depth=12, fan_in=3 * 3 * 512)


def test_a_callable_target_gets_the_logits_of_the_same_pass(tiny_resnet):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    seen = []

    def least_likely(logits):
        seen.append(logits)
        return logits.argmin(1)

    calls = _count_passes(tiny_resnet.module)
    result = xai_core.get_attributor("saliency").attribute(tiny_resnet, x, least_likely)
    assert len(calls) == 1 and len(seen) == 1
    assert result.targets.tolist() == seen[0].argmin(1).tolist()


def test_top_k_targets_share_the_pass_too(tiny_resnet):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    technique = xai_core.get_attributor("saliency")
    several = technique.attribute(tiny_resnet, x, "top-2")
    for j in range(2):
        one = technique.attribute(tiny_resnet, x, several.targets[j::2])
        # Batched vs per-target: gradients back through ResNet-10-T, summed in another order.
        assert_float32_close(several.maps[j::2], one.maps, depth=12, fan_in=3 * 3 * 512)


class _WrongLogits(xai_core.Attributor):
    """Serves a pass whose logits are not the model's: the contract check must say so."""

    name = "wrong_logits"

    def forward_pass(self, model, inputs, context):
        forward = input_forward_pass(model, inputs, False)
        forward.logits = forward.logits.flip(1)
        return forward

    def compute(self, model, inputs, targets, context):
        return pass_input_gradients(model, inputs, targets, context, False).abs().amax(1)


def test_contract_check_catches_a_pass_with_wrong_logits():
    with pytest.raises(ContractError, match="forward_pass: its logits differ"):
        check_attributor(_WrongLogits(), checks=["forward_pass"])


def test_forward_pass_logits_of_the_wrong_shape_fail_naming_the_plugin(tiny_resnet):
    class Short(_WrongLogits):
        name = "short_logits"

        def forward_pass(self, model, inputs, context):
            forward = input_forward_pass(model, inputs, False)
            forward.logits = forward.logits[:1]
            return forward

    with pytest.raises(xai_core.XaiError, match="forward_pass returned logits of shape"):
        Short().attribute(tiny_resnet, torch.randn(2, 3, 64, 64), "predicted")


def _run(tmp_path, monkeypatch, methods, target="predicted", n=5):
    from PIL import Image

    import xai_core.runner.run as run_module

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(n):
        pixels = torch.randint(0, 255, (40, 48, 3), generator=torch.Generator().manual_seed(i))
        Image.fromarray(pixels.numpy().astype("uint8")).save(folder / f"p{i}.png")
    calls: list[int] = []
    load = run_module.load_model

    def counting_load(*args, **kwargs):
        handle = load(*args, **kwargs)
        handle.module.register_forward_hook(lambda *_: calls.append(1))
        return handle

    monkeypatch.setattr(run_module, "load_model", counting_load)
    config = load_config(
        {"inputs": [str(folder)], "model": {"name": "timm/resnet10t", "pretrained": False},
         "methods": methods, "target": target, "output_dir": str(tmp_path / "out"),
         "figures": False, "workers": 0, "batch_size": 2}
    )
    result = run_experiment(config)
    assert not result.failures
    return result, calls


def test_a_dataset_run_makes_one_forward_pass_per_batch(tmp_path, monkeypatch):
    result, calls = _run(tmp_path, monkeypatch, ["saliency"])
    assert len(calls) == 3  # 5 images in batches of 2
    items = result.items
    assert all(i["target"] == i["predicted"] and i["top5"] for i in items)
    results = json.loads((result.output_dir / "results.json").read_text())
    breakdown = results["time_breakdown"]
    assert breakdown["model"] > 0 and breakdown["wall"] >= breakdown["model"]
    # The report made a thumbnail of each map from the run's files: one pixel script per image.
    scripts = list((result.output_dir / "report" / "px").rglob("*.js"))
    assert len(scripts) == 5 and all('"scales"' in p.read_text() for p in scripts)


def test_top_k_targets_predict_first(tmp_path, monkeypatch):
    _, calls = _run(tmp_path, monkeypatch, ["saliency"], target="top-2")
    # A prediction pass per batch (3), then the method's: a batch holds batch_size maps, so one
    # image with its two targets per call (5).
    assert len(calls) == 8
