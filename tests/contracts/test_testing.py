"""``check_metric`` and ``check_model`` (xai_core.testing): every built-in metric and model
passes them, and each check catches the mistake it is there for."""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest
import torch

import xai_core
from xai_core import plugins
from xai_core.contracts.model import ModelHandle, Preprocessing, as_model_handle, load_checkpoint
from xai_core.testing import (
    ATTRIBUTOR_CHECKS,
    ContractError,
    TinyNet,
    check_attributor,
    check_metric,
    check_model,
)
from xai_core.testing.common import default_model


def _builtin_metrics() -> list[str]:
    plugins.reset()
    names = [entry.name for entry in plugins.get_registries().metrics]
    plugins.reset()
    return names


@pytest.mark.parametrize("name", _builtin_metrics())
def test_builtin_metric_contract(name):
    check_metric(name)


@pytest.mark.parametrize("name", ["groundtruth_cnn", "efficientnet_lite0", "timm/resnet10t"])
def test_builtin_model_contract(name):
    check_model(name)


def _metric(body, requires: tuple[str, ...] = ()) -> type[xai_core.Metric]:
    class Custom(xai_core.Metric):
        name = "custom"
        higher_is_better = True

        @dataclass
        class Params:
            pass

        def compute(self, model, inputs, maps, targets, context):
            return body(maps, context)

    Custom.requires = requires
    return Custom


@pytest.mark.parametrize(
    ("body", "requires", "problem"),
    [
        (lambda maps, context: maps.mean(dim=(1, 2))[:1], (), "evaluate raised"),
        (lambda maps, context: maps.mean(dim=(1, 2)) / 0, (), "infinit"),
        (lambda maps, context: torch.rand(len(maps)), (), "determinism"),
        (lambda maps, context: (maps * context.masks).mean(dim=(1, 2)), (), "evaluate raised"),
    ],
    ids=["shape", "infinity", "global-rng", "undeclared-mask"],
)
def test_check_metric_catches(body, requires, problem):
    with pytest.raises(ContractError, match=problem):
        check_metric(_metric(body, requires))


def test_check_metric_refuses_a_metric_without_a_direction():
    undirected = _metric(lambda maps, context: maps.mean(dim=(1, 2)))
    del undirected.higher_is_better
    with pytest.raises(ContractError, match="declares: .*set higher_is_better = True or False"):
        check_metric(undirected)


def test_check_metric_gives_what_requires_declares():
    def masked_mean(maps, context):
        return (maps * context.masks).sum(dim=(1, 2)) / context.masks.sum(dim=(1, 2))

    check_metric(_metric(masked_mean, ("mask",)))
    check_metric(
        _metric(
            lambda maps, context: context.explain(
                torch.randn(len(maps), 3, 48, 48, generator=context.generator),
                torch.zeros(len(maps), dtype=torch.long),
            ).mean(dim=(1, 2)),
            ("attributor",),
        )
    )


def _handle(module: torch.nn.Module, names: list[str] | None = None) -> ModelHandle:
    return ModelHandle("tiny", module, Preprocessing(input_size=(32, 32), resize_size=32), names)


def test_check_model_catches_train_mode_and_wrong_class_names():
    check_model(_handle(TinyNet(num_classes=3).eval(), ["a", "b", "c"]))
    with pytest.raises(ContractError, match="handle: modules in training mode"):
        check_model(_handle(TinyNet(num_classes=3)))
    with pytest.raises(ContractError, match="class_names: 2 names for 3 logits"):
        check_model(_handle(TinyNet(num_classes=3).eval(), ["a", "b"]))
    with pytest.raises(ValueError, match="registered name"):
        check_model(_handle(TinyNet().eval()), checks=["options"])


def test_check_model_catches_a_loader_that_ignores_its_checkpoint():
    def honest(pretrained: bool = True, checkpoint: str | None = None) -> ModelHandle:
        module = TinyNet(num_classes=3)
        if checkpoint is not None:
            load_checkpoint(module, checkpoint)
        return _handle(module.eval(), ["a", "b", "c"])

    def forgetful(pretrained: bool = True, checkpoint: str | None = None) -> ModelHandle:
        return _handle(TinyNet(num_classes=3).eval(), ["a", "b", "c"])

    def rigid() -> ModelHandle:
        return _handle(TinyNet(num_classes=3).eval(), ["a", "b", "c"])

    plugin = types.SimpleNamespace()

    @xai_core.hookimpl
    def register_models(register):
        register("honest", honest)
        register("forgetful", forgetful)
        register("rigid", rigid)

    plugin.register_models = register_models
    xai_core.register_plugin(plugin, name="loaders")
    check_model("honest")
    with pytest.raises(ContractError, match="options: checkpoint=PATH was not loaded"):
        check_model("forgetful")
    with pytest.raises(ContractError, match="unexpected keyword argument 'pretrained'"):
        check_model("rigid")


class OwnAttribute(xai_core.Attributor):
    """A plugin that overrides ``attribute`` and so skips the base class's mode handling."""

    name = "own_attribute"

    def attribute(self, model, inputs, target="predicted"):
        module = as_model_handle(model).module
        x = inputs.detach().clone().requires_grad_(True)
        scores = module(x)[torch.arange(len(x)), torch.as_tensor(target)]
        (grads,) = torch.autograd.grad(scores.sum(), x)
        return xai_core.Attribution(
            maps=grads.abs().amax(1), targets=torch.as_tensor(target), method=self.name
        )

    def compute(self, model, inputs, targets, context):
        raise AssertionError("not called")


def test_check_attributor_catches_a_technique_that_fails_inside_inference_mode():
    assert "modes" in ATTRIBUTOR_CHECKS
    with pytest.raises(ContractError) as info:
        check_attributor(OwnAttribute, checks=["shapes", "modes"])
    message = str(info.value)
    assert "modes: fails under torch.inference_mode(): RuntimeError" in message
    assert "modes: fails under torch.no_grad(): RuntimeError" in message
    assert "shapes" not in message  # outside any mode it works


def test_attribute_from_inside_inference_mode_and_no_grad_gives_the_same_maps():
    model = default_model()
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    saliency = xai_core.get_attributor("saliency")
    outside = saliency.attribute(model, inputs, [0, 1]).maps
    with torch.inference_mode():
        made_inside = inputs.clone()  # an inference tensor, as preprocessing there makes
        assert made_inside.is_inference()
        inside = saliency.attribute(model, made_inside, [0, 1]).maps
    with torch.no_grad():
        quiet = saliency.attribute(model, inputs, [0, 1]).maps
    assert torch.equal(inside, outside) and torch.equal(quiet, outside)
    assert outside.abs().sum() > 0


def test_a_model_made_under_inference_mode_is_refused_before_it_is_touched():
    from xai_core.errors import ModelLoadError

    with torch.inference_mode():
        module = TinyNet().eval()
    with pytest.raises(ModelLoadError, match=r"features.0.weight.*\(\+\d+ more\) were created "
                       r"under torch.inference_mode\(\).*create or load the model outside"):
        xai_core.get_attributor("saliency").attribute(module, torch.randn(1, 3, 32, 32), 0)
    assert all(p.requires_grad for p in module.parameters())
