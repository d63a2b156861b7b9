"""Contract checks of attributors and synthesizers."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.testing.common import (
    ATTRIBUTOR_CHECKS,
    SYNTHESIZER_CHECKS,
    ContractError,
    compare_state,
    default_model,
    hook_count,
    resolve_technique,
    run_checks,
    state_snapshot,
)


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
    method = resolve_technique(Attributor, technique, params)
    handle = as_model_handle(model) if model is not None else default_model()
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
    before = state_snapshot(module)
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
            out = compare_state(before, state_snapshot(module))
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
        if name == "modes":
            # Inputs made inside the mode, as a caller's preprocessing would make them there:
            # under inference mode they are inference tensors, which autograd refuses.
            return [
                problem
                for mode in CALLER_MODES
                for problem in _same_maps(
                    mode, lambda: call(inputs.clone(), targets).maps, maps, atol, rtol
                )
            ]
        if name == "forward_pass":
            return _forward_pass_problems(
                method, handle, inputs, targets, call, atol, rtol, seed
            )
        raise AssertionError(name)

    problems = run_checks(checks, ATTRIBUTOR_CHECKS, check)
    if problems:
        raise ContractError(f"{method.name or type(method).__name__}: " + "; ".join(problems))


def _forward_pass_problems(
    method: Attributor,
    handle: ModelHandle,
    inputs: Tensor,
    targets: list[int],
    call: Callable[[Tensor, Any], Any],
    atol: float,
    rtol: float,
    seed: int,
) -> list[str]:
    """The ``forward_pass`` check: a technique that serves its forward pass gives the model's
    logits and the same maps as without it (its ``compute`` running a pass of its own)."""
    if type(method).forward_pass is Attributor.forward_pass:
        return []
    out = []
    predicted = call(inputs, "predicted")
    with torch.no_grad():
        logits = handle.module(inputs).float().cpu()
    if predicted.logits is None or predicted.logits.shape != logits.shape:
        return ["forward_pass: the call's logits are missing or of the wrong shape"]
    if not torch.allclose(predicted.logits, logits, atol=atol, rtol=rtol):
        gap = (predicted.logits - logits).abs().max().item()
        out.append(f"forward_pass: its logits differ from the model's (max gap {gap:.3g})")
    if predicted.targets.tolist() != predicted.logits.argmax(1).tolist():
        out.append("forward_pass: 'predicted' targets are not the argmax of its logits")
    own_pass = copy.copy(method)
    own_pass.forward_pass = lambda model, x, context: None  # type: ignore[method-assign]
    served = call(inputs, targets).maps
    torch.manual_seed(seed)
    alone = own_pass.attribute(handle, inputs, targets).maps
    if not torch.allclose(served, alone, atol=atol, rtol=rtol):
        gap = (served - alone).abs().max().item()
        out.append(
            f"forward_pass: maps from the shared pass differ from compute's own (max gap "
            f"{gap:.3g})"
        )
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
        return [f"modes: fails under {where}: {type(exc).__name__}: {exc}"]
    if maps.shape != expected.shape or not torch.allclose(maps, expected, atol=atol, rtol=rtol):
        gap = (maps - expected).abs().max().item() if maps.shape == expected.shape else "shape"
        return [f"modes: maps under {where} differ from maps outside it (max gap {gap})"]
    return []


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
    method = resolve_technique(Synthesizer, technique, params)
    handle = as_model_handle(model) if model is not None else default_model()
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
    before = state_snapshot(module)
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
            out.extend(compare_state(before, state_snapshot(module)))
            with torch.no_grad():
                if not torch.equal(module(handle.normalize(images)), logits_before):
                    out.append("state: the model's logits changed after the call")
        elif name == "determinism":
            if not torch.equal(call().images, first.images):
                out.append("determinism: same seed, different images")
        return out

    problems = run_checks(checks, SYNTHESIZER_CHECKS, check)
    if problems:
        raise ContractError(f"{method.name or type(method).__name__}: " + "; ".join(problems))
