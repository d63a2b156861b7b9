"""Feature visualization in the style of Lucid (Olah, Mordvintsev, Schubert 2017, Distill).

"Feature Visualization", https://distill.pub/2017/feature-visualization/. Three ingredients make
the images look like things rather than adversarial noise:

- a **Fourier-space image**: the parameters are the image's 2-D spectrum, scaled by ``1/f`` so
  that all frequencies start with equal energy (a preconditioner for gradient ascent);
- **decorrelated colour**: the parameters are in a decorrelated colour space that a fixed 3x3
  matrix (the square root of ImageNet's colour covariance) maps to RGB, then a sigmoid to
  ``(0, 1)``;
- **transformation robustness**: every step sees the image padded, jittered, rescaled, rotated
  and jittered again, so the objective must hold under small transformations.

Objectives (:class:`Objective`) go beyond the class logit: a channel of a layer, a single neuron,
and weighted sums of them, written as text in configs (:func:`parse_objective`):
``"class"``, ``"channel:blocks.5:12"``, ``"neuron:blocks.5:12"`` or
``"2*class + channel:blocks.5:3"``.

The synthesizer class is registered by :mod:`xai_core_plugins.synthesis`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import Synthesizer
from xai_core.contracts.synthesizer import SynthesisContext, SynthesisRecord
from xai_core.errors import ConfigError, XaiError
from xai_core.nn.gradients import class_scores
from xai_core.nn.hooks import get_module

from .class_visualization import image_size
from .common import image_records, progress

__all__ = [
    "FeatureVisualization",
    "FourierImage",
    "Objective",
    "class_logit",
    "channel",
    "neuron",
    "parse_objective",
    "robustness_transform",
]

#: Square root of ImageNet's RGB colour covariance (from its SVD), the matrix Lucid uses to map
#: decorrelated parameters to colours; columns scaled below so that none exceeds norm 1.
COLOR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
)

Scorer = Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]


class Objective:
    """A score per image to maximize, from layer activations, logits and targets.

    Objectives combine like numbers: ``2 * channel("blocks.5", 3) + class_logit()``.

    :ivar layers: module paths whose outputs the score reads.
    :ivar description: text form, for records and figure titles.
    """

    def __init__(self, layers: frozenset[str], score: Scorer, description: str):
        self.layers = layers
        self._score = score
        self.description = description

    def __call__(self, activations: dict[str, Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        """Scores ``[N]``."""
        return self._score(activations, logits, targets)

    def __add__(self, other: Objective) -> Objective:
        return Objective(
            self.layers | other.layers,
            lambda a, lg, t: self(a, lg, t) + other(a, lg, t),
            f"{self.description} + {other.description}",
        )

    def __mul__(self, weight: float) -> Objective:
        return Objective(
            self.layers, lambda a, lg, t: weight * self(a, lg, t), f"{weight:g}*{self.description}"
        )

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    def __repr__(self) -> str:
        return f"Objective({self.description!r})"


def class_logit(index: int | None = None) -> Objective:
    """The unnormalized score of each image's target class (or of class ``index`` for all)."""

    def score(_acts: dict[str, Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        wanted = targets if index is None else torch.full_like(targets, index)
        return class_scores(logits, wanted)

    return Objective(frozenset(), score, "class" if index is None else f"class:{index}")


def _channel_values(output: Tensor, layer: str, index: int) -> Tensor:
    """Channel ``index`` of a layer output: ``[N, H, W]`` for conv maps, ``[N, T]`` for tokens."""
    size = output.shape[1] if output.ndim in (2, 4) else output.shape[-1]
    if not 0 <= index < size:
        raise XaiError(f"layer {layer!r} has {size} channels; channel {index} does not exist")
    if output.ndim == 3:  # transformer tokens [N, T, C]
        return output[..., index]
    return output[:, index]


def channel(layer: str, index: int) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` over all positions."""

    def score(acts: dict[str, Tensor], _logits: Tensor, _targets: Tensor) -> Tensor:
        return _channel_values(acts[layer], layer, index).flatten(1).mean(dim=1)

    return Objective(frozenset({layer}), score, f"channel:{layer}:{index}")


def neuron(layer: str, index: int, x: int | None = None, y: int | None = None) -> Objective:
    """One unit: channel ``index`` of ``layer`` at position ``(x, y)`` (default: the centre).

    For transformer tokens ``[N, T, C]`` the position is the token ``x`` (default: the middle).
    """

    def score(acts: dict[str, Tensor], _logits: Tensor, _targets: Tensor) -> Tensor:
        values = _channel_values(acts[layer], layer, index)
        if values.ndim == 1:
            return values
        if values.ndim == 2:
            return values[:, values.shape[1] // 2 if x is None else x]
        h, w = values.shape[1:]
        return values[:, h // 2 if y is None else y, w // 2 if x is None else x]

    where = "" if x is None else f":{x}:{y}"
    return Objective(frozenset({layer}), score, f"neuron:{layer}:{index}{where}")


def _parse_term(text: str) -> Objective:
    weight = 1.0
    if "*" in text:
        factor, _, text = text.partition("*")
        try:
            weight = float(factor)
        except ValueError:
            raise ConfigError(f"objective weight {factor.strip()!r} is not a number") from None
    parts = [p.strip() for p in text.strip().split(":")]
    kind, args = parts[0], parts[1:]
    try:
        if kind == "class" and len(args) <= 1:
            term = class_logit(int(args[0]) if args else None)
        elif kind == "channel" and len(args) == 2:
            term = channel(args[0], int(args[1]))
        elif kind == "neuron" and len(args) in (2, 4):
            xy = (int(args[2]), int(args[3])) if len(args) == 4 else (None, None)
            term = neuron(args[0], int(args[1]), *xy)
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"objective term {text.strip()!r} is not one of 'class', 'class:INDEX', "
            "'channel:LAYER:CHANNEL', 'neuron:LAYER:CHANNEL[:X:Y]' (optionally 'WEIGHT*...')"
        ) from None
    return term if weight == 1.0 else weight * term


def parse_objective(text: str) -> Objective:
    """An objective from text: terms joined by ``+``, each optionally ``WEIGHT*TERM``."""
    terms = [t for t in text.split("+")]
    if not text.strip() or any(not t.strip() for t in terms):
        raise ConfigError(f"objective {text!r} has an empty term")
    objective = _parse_term(terms[0])
    for term in terms[1:]:
        objective = objective + _parse_term(term)
    return objective


def _fft_frequencies(h: int, w: int) -> Tensor:
    """Spatial frequency magnitude of every coefficient of a real 2-D FFT of an ``h x w`` image."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FourierImage(nn.Module):
    """Images parameterized by their ``1/f``-scaled spectrum in decorrelated colour space.

    ``forward()`` returns ``[N, 3, H, W]`` in ``(0, 1)``.
    """

    def __init__(
        self,
        n: int,
        size: tuple[int, int],
        *,
        decay_power: float = 1.0,
        init_std: float = 0.01,
        decorrelate: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        h, w = size
        freqs = _fft_frequencies(h, w).to(device)
        # Equal energy per frequency; the floor keeps the DC term finite.
        self.register_buffer("scale", 1.0 / freqs.clamp(min=1.0 / max(h, w)) ** decay_power)
        shape = (n, 3, *freqs.shape, 2)
        self.spectrum = nn.Parameter(
            init_std * torch.randn(shape, generator=generator, device=device)
        )
        self.size = (h, w)
        colors = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()
        self.register_buffer("colors", colors.to(device))
        self.decorrelate = decorrelate

    def forward(self) -> Tensor:
        spectrum = torch.view_as_complex(self.scale[..., None] * self.spectrum)
        # Lucid divides by 4 so that the sigmoid starts in its near-linear range.
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4
        if self.decorrelate:
            image = torch.einsum("nchw,dc->ndhw", image, self.colors)
        return torch.sigmoid(image)


def robustness_transform(
    images: Tensor,
    generator: torch.Generator,
    *,
    pad: int = 12,
    jitter: int = 8,
    scales: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11)),
    degrees: int = 10,
    final_jitter: int = 4,
) -> Tensor:
    """Lucid's standard transforms: pad with grey, jitter, rescale, rotate, jitter again.

    Choices are drawn from ``generator`` (the same transform for the whole batch, as in Lucid);
    rotation angles are drawn from ``-degrees..degrees`` with zero weighted up as in Lucid's list.
    """

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    def shift(x: Tensor, d: int) -> Tensor:
        if d <= 0:
            return x
        dy, dx = pick(d), pick(d)
        return x[:, :, dy : dy + x.shape[2] - d, dx : dx + x.shape[3] - d]

    x = F.pad(images, (pad,) * 4, value=0.5) if pad else images
    x = shift(x, jitter)
    if scales:
        factor = scales[pick(len(scales))]
        x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    if degrees:
        angles = list(range(-degrees, degrees + 1)) + [0] * (degrees // 2)
        theta = math.radians(angles[pick(len(angles))])
        cos, sin = math.cos(theta), math.sin(theta)
        matrix = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(matrix.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return shift(x, final_jitter)


class FeatureVisualization(Synthesizer):
    """Lucid-style feature visualization: Fourier parameters, decorrelated colour, robustness.

    Adam ascends ``objective`` (default: each image's target logit) on a :class:`FourierImage`;
    every step the image goes through :func:`robustness_transform` and is resized back to the
    model's input size (so fixed-size models such as ViTs work). Deterministic for a ``seed``.
    The runner makes one image per class in ``classes``; channel and neuron objectives ignore
    the class except in the record.
    """

    name = "feature_visualization"
    summary = "Lucid-style: Fourier image, decorrelated colour, transformation robustness"
    paper = "Olah, Mordvintsev, Schubert 2017, Distill, doi:10.23915/distill.00007"
    starts_from_images = False
    per_class = True
    snapshots = True

    @dataclass
    class Params:
        #: Classes (names or indices); one image each. Empty: the run's target.
        classes: list[str] = field(default_factory=list)
        #: What to maximize: ``class``, ``channel:LAYER:C``, ``neuron:LAYER:C[:X:Y]``, or a sum
        #: such as ``2*class + channel:blocks.5:3``.
        objective: str = "class"
        #: Adam steps.
        steps: int = field(default=256, metadata={"min": 1})
        #: Adam learning rate on the spectrum.
        learning_rate: float = field(default=0.05, metadata={"min_exclusive": 0})
        #: Side of the square image; 0: the model's input size.
        image_size: int = field(default=0, metadata={"min": 0})
        #: Exponent of the ``1/f`` spectrum scaling (0: plain pixels in Fourier space).
        decay_power: float = 1.0
        #: Standard deviation of the initial spectrum.
        init_std: float = field(default=0.01, metadata={"min": 0})
        #: Map parameters through the decorrelated colour matrix.
        decorrelate: bool = True
        #: Apply the robustness transforms (pad, jitter, scale, rotate, jitter).
        transforms: bool = True
        #: Grey padding in pixels before the transforms.
        pad: int = field(default=12, metadata={"min": 0})
        #: Largest jitter in pixels (the second jitter is half of it).
        jitter: int = field(default=8, metadata={"min": 0})
        #: Largest rotation in degrees.
        rotate_degrees: int = field(default=10, metadata={"min": 0})
        #: Keep the image every this many steps for a progress figure (0: don't).
        record_every: int = field(default=0, metadata={"min": 0})
        #: Seed of the initial spectrum and the transforms.
        seed: int = 0

        def __post_init__(self) -> None:
            parse_objective(self.objective)  # a bad objective fails the config check

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        self.objective = parse_objective(self.params.objective)

    def generate(
        self, model: nn.Module, targets: Tensor, images: Tensor | None, context: SynthesisContext
    ) -> tuple[Tensor, list[SynthesisRecord]]:
        p = self.params
        handle = context.handle
        device = targets.device
        size = tuple(images.shape[2:]) if images is not None else image_size(handle, p.image_size)
        gen = torch.Generator(device="cpu").manual_seed(p.seed)
        activations: dict[str, Tensor] = {}
        for layer in sorted(self.objective.layers):

            def keep(_m: nn.Module, _i: Any, output: Any, layer: str = layer) -> None:
                activations[layer] = output[0] if isinstance(output, tuple) else output

            context.hooks.forward(get_module(model, layer), keep)
        image = FourierImage(
            len(targets), size, decay_power=p.decay_power, init_std=p.init_std,
            decorrelate=p.decorrelate, generator=gen, device=device,
        )
        start = image().detach()
        optimizer = torch.optim.Adam(image.parameters(), lr=p.learning_rate)
        began = time.perf_counter()
        for step in progress(range(1, p.steps + 1), p.steps, self.name):
            optimizer.zero_grad(set_to_none=True)
            x = image()
            if p.transforms:
                x = robustness_transform(
                    x, gen, pad=p.pad, jitter=p.jitter, degrees=p.rotate_degrees,
                    final_jitter=p.jitter // 2,
                )
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            logits = model(handle.normalize(x))
            loss = -self.objective(activations, logits, targets).sum()
            loss.backward()
            optimizer.step()
            if p.record_every and step % p.record_every == 0:
                with torch.no_grad():
                    context.snapshot(step, image())
        activations.clear()
        context.metadata["objective"] = self.objective.description
        with torch.no_grad():
            result = image()
        seconds = (time.perf_counter() - began) / len(result)
        records = image_records(
            model, handle, result, targets, start, [p.steps] * len(result),
            [seconds] * len(result), objective=self.objective.description,
        )
        return result, records
