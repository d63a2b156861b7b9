"""What every contract check shares: the error, the small default model, hook counting and
the before/after comparison of a model's state."""


from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.plugins.factory import get_attributor, get_metric, get_synthesizer

ATTRIBUTOR_CHECKS = (
    "shapes", "finite", "hooks", "state", "batch", "determinism", "targets", "modes",
    "forward_pass",
)
SYNTHESIZER_CHECKS = ("shapes", "finite", "hooks", "state", "determinism")
METRIC_CHECKS = ("shapes", "finite", "determinism", "requires", "hooks", "state")
MODEL_CHECKS = ("handle", "logits", "class_names", "preprocessing", "options")


class ContractError(AssertionError):
    """A technique broke one or more rules of the contract; the message lists them."""


class TinyNet(nn.Module):
    """A small CNN with in-place ReLUs, batch norm and a linear head: fast, and it exercises the
    things techniques most often get wrong (in-place ops, eval-mode layers, module reuse)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def default_model() -> ModelHandle:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    module = TinyNet().eval()
    with torch.no_grad():
        # Non-trivial batch-norm statistics, so eval mode matters.
        module.features[1].running_mean.uniform_(-0.2, 0.2)
        module.features[1].running_var.uniform_(0.5, 1.5)
    torch.random.set_rng_state(generator_state)
    return as_model_handle(module)


def hook_count(module: nn.Module) -> int:
    """Torch hooks of every kind registered on ``module`` and its submodules."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in module.modules()
    )


def state_snapshot(module: nn.Module) -> dict[str, Any]:
    return {
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
    }


def compare_state(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = []
    if before["training"] != after["training"]:
        problems.append("state: the model's train/eval modes changed")
    if before["requires_grad"] != after["requires_grad"]:
        problems.append("state: parameters' requires_grad flags changed")
    for key, value in before["state"].items():
        if not torch.equal(value, after["state"][key]):
            problems.append(f"state: weight or buffer {key!r} changed")
            break
    return problems


def resolve_technique(
    kind: type, technique: str | type | Any, params: Mapping[str, Any] | None
) -> Any:
    """An instance of ``technique`` (a registered name, a class or an instance) of ``kind``."""
    if isinstance(technique, str):
        factories = {Attributor: get_attributor, Synthesizer: get_synthesizer, Metric: get_metric}
        return factories[kind](technique, **dict(params or {}))
    if isinstance(technique, type):
        return technique(**dict(params or {}))
    return technique


def run_checks(checks: Iterable[str], valid: tuple[str, ...], body: Callable[[str], list[str]]):
    problems: list[str] = []
    for check in checks:
        if check not in valid:
            raise ValueError(f"unknown check {check!r}; valid checks: {', '.join(valid)}")
        try:
            problems.extend(body(check))
        except Exception as exc:  # a crash is a broken contract too; report it with the rest
            problems.append(f"{check}: raised {type(exc).__name__}: {exc}")
    return problems


def default_params(technique_cls: type) -> dict[str, Any]:
    """The defaults of a technique's ``Params`` as a dict (handy for parametrized tests)."""
    return dataclasses.asdict(technique_cls.Params())
