"""Contract tests any plugin author can run on their own technique.

    from xai_core.testing import check_attributor

    def test_my_technique_keeps_the_contract():
        check_attributor("my_technique")

Each check builds a small model (or takes yours), calls the technique the way xai-core will, and
raises :class:`ContractError` listing every broken rule:

``shapes``       maps ``[N, H, W]`` at input resolution, targets ``[N]`` (images ``[N,3,H,W]``
                 in ``[0, 1]`` for synthesizers)
``finite``       no NaN or infinity
``hooks``        no torch hook left on any module afterwards
``state``        model mode, ``requires_grad`` flags and weights exactly as before, and the
                 model's logits bit-identical after the call
``batch``        a batch gives the same maps as the items one by one (within tolerance)
``determinism``  two calls with the same seed give identical results
``targets``      several targets per input give the same maps as one call per target

xai-core runs the same checks over every built-in technique (``tests/test_contract.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.technique import Attributor, Synthesizer

__all__ = [
    "ContractError",
    "ATTRIBUTOR_CHECKS",
    "SYNTHESIZER_CHECKS",
    "TinyNet",
    "hook_count",
    "check_attributor",
    "check_synthesizer",
]

ATTRIBUTOR_CHECKS = ("shapes", "finite", "hooks", "state", "batch", "determinism", "targets")
SYNTHESIZER_CHECKS = ("shapes", "finite", "hooks", "state", "determinism")


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


def _default_model() -> ModelHandle:
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


def _snapshot(module: nn.Module) -> dict[str, Any]:
    return {
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
    }


def _compare_state(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
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


def _resolve(kind: type, technique: str | type | Any, params: Mapping[str, Any] | None) -> Any:
    from xai_core.plugins.factory import get_attributor, get_synthesizer

    if isinstance(technique, str):
        factory = get_attributor if kind is Attributor else get_synthesizer
        return factory(technique, **dict(params or {}))
    if isinstance(technique, type):
        return technique(**dict(params or {}))
    return technique


def _run_checks(checks: Iterable[str], valid: tuple[str, ...], body: Callable[[str], list[str]]):
    problems: list[str] = []
    for check in checks:
        if check not in valid:
            raise ValueError(f"unknown check {check!r}; valid checks: {', '.join(valid)}")
        try:
            problems.extend(body(check))
        except Exception as exc:  # a crash is a broken contract too; report it with the rest
            problems.append(f"{check}: raised {type(exc).__name__}: {exc}")
    return problems


def check_attributor(
    technique: str | type | Attributor,
    *,
    params: Mapping[str, Any] | None = None,
    model: ModelHandle | nn.Module | None = None,
    inputs: Tensor | None = None,
    targets: list[int] | None = None,
    checks: Iterable[str] = ATTRIBUTOR_CHECKS,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``technique`` keeps the attributor contract.

    :param technique: a registered name, an :class:`Attributor` subclass, or an instance.
    :param params: parameters when ``technique`` is a name or class.
    :param model: defaults to :class:`TinyNet` (10 classes).
    :param inputs: defaults to 3 random images ``[3, 3, 48, 48]``.
    :param targets: one class per input (defaults to ``0, 1, 2, ...``).
    :param checks: a subset of :data:`ATTRIBUTOR_CHECKS`.
    """
    method = _resolve(Attributor, technique, params)
    handle = as_model_handle(model) if model is not None else _default_model()
    if inputs is None:
        inputs = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(seed))
    n = inputs.shape[0]
    targets = (
        list(targets) if targets is not None else [i % (handle.num_classes or 2) for i in range(n)]
    )
    module = handle.module

    def call(x: Tensor, target: Any) -> Any:
        torch.manual_seed(seed)
        return method.attribute(handle, x, target)

    with torch.no_grad():
        logits_before = module(inputs)
    before = _snapshot(module)
    hooks_before = hook_count(module)
    first = call(inputs, targets)

    def check(name: str) -> list[str]:
        maps = first.maps
        if name == "shapes":
            expected = (n, inputs.shape[2], inputs.shape[3])
            out = []
            if tuple(maps.shape) != expected:
                out.append(f"shapes: maps are {tuple(maps.shape)}, expected {expected}")
            if first.targets.tolist() != targets:
                out.append(f"shapes: targets are {first.targets.tolist()}, expected {targets}")
            return out
        if name == "finite":
            return [] if torch.isfinite(maps).all() else ["finite: maps contain NaN or infinity"]
        if name == "hooks":
            left = hook_count(module) - hooks_before
            return [f"hooks: {left} torch hook(s) left on the model"] if left else []
        if name == "state":
            out = _compare_state(before, _snapshot(module))
            with torch.no_grad():
                if not torch.equal(module(inputs), logits_before):
                    out.append("state: the model's logits changed after the call")
            return out
        if name == "batch":
            singles = torch.cat([call(inputs[i : i + 1], [targets[i]]).maps for i in range(n)])
            if not torch.allclose(singles, maps, atol=atol, rtol=rtol):
                gap = (singles - maps).abs().max().item()
                return [f"batch: batched maps differ from per-item maps (max gap {gap:.3g})"]
            return []
        if name == "determinism":
            again = call(inputs, targets).maps
            return [] if torch.equal(again, maps) else ["determinism: same seed, different maps"]
        if name == "targets":
            k = min(2, handle.num_classes or 2)
            several = [[(t + j) % (handle.num_classes or 2) for j in range(k)] for t in targets]
            result = call(inputs, several)
            out = []
            if result.maps.shape[0] != n * k:
                return [f"targets: {n} inputs x {k} targets gave {result.maps.shape[0]} maps"]
            for j in range(k):
                single = call(inputs, [row[j] for row in several]).maps
                if not torch.allclose(result.maps[j::k], single, atol=atol, rtol=rtol):
                    out.append("targets: several targets per input differ from one call each")
                    break
            return out
        raise AssertionError(name)

    problems = _run_checks(checks, ATTRIBUTOR_CHECKS, check)
    if problems:
        raise ContractError(f"{method.name or type(method).__name__}: " + "; ".join(problems))


def check_synthesizer(
    technique: str | type | Synthesizer,
    *,
    params: Mapping[str, Any] | None = None,
    model: ModelHandle | nn.Module | None = None,
    images: Tensor | None = None,
    targets: list[int] | None = None,
    checks: Iterable[str] = SYNTHESIZER_CHECKS,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``technique`` keeps the synthesizer contract.

    :param images: starting images in ``[0, 1]`` (defaults to 2 random ``48x48`` images).
    """
    method = _resolve(Synthesizer, technique, params)
    handle = as_model_handle(model) if model is not None else _default_model()
    if images is None:
        images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(seed))
    n = images.shape[0]
    targets = (
        list(targets)
        if targets is not None
        else [(i + 1) % (handle.num_classes or 2) for i in range(n)]
    )
    module = handle.module

    def call() -> Any:
        torch.manual_seed(seed)
        return method.synthesize(handle, targets, images=images)

    with torch.no_grad():
        logits_before = module(handle.normalize(images))
    before = _snapshot(module)
    hooks_before = hook_count(module)
    first = call()

    def check(name: str) -> list[str]:
        out: list[str] = []
        if name == "shapes":
            if first.images.shape[0] != n or first.images.shape[1] != 3 or first.images.ndim != 4:
                out.append(f"shapes: images are {tuple(first.images.shape)}, expected [{n},3,H,W]")
            if first.images.min() < 0 or first.images.max() > 1:
                out.append("shapes: images leave pixel space [0, 1]")
            if len(first.records) != n:
                out.append(f"shapes: {len(first.records)} records for {n} images")
        elif name == "finite":
            if not torch.isfinite(first.images).all():
                out.append("finite: images contain NaN or infinity")
        elif name == "hooks":
            left = hook_count(module) - hooks_before
            if left:
                out.append(f"hooks: {left} torch hook(s) left on the model")
        elif name == "state":
            out.extend(_compare_state(before, _snapshot(module)))
            with torch.no_grad():
                if not torch.equal(module(handle.normalize(images)), logits_before):
                    out.append("state: the model's logits changed after the call")
        elif name == "determinism":
            if not torch.equal(call().images, first.images):
                out.append("determinism: same seed, different images")
        return out

    problems = _run_checks(checks, SYNTHESIZER_CHECKS, check)
    if problems:
        raise ContractError(f"{method.name or type(method).__name__}: " + "; ".join(problems))


def default_params(technique_cls: type) -> dict[str, Any]:
    """The defaults of a technique's ``Params`` as a dict (handy for parametrized tests)."""
    return dataclasses.asdict(technique_cls.Params())
