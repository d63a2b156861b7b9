"""Contract checks of models and their loaders."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle
from xai_core.models.loading import load_model
from xai_core.testing.common import MODEL_CHECKS, ContractError, run_checks


def _shifted_state(module: nn.Module) -> dict[str, Tensor]:
    """The module's state with every floating-point tensor moved by 0.25: weights no loader can
    produce by accident, so loading them proves the checkpoint was read."""
    return {
        key: (value.detach().cpu() + 0.25 if value.is_floating_point() else value.detach().cpu())
        for key, value in module.state_dict().items()
    }


def check_model(
    model: str | ModelHandle,
    *,
    options: Mapping[str, Any] | None = None,
    batch_size: int = 2,
    checks: Iterable[str] | None = None,
    atol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``model`` keeps the model contract.

    :param model: a registered model name, loaded with ``pretrained=False`` (nothing downloads)
        updated with ``options``; or a :class:`ModelHandle` you built.
    :param options: loader options, e.g. ``{"pretrained": True}`` to check shipped weights.
    :param batch_size: images in the batch the logits check runs.
    :param checks: a subset of :data:`MODEL_CHECKS`; by default all of them for a name, all
        but ``options`` (which calls the loader again) for a handle.
    """

    name = model if isinstance(model, str) else None
    load_options = {"pretrained": False, **dict(options or {})}
    if checks is None:
        checks = MODEL_CHECKS if name is not None else MODEL_CHECKS[:-1]
    checks = tuple(checks)
    if name is None and "options" in checks:
        raise ValueError("the 'options' check loads the model again: give a registered name")
    label = name or getattr(model, "name", type(model).__name__)
    if name is not None:
        try:
            model = load_model(name, **load_options)
        except Exception as exc:
            raise ContractError(
                f"{label}: load_model({name!r}, **{load_options!r}) raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(model, ModelHandle):
        raise ContractError(f"{label}: handle: got {type(model).__name__}, not a ModelHandle")
    handle = model
    module = handle.module
    generator = torch.Generator().manual_seed(seed)
    size = tuple(handle.preprocessing.input_size)
    pixels = torch.rand(batch_size, 3, *size, generator=generator)
    logits: list[Tensor] = []

    def run_logits() -> Tensor:
        if not logits:
            with torch.no_grad():
                logits.append(handle(handle.normalize(pixels).to(handle.device)))
        return logits[0]

    def check(check_name: str) -> list[str]:
        out: list[str] = []
        if check_name == "handle":
            if not isinstance(module, nn.Module):
                return [f"handle: module is {type(module).__name__}, not a torch.nn.Module"]
            training = [path or "(root)" for path, m in module.named_modules() if m.training]
            if training:
                out.append(f"handle: modules in training mode: {', '.join(training[:5])}")
        elif check_name == "logits":
            out_logits = run_logits()
            classes = handle.num_classes
            expected = (batch_size, classes if classes is not None else -1)
            if not isinstance(out_logits, Tensor) or out_logits.ndim != 2:
                got = getattr(out_logits, "shape", type(out_logits).__name__)
                return [f"logits: the module returned {got}, expected [N, num_classes]"]
            if out_logits.shape[0] != batch_size or (
                classes is not None and out_logits.shape[1] != classes
            ):
                out.append(
                    f"logits: {tuple(out_logits.shape)} for a batch at {size}, expected "
                    f"{expected} (num_classes -1: unknown)"
                )
            if not torch.isfinite(out_logits).all():
                out.append("logits: NaN or infinity")
        elif check_name == "class_names":
            names = handle.class_names
            if names is not None:
                if not all(isinstance(c, str) for c in names):
                    out.append("class_names: not all strings")
                classes = run_logits().shape[1]
                if len(names) != classes:
                    out.append(f"class_names: {len(names)} names for {classes} logits")
        elif check_name == "preprocessing":
            prep = handle.preprocessing
            if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
                return [f"preprocessing: input_size {size} is not (height, width)"]
            back = handle.denormalize(handle.normalize(pixels))
            if not torch.allclose(back, pixels, atol=atol):
                out.append("preprocessing: denormalize(normalize(x)) differs from x")
            photo = Image.new("RGB", (size[1] + 13, size[0] + 7), (200, 120, 40))
            converted = prep.to_pixels(photo)
            if tuple(converted.shape) != (3, *size):
                out.append(
                    f"preprocessing: to_pixels gave {tuple(converted.shape)}, expected (3, *{size})"
                )
            elif converted.min() < 0 or converted.max() > 1:
                out.append("preprocessing: to_pixels leaves [0, 1]")
        elif check_name == "options":
            state = _shifted_state(module)
            with tempfile.TemporaryDirectory() as folder:
                path = f"{folder}/checkpoint.pt"
                torch.save(state, path)
                loaded = load_model(
                    label, **{**load_options, "pretrained": False, "checkpoint": path}
                )
            for key, value in loaded.module.state_dict().items():
                if key in state and not torch.equal(value.detach().cpu(), state[key]):
                    out.append(f"options: checkpoint=PATH was not loaded ({key!r} differs)")
                    break
        return out

    problems = run_checks(checks, MODEL_CHECKS, check)
    if problems:
        raise ContractError(f"{label}: " + "; ".join(problems))
