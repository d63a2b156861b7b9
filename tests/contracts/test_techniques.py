"""The Attributor contract every technique gets from the base class."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xai_core
from xai_core.errors import InputError, PluginError, TargetError
from xai_core.testing import hook_count


class _Failing(xai_core.Attributor):
    name = "failing"

    def compute(self, model, inputs, targets, context):
        for sub in model.modules():
            context.hooks.forward(sub, lambda *a: None)
        model(inputs)
        raise RuntimeError("boom")


def test_hooks_removed_and_state_restored_when_a_technique_raises(tiny_resnet, images64):
    module = tiny_resnet.module
    module.train()
    flags = [p.requires_grad for p in module.parameters()]
    before = hook_count(module)
    with pytest.raises(RuntimeError, match="boom"):
        _Failing().attribute(tiny_resnet, images64, 0)
    assert hook_count(module) == before
    assert module.training and all(m.training for m in module.modules())
    assert [p.requires_grad for p in module.parameters()] == flags
    module.eval()


def test_plain_module_and_no_grad_context(images64):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    with torch.no_grad():
        result = xai_core.get_attributor("saliency").attribute(module, images64, 3)
    assert result.maps.shape == (2, 64, 64) and result.maps.abs().sum() > 0
    assert torch.is_grad_enabled()


def test_class_names_and_several_targets(tiny_resnet, images64):
    method = xai_core.get_attributor("saliency")
    by_name = method.attribute(tiny_resnet, images64, "tiger cat")
    assert by_name.targets.tolist() == [282, 282]
    several = method.attribute(tiny_resnet, images64, [[282, 1], [3, 4]])
    assert several.maps.shape == (4, 64, 64)
    assert several.input_index.tolist() == [0, 0, 1, 1]
    assert several.targets.tolist() == [282, 1, 3, 4]
    torch.testing.assert_close(several.maps[0], by_name.maps[0])


@pytest.mark.parametrize(
    "target, message",
    [
        (1000, r"out of range .* 1000 classes \(valid: 0..999\)"),
        (-1, "negative"),
        ("tiger kat", "did you mean 'tiger cat'"),
        ([1, 2, 3], "3 targets given for 2 inputs"),
        ([[1, 2], [3]], "same non-zero number"),
    ],
)
def test_bad_targets(tiny_resnet, images64, target, message):
    with pytest.raises(TargetError, match=message):
        xai_core.get_attributor("saliency").attribute(tiny_resnet, images64, target)


def test_bad_inputs(tiny_resnet):
    method = xai_core.get_attributor("saliency")
    with pytest.raises(InputError, match="add a batch dimension"):
        method.attribute(tiny_resnet, torch.randn(3, 32, 32), 0)
    with pytest.raises(InputError, match=r"\[N,3,H,W\]"):
        method.attribute(tiny_resnet, torch.randn(1, 1, 32, 32), 0)


def test_wrong_map_shape_is_a_contract_error(tiny_resnet, images64):
    class Wrong(_Failing):
        name = "wrong"

        def compute(self, model, inputs, targets, context):
            return torch.zeros(len(inputs), 7, 7)

    with pytest.raises(PluginError, match=r"\[N, H, W\] at input resolution"):
        Wrong().attribute(tiny_resnet, images64, 0)
