"""``check_metric`` and ``check_model`` (xai_core.testing): every built-in metric and model
passes them, and each check catches the mistake it is there for."""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest
import torch

import xai_core
from xai_core import plugins
from xai_core.contracts.model import ModelHandle, Preprocessing, load_checkpoint
from xai_core.testing import ContractError, TinyNet, check_metric, check_model


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
