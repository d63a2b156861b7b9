"""Contract checks of models and their loaders: one function per check, in one ordered table
(:data:`MODEL_TABLE`) that :func:`check_model` runs, the docs list and the tests read."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle
from xai_core.models.loading import load_model
from xai_core.testing.common import Check, ContractError, check_names, run_checks


def _shifted_state(module: nn.Module) -> dict[str, Tensor]:
    """The module's state with every floating-point tensor moved by 0.25: weights no loader can
    produce by accident, so loading them proves the checkpoint was read."""
    return {
        key: (value.detach().cpu() + 0.25 if value.is_floating_point() else value.detach().cpu())
        for key, value in module.state_dict().items()
    }


@dataclass
class _ModelRun:
    """What the model checks look at: the handle, its loader (when checked by name) and a batch
    of pixels at the model's input size; :meth:`logits` runs the batch once."""

    handle: ModelHandle
    name: str | None
    load_options: dict[str, Any]
    pixels: Tensor
    atol: float
    _logits: list[Tensor] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.handle.preprocessing.input_size)

    def logits(self) -> Tensor:
        if not self._logits:
            handle = self.handle
            with torch.no_grad():
                self._logits.append(handle(handle.normalize(self.pixels).to(handle.device)))
        return self._logits[0]


def _model_handle(run: _ModelRun) -> list[str]:
    module = run.handle.module
    if not isinstance(module, nn.Module):
        return [f"module is {type(module).__name__}, not a torch.nn.Module"]
    training = [path or "(root)" for path, m in module.named_modules() if m.training]
    return [f"modules in training mode: {', '.join(training[:5])}"] if training else []


def _model_logits(run: _ModelRun) -> list[str]:
    logits, classes, batch = run.logits(), run.handle.num_classes, run.pixels.shape[0]
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        got = getattr(logits, "shape", type(logits).__name__)
        return [f"the module returned {got}, expected [N, num_classes]"]
    out = []
    if logits.shape[0] != batch or (classes is not None and logits.shape[1] != classes):
        expected = (batch, classes if classes is not None else -1)
        out.append(
            f"{tuple(logits.shape)} for a batch at {run.size}, expected {expected} "
            "(num_classes -1: unknown)"
        )
    if not torch.isfinite(logits).all():
        out.append("NaN or infinity")
    return out


def _model_class_names(run: _ModelRun) -> list[str]:
    names = run.handle.class_names
    if names is None:
        return []
    out = [] if all(isinstance(c, str) for c in names) else ["not all strings"]
    classes = run.logits().shape[1]
    if len(names) != classes:
        out.append(f"{len(names)} names for {classes} logits")
    return out


def _model_preprocessing(run: _ModelRun) -> list[str]:
    handle, size, pixels = run.handle, run.size, run.pixels
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        return [f"input_size {size} is not (height, width)"]
    out = []
    if not torch.allclose(handle.denormalize(handle.normalize(pixels)), pixels, atol=run.atol):
        out.append("denormalize(normalize(x)) differs from x")
    channels = handle.in_chans
    photo: Image.Image | torch.Tensor = Image.new(
        "RGB", (size[1] + 13, size[0] + 7), (200, 120, 40)
    )
    if channels == 1:
        photo = photo.convert("L")
    elif channels != 3:  # other channel counts come from arrays (.npy inputs)
        photo = torch.rand(channels, size[0] + 7, size[1] + 13)
    converted = handle.preprocessing.to_pixels(photo)
    if tuple(converted.shape) != (channels, *size):
        out.append(f"to_pixels gave {tuple(converted.shape)}, expected ({channels}, *{size})")
    elif converted.min() < 0 or converted.max() > 1:
        out.append("to_pixels leaves [0, 1]")
    return out


def _model_options(run: _ModelRun) -> list[str]:
    state = _shifted_state(run.handle.module)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/checkpoint.pt"
        torch.save(state, path)
        options = {**run.load_options, "pretrained": False, "checkpoint": path}
        loaded = load_model(run.name, **options)
    for key, value in loaded.module.state_dict().items():
        if key in state and not torch.equal(value.detach().cpu(), state[key]):
            return [f"checkpoint=PATH was not loaded ({key!r} differs)"]
    return []


#: The model contract, in the order :func:`check_model` runs it by default; ``options`` (which
#: loads the model again) stays last, so a handle's default is every check but the last.
MODEL_TABLE: tuple[Check[_ModelRun], ...] = (
    Check("handle", _model_handle, "a `ModelHandle` whose module is in eval mode"),
    Check(
        "logits",
        _model_logits,
        "finite logits `[N, num_classes]` for a batch at `preprocessing.input_size`",
    ),
    Check("class_names", _model_class_names, "as many class names (strings) as classes"),
    Check(
        "preprocessing",
        _model_preprocessing,
        "`denormalize(normalize(x)) == x`; `to_pixels` gives `[C, H, W]` in `[0, 1]`",
    ),
    Check(
        "options",
        _model_options,
        "the loader takes `pretrained=False` and `checkpoint=PATH`, and loads that file",
    ),
)
MODEL_CHECKS = check_names(MODEL_TABLE)


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
    size = tuple(model.preprocessing.input_size)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(batch_size, model.in_chans, *size, generator=generator)
    run = _ModelRun(model, name, load_options, pixels, atol)
    run_checks(label, MODEL_TABLE, checks, run)
