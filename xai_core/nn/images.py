"""Image operations techniques and metrics share: the one Gaussian blur (:func:`gaussian_blur`) and
the one vocabulary of baselines (:data:`BASELINES`, :func:`baseline_inputs`), what a removed,
occluded or masked-out region is filled with and where an integrated-gradients path starts.

Each technique offers the subset of :data:`BASELINES` that makes sense for it, as the ``choices`` of
its ``baseline`` parameter, and builds the tensor here: ``zeros`` means the same thing to occlusion,
RISE, integrated gradients and the deletion metric.

Reference-based gradient methods (integrated gradients, DeepLIFT, gradient SHAP) also take a
baseline the user made: a ``.npy``/``.pt`` file or, from Python, a tensor. :class:`Baseline` is
that parameter resolved, whatever form it came in: :meth:`Baseline.parse` checks and loads it,
:meth:`Baseline.per_input` gives one baseline per input (a path's start) and
:func:`baseline_set` a set of them per input (the references SHAP-style methods average over).
:func:`check_baseline_value` (:func:`check_baseline_list` for a set) is the cheap check for a
``Params.__post_init__`` and
:func:`pop_baseline_tensor` takes a tensor out of a technique's constructor arguments, so that the
``Params`` field stays a string.

Everything works on normalized batches ``[N, C, H, W]``; normalization is a per-channel affine
map, so blurring normalized inputs equals normalizing blurred pixels. What does not live here:
masks and windows of single techniques (RISE's grids, occlusion's windows stay with them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from xai_core.errors import ConfigError, did_you_mean

__all__ = [
    "BASELINES",
    "REFERENCE_BASELINES",
    "RENAMED_BASELINES",
    "TENSOR_BASELINE",
    "Baseline",
    "Normalizer",
    "baseline_inputs",
    "baseline_set",
    "check_baseline",
    "check_baseline_list",
    "check_baseline_value",
    "gaussian_blur",
    "load_baseline_file",
    "pop_baseline_tensor",
]


class Normalizer(Protocol):
    """Anything with the model's normalization (a :class:`~xai_core.ModelHandle` or its
    :class:`~xai_core.Preprocessing`)."""

    def normalize(self, pixels: Tensor) -> Tensor: ...


#: Every baseline a technique may offer:
#:
#: * ``zeros``: zeros in normalized space, i.e. the dataset's mean colour;
#: * ``black``: black pixels (0 before normalization);
#: * ``blur``: the image under :func:`gaussian_blur` of ``blur_sigma`` pixels;
#: * ``mean``: each image's own per-channel mean colour;
#: * ``uniform``: one image of uniform noise pixels drawn from ``seed``, the same for every item.
BASELINES = ("zeros", "black", "blur", "mean", "uniform")

#: The named baselines a reference-based gradient method (integrated gradients, DeepLIFT, gradient
#: SHAP) offers: ``mean`` is left out, a per-image colour being no "absence of signal".
REFERENCE_BASELINES = ("black", "zeros", "blur", "uniform")

#: What a baseline parameter says when its value was given as a tensor from Python
#: (:func:`pop_baseline_tensor`); not a name a config may use on its own.
TENSOR_BASELINE = "tensor"

#: Names that earlier versions used, and what they are called now.
RENAMED_BASELINES = {"zero": "zeros"}


def check_baseline(value: str, key: str = "baseline") -> None:
    """Raise ``ValueError`` naming the current name when ``value`` is a renamed baseline.

    Meant for a ``Params.__post_init__``: the config layer turns it into a ``ConfigError``.
    """
    if value in RENAMED_BASELINES:
        raise ValueError(f"{key}: {value!r} is now called {RENAMED_BASELINES[value]!r}")


def baseline_inputs(
    kind: str,
    inputs: Tensor,
    normalizer: Normalizer,
    *,
    blur_sigma: float = 10.0,
    blur_radius: int | None = None,
    seed: int = 0,
) -> Tensor:
    """The baseline ``kind`` for a normalized batch ``[N, C, H, W]``, broadcastable to it
    (``zeros``, ``black`` and ``mean`` are ``[N, C, 1, 1]``; use ``expand_as`` for a full batch).

    :param kind: one of :data:`BASELINES`.
    :param normalizer: gives the normalization, so that ``black`` and ``uniform`` are what they
        say in pixel space.
    :param blur_sigma: standard deviation in pixels of the ``blur`` baseline.
    :param blur_radius: kernel radius of the ``blur`` baseline (see :func:`gaussian_blur`).
    :param seed: seed of the ``uniform`` noise image, drawn on the CPU so that it depends on the
        seed only (not on the batch or the device).
    """
    if kind == "zeros":
        return torch.zeros_like(inputs[:, :, :1, :1])
    if kind == "black":
        return normalizer.normalize(torch.zeros_like(inputs[:, :, :1, :1]))
    if kind == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True)
    if kind == "blur":
        return gaussian_blur(inputs, blur_sigma, blur_radius)
    if kind == "uniform":
        pixels = torch.rand(inputs.shape[1:], generator=torch.Generator().manual_seed(seed))
        return normalizer.normalize(pixels.to(inputs)).expand_as(inputs)
    check_baseline(kind)
    raise ValueError(f"unknown baseline {kind!r}; use one of {', '.join(BASELINES)}")


def gaussian_blur(images: Tensor, sigma: float, radius: int | None = None) -> Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` with reflect padding.

    :param sigma: standard deviation in pixels.
    :param radius: taps each side of the centre; by default ``ceil(3 sigma)``, which keeps all
        but 0.3% of the Gaussian's weight. The deletion metric passes the paper's 11-tap kernel
        (radius 5). The radius is capped at ``size - 1``, what reflect padding can mirror.

    Reflect padding (``d c b | a b c d``; scipy's ``mirror``, torchvision's ``gaussian_blur``)
    keeps the border's texture statistics. Edge replication, the other common choice, smears the
    outermost row over the whole radius (30 pixels at ``sigma`` 10), so a blurred border is a
    constant band that no blur of a real photo looks like; zero padding darkens the border.
    """
    radius = max(1, math.ceil(3 * sigma)) if radius is None else radius
    radius = max(0, min(radius, images.shape[-2] - 1, images.shape[-1] - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect") if radius else images
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(padded, rows, groups=channels), cols, groups=channels)


_BASELINE_SUFFIXES = (".npy", ".pt")


def check_baseline_value(
    value: str, choices: Sequence[str] = REFERENCE_BASELINES, key: str = "baseline"
) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``, :data:`TENSOR_BASELINE` or an
    existing ``.npy``/``.pt`` file; the message lists the names and the close matches.

    Meant for a ``Params.__post_init__`` (the config layer turns the error into a
    ``ConfigError``); the file is only looked for here, :meth:`Baseline.parse` loads it.
    """
    check_baseline(value, key)
    if value in choices or value == TENSOR_BASELINE:
        return
    if value.endswith(_BASELINE_SUFFIXES):
        if not Path(value).is_file():
            raise ValueError(f"{key}: baseline file {value!r} does not exist")
        return
    raise ValueError(
        f"{key}: unknown baseline {value!r}{did_you_mean(value, choices)} Use one of "
        f"{', '.join(choices)}, or a .npy/.pt file holding a normalized tensor [C, H, W] or "
        "[B, C, H, W]"
    )


def check_baseline_list(
    values: Sequence[str], choices: Sequence[str] = REFERENCE_BASELINES, key: str = "baselines"
) -> None:
    """Raise ``ValueError`` for an empty baseline set or an entry that
    :func:`check_baseline_value` refuses (named ``key[i]``); for a ``Params.__post_init__``."""
    if not values:
        raise ValueError(f"{key}: the set is empty; give at least one baseline")
    for i, value in enumerate(values):
        check_baseline_value(value, choices, f"{key}[{i}]")


def load_baseline_file(path: str | Path) -> Tensor:
    """The float32 tensor stored in ``path`` (``.npy`` through numpy, ``.pt`` through
    ``torch.load(weights_only=True)``), on the CPU."""
    path = str(path)
    try:
        if path.endswith(".npy"):
            loaded: Any = torch.from_numpy(np.load(path))
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ConfigError(f"cannot read baseline file {path!r}: {exc}") from exc
    if not isinstance(loaded, Tensor):
        raise ConfigError(
            f"baseline file {path!r} holds a {type(loaded).__name__}, not a tensor: save one "
            "tensor [C, H, W] or [B, C, H, W] (torch.save(tensor, path) or np.save)"
        )
    return loaded.float()


def pop_baseline_tensor(
    params: Any, overrides: dict[str, Any], key: str = "baseline", *, as_list: bool = False
) -> tuple[Any, dict[str, Any], Tensor | None]:
    """Take a tensor given for ``key`` out of a technique's constructor arguments.

    ``Technique.__init__(params, **overrides)`` builds a ``Params`` dataclass whose ``key`` field
    is a string; a tensor for it (``DeepLift(baseline=tensor)`` or ``DeepLift({"baseline":
    tensor})``) is replaced by :data:`TENSOR_BASELINE` and returned, to be given to
    :meth:`Baseline.parse`. Returns ``(params, overrides, tensor or None)``; ``params`` is
    copied, never changed in place. ``as_list``: the field is a list of strings (a baseline
    set, :func:`baseline_set`), which gets ``[TENSOR_BASELINE]``.
    """
    tensor = None
    if isinstance(overrides.get(key), Tensor):
        overrides = dict(overrides)
        tensor = overrides.pop(key)
    elif isinstance(params, Mapping) and isinstance(params.get(key), Tensor):
        params = dict(params)
        tensor = params.pop(key)
    if tensor is not None:
        overrides = {**overrides, key: [TENSOR_BASELINE] if as_list else TENSOR_BASELINE}
    return params, overrides, tensor


@dataclass(frozen=True)
class Baseline:
    """A baseline parameter resolved: a name of :data:`BASELINES`, a file's tensor or a given
    tensor.

    :ivar source: what the user gave (the name, the file path, or :data:`TENSOR_BASELINE`), for
        messages.
    :ivar tensor: the file's or the given tensor, ``[C, H, W]`` or ``[B, C, H, W]`` in normalized
        space, on the CPU; ``None`` for a named baseline.

    Build one with :meth:`parse`; integrated gradients and DeepLIFT take one baseline per input
    (:meth:`per_input`), DeepLIFT-SHAP and gradient SHAP a set (:func:`baseline_set`).
    """

    source: str
    tensor: Tensor | None = None

    @classmethod
    def parse(
        cls,
        value: str | Tensor,
        choices: Sequence[str] = REFERENCE_BASELINES,
        *,
        tensor: Tensor | None = None,
        key: str = "baseline",
    ) -> Baseline:
        """``value`` as a baseline: one of ``choices``, a ``.npy``/``.pt`` file (loaded now), a
        tensor, or :data:`TENSOR_BASELINE` with the tensor in ``tensor`` (what
        :func:`pop_baseline_tensor` returned). Raises :class:`~xai_core.errors.ConfigError`
        naming ``key``, the valid names and close matches."""
        if isinstance(value, Tensor):
            value, tensor = TENSOR_BASELINE, value
        if value == TENSOR_BASELINE:
            if tensor is None:
                raise ConfigError(
                    f"{key}: {TENSOR_BASELINE!r} stands for a tensor given from Python "
                    f"({key}=tensor); in a config use one of {', '.join(choices)} or a .npy/.pt "
                    "file"
                )
        else:
            try:
                check_baseline_value(value, choices, key)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if value in choices:
                return cls(value)
            tensor = load_baseline_file(value)
        assert tensor is not None
        if tensor.ndim not in (3, 4) or not tensor.is_floating_point():
            raise ConfigError(
                f"{key}: baseline {value!r} is a {tensor.ndim}-d {tensor.dtype} tensor of shape "
                f"{tuple(tensor.shape)}; give a float tensor [C, H, W] or [B, C, H, W] in the "
                "model's normalized space"
            )
        return cls(value, tensor.detach().float().cpu())

    def _shape_error(self, inputs: Tensor, expected: str) -> ConfigError:
        assert self.tensor is not None
        return ConfigError(
            f"baseline {self.source!r} of shape {tuple(self.tensor.shape)} does not fit inputs of "
            f"shape {tuple(inputs.shape)}: give {expected}"
        )

    def per_input(
        self,
        inputs: Tensor,
        normalizer: Normalizer,
        *,
        input_index: Tensor | None = None,
        blur_sigma: float = 10.0,
        seed: int = 0,
    ) -> Tensor:
        """One baseline per row of ``inputs`` ``[N, C, H, W]``, expanded to ``[N, C, H, W]``.

        A named baseline comes from :func:`baseline_inputs`. A tensor is ``[C, H, W]`` or
        ``[1, C, H, W]`` (the same for every row) or ``[N, C, H, W]`` (one per row); with
        several targets per input, where the rows repeat the inputs, one per *input* also fits:
        ``input_index`` (an attributor's ``context.input_index``) picks each row's.
        """
        if self.tensor is None:
            named = baseline_inputs(
                self.source, inputs, normalizer, blur_sigma=blur_sigma, seed=seed
            )
            return named.expand_as(inputs)
        b = self.tensor.to(inputs)
        if b.ndim == 3:
            b = b[None]
        if b.shape[0] not in (1, len(inputs)) and input_index is not None:
            if b.shape[0] == int(input_index.max()) + 1:
                b = b[input_index.to(b.device)]
        if b.shape[1:] != inputs.shape[1:] or b.shape[0] not in (1, len(inputs)):
            size = "x".join(str(d) for d in inputs.shape[1:])
            raise self._shape_error(
                inputs, f"[{size}], [1x{size}] or one per input [{len(inputs)}x{size}]"
            )
        return b.expand_as(inputs)

    def references(
        self, inputs: Tensor, normalizer: Normalizer, *, blur_sigma: float, seed: int,
        uniform_count: int,
    ) -> Tensor:
        """This baseline's share of a reference set, ``[N or 1, B, C, H, W]``: dimension 0 is
        ``N`` when the references depend on the input (``blur``), else 1. The options have their
        defaults in :func:`baseline_set`, which calls this for each baseline of a set.

        A tensor ``[B, C, H, W]`` gives its ``B`` images to every input, ``[C, H, W]`` one;
        ``uniform`` gives ``uniform_count`` noise images, drawn from seeds ``seed``,
        ``seed + 1``, ... (the first is integrated gradients' ``uniform`` with the same seed).
        """
        if self.tensor is not None:
            b = self.tensor.to(inputs)
            b = b[None] if b.ndim == 3 else b
            if b.shape[1:] != inputs.shape[1:]:
                size = "x".join(str(d) for d in inputs.shape[1:])
                raise self._shape_error(inputs, f"[{size}] or a set [B x {size}]")
            return b[None]
        if self.source == "uniform":
            images = [
                baseline_inputs("uniform", inputs[:1], normalizer, seed=seed + k)
                for k in range(uniform_count)
            ]
            return torch.cat(images)[None]
        named = baseline_inputs(self.source, inputs, normalizer, blur_sigma=blur_sigma, seed=seed)
        if named.shape[0] == 1 or self.source in ("zeros", "black"):
            return named[:1].expand(1, *inputs.shape[1:])[:, None]
        return named.expand_as(inputs)[:, None]


def baseline_set(
    baselines: Sequence[Baseline],
    inputs: Tensor,
    normalizer: Normalizer,
    *,
    blur_sigma: float = 10.0,
    seed: int = 0,
    uniform_count: int = 1,
) -> Tensor:
    """The references of every input, ``[N or 1, B, C, H, W]``: each of ``baselines``'
    :meth:`Baseline.references`, in order, concatenated along dimension 1. Dimension 0 is 1
    when no reference depends on the input, so a shared set costs its size only once."""
    if not baselines:
        raise ConfigError("the baseline set is empty; give at least one baseline")
    parts = [
        b.references(
            inputs, normalizer, blur_sigma=blur_sigma, seed=seed, uniform_count=uniform_count
        )
        for b in baselines
    ]
    rows = max(p.shape[0] for p in parts)
    return torch.cat([p.expand(rows, *p.shape[1:]) for p in parts], dim=1)
