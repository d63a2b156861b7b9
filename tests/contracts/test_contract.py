"""Every built-in technique keeps the contract that xai_core.testing checks (the same checks a
plugin author runs on their own technique)."""

from __future__ import annotations

import pytest
import torch

import xai_core
from xai_core import plugins
from xai_core.testing import (
    ATTRIBUTOR_CHECKS,
    SYNTHESIZER_CHECKS,
    ContractError,
    check_attributor,
    check_synthesizer,
)

# Small settings so the whole contract suite stays fast; the techniques' own tests cover the
# defaults. A technique absent here is checked with its defaults.
FAST_PARAMS: dict[str, dict] = {
    "integrated_gradients": {"steps": 8},
    "noise_tunnel": {"samples": 4},
    "deeplift_shap": {"uniform_count": 1},
    "gradient_shap": {"samples": 4, "uniform_count": 1},
    "occlusion": {"window": 16, "stride": 8, "progress": False},
    "rise": {"n_masks": 64, "progress": False},
    "lime": {"n_samples": 24, "n_segments": 8, "progress": False},
    "kernel_shap": {"n_samples": 24, "n_segments": 8, "progress": False},
    "class_visualization": {"steps": 5},
    "fooling": {"max_iterations": 5},
    "feature_visualization": {"steps": 5},
}


def _tiny_vit():
    import timm

    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=48, patch_size=8, depth=2,
        num_classes=10,
    ).eval()


# Techniques that cannot run on the default CNN (TinyNet): name -> a factory of a small model
# they need. The attention methods read the attention of a vision transformer.
CONTRACT_MODELS = {"attention_rollout": _tiny_vit, "attention_gradients": _tiny_vit}


def _builtin(kind: type) -> list[str]:
    plugins.reset()
    registry = plugins.get_registries().techniques
    names = [e.name for e in registry if issubclass(e.obj, kind)]
    plugins.reset()
    return names


@pytest.mark.parametrize("name", _builtin(xai_core.Attributor))
def test_builtin_attributor_contract(name):
    model = CONTRACT_MODELS[name]() if name in CONTRACT_MODELS else None
    check_attributor(name, params=FAST_PARAMS.get(name), model=model)


@pytest.mark.parametrize("name", _builtin(xai_core.Synthesizer))
def test_builtin_synthesizer_contract(name):
    check_synthesizer(name, params=FAST_PARAMS.get(name))


def test_contract_catches_a_leaked_hook_and_a_changed_model():
    from xai_core.errors import PluginError

    class Leaky(xai_core.Attributor):
        name = "leaky"

        def compute(self, model, inputs, targets, context):
            model.head.register_forward_hook(lambda *a: None)  # bypasses context.hooks
            return inputs.sum(dim=1)

    class Changing(Leaky):
        name = "changing"

        def compute(self, model, inputs, targets, context):
            model.head.bias.data += 1.0
            return inputs.sum(dim=1)

    # The base class catches a leaked hook on every call; the kit lists it as a broken rule.
    with pytest.raises(ContractError, match="left 1 torch hook.*forward hook on 'head'") as info:
        check_attributor(Leaky)
    assert not isinstance(info.value, PluginError)
    with pytest.raises(ContractError) as info:
        check_attributor(Changing)
    message = str(info.value)
    assert "weight or buffer 'head.bias' changed" in message
    assert "logits changed" in message


def test_every_broken_rule_is_listed_in_one_contract_error():
    """A call the base class refuses (a leaked hook) does not hide the other broken rules."""

    class LeakyAndChanging(xai_core.Attributor):
        name = "leaky_and_changing"

        def compute(self, model, inputs, targets, context):
            model.head.register_forward_hook(lambda *a: None)  # bypasses context.hooks
            model.head.bias.data += 1.0
            return inputs.sum(dim=1)

    with pytest.raises(ContractError) as info:
        check_attributor(LeakyAndChanging)
    message = str(info.value)
    assert message.startswith("leaky_and_changing: call: attribute raised PluginError")
    assert "left 1 torch hook(s) on the model (forward hook on 'head')" in message
    assert "state: weight or buffer 'head.bias' changed" in message
    assert "state: the model's logits changed after the call" in message
    assert message.endswith(
        "not run, as the call failed: shapes, finite, batch, determinism, targets, modes, "
        "forward_pass"
    )
    assert message.count("left 1 torch hook") == 1  # said once, not again by every check


def test_contract_catches_batch_dependence():
    class BatchDependent(xai_core.Attributor):
        name = "batch_dependent"

        def compute(self, model, inputs, targets, context):
            maps = inputs.sum(dim=1)
            return maps / maps.abs().max()  # normalised over the batch, not per item

    with pytest.raises(ContractError, match="batch: batched maps differ"):
        check_attributor(BatchDependent, checks=["batch"])


def test_unknown_check_is_an_error():
    with pytest.raises(ValueError, match="valid checks: shapes"):
        check_attributor("saliency", checks=["shape"])
    assert "determinism" in ATTRIBUTOR_CHECKS and "determinism" in SYNTHESIZER_CHECKS
