"""Contract checks of attributors and synthesizers: one function per check, each kit's in one
ordered table (:data:`ATTRIBUTOR_TABLE`, :data:`SYNTHESIZER_TABLE`) that the kit runs, the docs
list and the tests read."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.testing.common import (
    HOOKS_CHECK,
    STATE_CHECK,
    Check,
    ModelWatch,
    Reference,
    check_names,
    default_targets,
    run_technique_checks,
    technique_and_model,
)


@dataclass
class _AttributorRun:
    """What the attributor checks look at: the technique, its model and inputs, and the result
    of the first call (:attr:`first`), which most checks compare with."""

    method: Attributor
    handle: ModelHandle
    inputs: Tensor
    targets: list[int]
    atol: float
    rtol: float
    seed: int
    watch: ModelWatch
    reference: Reference = field(default_factory=Reference)

    def call(self, x: Tensor, target: Any) -> Any:
        torch.manual_seed(self.seed)
        return self.method.attribute(self.handle, x, target)

    @property
    def first(self) -> Any:
        return self.reference.result()

    def close(self, a: Tensor, b: Tensor) -> bool:
        return torch.allclose(a, b, atol=self.atol, rtol=self.rtol)


def _attributor_shapes(run: _AttributorRun) -> list[str]:
    first, n = run.first, run.inputs.shape[0]
    expected = (n, run.inputs.shape[2], run.inputs.shape[3])
    out = []
    if tuple(first.maps.shape) != expected:
        out.append(f"maps are {tuple(first.maps.shape)}, expected {expected}")
    if first.targets.tolist() != run.targets:
        out.append(f"targets are {first.targets.tolist()}, expected {run.targets}")
    return out


def _attributor_finite(run: _AttributorRun) -> list[str]:
    return [] if torch.isfinite(run.first.maps).all() else ["maps contain NaN or infinity"]


def _attributor_batch(run: _AttributorRun) -> list[str]:
    maps, inputs = run.first.maps, run.inputs
    singles = torch.cat(
        [run.call(inputs[i : i + 1], [run.targets[i]]).maps for i in range(inputs.shape[0])]
    )
    if run.close(singles, maps):
        return []
    gap = (singles - maps).abs().max().item()
    return [f"batched maps differ from per-item maps (max gap {gap:.3g})"]


def _attributor_determinism(run: _AttributorRun) -> list[str]:
    first = run.first.maps  # before the second call: not run when the first one failed
    again = run.call(run.inputs, run.targets).maps
    return [] if torch.equal(again, first) else ["same seed, different maps"]


def _attributor_targets(run: _AttributorRun) -> list[str]:
    run.reference.result()  # not run when the first call failed: this one would fail alike
    classes = run.handle.num_classes or 2
    n, k = run.inputs.shape[0], min(2, classes)
    several = [[(t + j) % classes for j in range(k)] for t in run.targets]
    result = run.call(run.inputs, several)
    if result.maps.shape[0] != n * k:
        return [f"{n} inputs x {k} targets gave {result.maps.shape[0]} maps"]
    for j in range(k):
        single = run.call(run.inputs, [row[j] for row in several]).maps
        if not run.close(result.maps[j::k], single):
            return ["several targets per input differ from one call each"]
    return []


def _attributor_modes(run: _AttributorRun) -> list[str]:
    # Inputs made inside the mode, as a caller's preprocessing would make them there: under
    # inference mode they are inference tensors, which autograd refuses.
    return [
        problem
        for mode in CALLER_MODES
        for problem in _same_maps(
            mode,
            lambda: run.call(run.inputs.clone(), run.targets).maps,
            run.first.maps,
            run.atol,
            run.rtol,
        )
    ]


def _attributor_forward_pass(run: _AttributorRun) -> list[str]:
    """A technique that serves its forward pass gives the model's logits and the same maps as
    without it (its ``compute`` running a pass of its own)."""
    run.reference.result()  # not run when the first call failed: this one would fail alike
    method, handle, inputs, targets = run.method, run.handle, run.inputs, run.targets
    if type(method).forward_pass is Attributor.forward_pass:
        return []
    out = []
    predicted = run.call(inputs, "predicted")
    with torch.no_grad():
        logits = handle.module(inputs).float().cpu()
    if predicted.logits is None or predicted.logits.shape != logits.shape:
        return ["the call's logits are missing or of the wrong shape"]
    if not run.close(predicted.logits, logits):
        gap = (predicted.logits - logits).abs().max().item()
        out.append(f"its logits differ from the model's (max gap {gap:.3g})")
    if predicted.targets.tolist() != predicted.logits.argmax(1).tolist():
        out.append("'predicted' targets are not the argmax of its logits")
    own_pass = copy.copy(method)
    own_pass.forward_pass = lambda model, x, context: None  # type: ignore[method-assign]
    served = run.call(inputs, targets).maps
    torch.manual_seed(run.seed)
    alone = own_pass.attribute(handle, inputs, targets).maps
    if not run.close(served, alone):
        gap = (served - alone).abs().max().item()
        out.append(f"maps from the shared pass differ from compute's own (max gap {gap:.3g})")
    return out


#: The autograd modes evaluation code explains from; a technique must work in each, with the
#: same maps as outside any mode (the ``modes`` check).
CALLER_MODES = (torch.inference_mode, torch.no_grad)


def _same_maps(
    mode: Any, maps_in_mode: Callable[[], Tensor], expected: Tensor, atol: float, rtol: float
) -> list[str]:
    where = f"torch.{mode.__name__}()"
    try:
        with mode():
            maps = maps_in_mode()
    except Exception as exc:  # noqa: BLE001 - a crash in one mode is a broken rule, listed
        return [f"fails under {where}: {type(exc).__name__}: {exc}"]
    if maps.shape != expected.shape or not torch.allclose(maps, expected, atol=atol, rtol=rtol):
        gap = (maps - expected).abs().max().item() if maps.shape == expected.shape else "shape"
        return [f"maps under {where} differ from maps outside it (max gap {gap})"]
    return []


#: The attributor contract, in the order :func:`check_attributor` runs it by default.
ATTRIBUTOR_TABLE: tuple[Check[_AttributorRun], ...] = (
    Check("shapes", _attributor_shapes, "maps `[N, H, W]` at input resolution, targets `[N]`"),
    Check("finite", _attributor_finite, "no NaN or infinity in the maps"),
    HOOKS_CHECK,
    STATE_CHECK,
    Check("batch", _attributor_batch, "a batch gives the maps of its items one by one"),
    Check("determinism", _attributor_determinism, "two calls with one seed give the same maps"),
    Check(
        "targets",
        _attributor_targets,
        "several targets per input give the maps of one call per target",
    ),
    Check(
        "modes",
        _attributor_modes,
        "inside `torch.inference_mode()` and `torch.no_grad()`, the maps of outside any mode",
    ),
    Check(
        "forward_pass",
        _attributor_forward_pass,
        "a served forward pass gives the model's logits and the maps of `compute`'s own pass",
    ),
)
ATTRIBUTOR_CHECKS = check_names(ATTRIBUTOR_TABLE)


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
    method, handle = technique_and_model(Attributor, technique, params, model)
    if inputs is None:
        inputs = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(seed))
    targets = list(targets) if targets is not None else default_targets(handle, inputs.shape[0])
    watch = ModelWatch(handle.module, inputs)
    run = _AttributorRun(method, handle, inputs, targets, atol, rtol, seed, watch)
    run_technique_checks(
        run, lambda: run.call(inputs, targets), "attribute", ATTRIBUTOR_TABLE, checks
    )


@dataclass
class _SynthesizerRun:
    """What the synthesizer checks look at; :attr:`first` is the first call's result."""

    method: Synthesizer
    handle: ModelHandle
    images: Tensor
    targets: list[int]
    seed: int
    watch: ModelWatch
    reference: Reference = field(default_factory=Reference)

    def call(self) -> Any:
        torch.manual_seed(self.seed)
        return self.method.synthesize(self.handle, self.targets, images=self.images)

    @property
    def first(self) -> Any:
        return self.reference.result()


def _synthesizer_shapes(run: _SynthesizerRun) -> list[str]:
    images, records, n = run.first.images, run.first.records, run.images.shape[0]
    out = []
    if images.shape[0] != n or images.shape[1] != 3 or images.ndim != 4:
        out.append(f"images are {tuple(images.shape)}, expected [{n},3,H,W]")
    if images.min() < 0 or images.max() > 1:
        out.append("images leave pixel space [0, 1]")
    if len(records) != n:
        out.append(f"{len(records)} records for {n} images")
    return out


def _synthesizer_finite(run: _SynthesizerRun) -> list[str]:
    return [] if torch.isfinite(run.first.images).all() else ["images contain NaN or infinity"]


def _synthesizer_determinism(run: _SynthesizerRun) -> list[str]:
    first = run.first.images  # before the second call: not run when the first one failed
    same = torch.equal(run.call().images, first)
    return [] if same else ["same seed, different images"]


#: The synthesizer contract, in the order :func:`check_synthesizer` runs it by default.
SYNTHESIZER_TABLE: tuple[Check[_SynthesizerRun], ...] = (
    Check(
        "shapes",
        _synthesizer_shapes,
        "images `[N, 3, H, W]` in `[0, 1]`, one record per image",
    ),
    Check("finite", _synthesizer_finite, "no NaN or infinity in the images"),
    HOOKS_CHECK,
    STATE_CHECK,
    Check("determinism", _synthesizer_determinism, "two calls with one seed, the same images"),
)
SYNTHESIZER_CHECKS = check_names(SYNTHESIZER_TABLE)


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
    method, handle = technique_and_model(Synthesizer, technique, params, model)
    if images is None:
        images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(seed))
    if targets is None:
        targets = default_targets(handle, images.shape[0], shift=1)
    watch = ModelWatch(handle.module, handle.normalize(images))
    run = _SynthesizerRun(method, handle, images, list(targets), seed, watch)
    run_technique_checks(run, run.call, "synthesize", SYNTHESIZER_TABLE, checks)
