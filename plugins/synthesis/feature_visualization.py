"""Feature visualization in the style of Lucid (Olah, Mordvintsev, Schubert 2017, Distill).

"Feature Visualization", https://distill.pub/2017/feature-visualization/. Three ingredients make
the images look like things rather than adversarial noise:

- a **Fourier-space image**: the parameters are the image's 2-D spectrum, scaled by ``1/f`` so
  that all frequencies start with equal energy (a preconditioner for gradient ascent);
- **decorrelated colour**: the parameters are in a decorrelated colour space that a fixed 3x3
  matrix (the square root of ImageNet's colour covariance) maps to RGB, then a sigmoid to
  ``(0, 1)``;
- **transformation robustness**: every step sees the image rescaled, rotated and shifted on a
  grey background (Lucid's pad, jitter, scale, rotate, jitter as one affine map), drawn anew for
  each image and each of several views, so the objective must hold under all of them.

Objectives (:class:`Objective`) go beyond the class logit: a channel of a layer, a single neuron,
and weighted sums of them, written as text in configs (:func:`parse_objective`):
``"class"``, ``"channel:blocks.5:12"``, ``"neuron:blocks.5:12"`` or
``"2*class + channel:blocks.5:3"``. Besides the logit (``class``), a class can be scored by its
log-probability (``logprob``) or its logit minus the mean logit (``centered``), which reward
it against the other classes.

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

from xai_core.contracts.params import setting
from xai_core.contracts.synthesizer import SynthesisContext, SynthesisRecord
from xai_core.errors import ConfigError, XaiError
from xai_core.nn.gradients import channels_last_layout, class_scores
from xai_core.nn.hooks import get_module
from xai_core.nn.progress import progress_steps

from .class_visualization import image_size
from .common import FromNoise, image_records

__all__ = [
    "FeatureVisualization",
    "FourierImage",
    "Objective",
    "class_centered_logit",
    "class_log_probability",
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


def _class_objective(
    kind: str, index: int | None, scores: Callable[[Tensor, Tensor], Tensor]
) -> Objective:
    """A class objective named ``kind`` (``kind:INDEX`` with a fixed class): ``scores(logits,
    classes)`` of each image's target class, or of class ``index`` for all."""

    def score(_acts: dict[str, Tensor], logits: Tensor, targets: Tensor) -> Tensor:
        wanted = targets if index is None else torch.full_like(targets, index)
        return scores(logits, wanted)

    return Objective(frozenset(), score, kind if index is None else f"{kind}:{index}")


def class_logit(index: int | None = None) -> Objective:
    """The unnormalized score of each image's target class (or of class ``index`` for all)."""
    return _class_objective("class", index, class_scores)


def class_log_probability(index: int | None = None) -> Objective:
    """The log-softmax of each image's target class (or of class ``index`` for all).

    Unlike the logit, it only rises when the class gains on the others, so the image cannot
    score by exciting every class at once.
    """
    return _class_objective(
        "logprob", index, lambda logits, wanted: class_scores(logits.log_softmax(dim=1), wanted)
    )


def class_centered_logit(index: int | None = None) -> Objective:
    """Each image's target logit minus the mean logit (or class ``index``'s, for all).

    Like :func:`class_log_probability` it rewards the class against the rest, but it does not
    saturate once the class dominates.
    """
    return _class_objective(
        "centered", index,
        lambda logits, wanted: class_scores(logits, wanted) - logits.mean(dim=1),
    )


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


#: Objective terms on the class scores, by their name in objective text.
CLASS_OBJECTIVES: dict[str, Callable[[int | None], Objective]] = {
    "class": class_logit,
    "logprob": class_log_probability,
    "centered": class_centered_logit,
}


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
        if kind in CLASS_OBJECTIVES and len(args) <= 1:
            term = CLASS_OBJECTIVES[kind](int(args[0]) if args else None)
        elif kind == "channel" and len(args) == 2:
            term = channel(args[0], int(args[1]))
        elif kind == "neuron" and len(args) in (2, 4):
            xy = (int(args[2]), int(args[3])) if len(args) == 4 else (None, None)
            term = neuron(args[0], int(args[1]), *xy)
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"objective term {text.strip()!r} is not one of 'class', 'class:INDEX' (or "
            "'logprob', 'centered' in place of 'class'), "
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
    size: tuple[int, int],
    copies: int = 1,
    scales: tuple[float, float] = (0.8, 1.0),
    jitter: float = 8,
    degrees: float = 10,
) -> Tensor:
    """Random views of ``images``: each rescaled, rotated and shifted, on a grey background.

    Lucid's pad, jitter, rescale, rotate and jitter compose into one affine map; here each of the
    ``copies`` views of each image draws its own (scale log-uniform in ``scales``, the image's
    side relative to the view's; angle uniform in ``+-degrees``; shift uniform in ``+-jitter``
    view pixels) and one bilinear resampling renders it at ``size``. Returns
    ``[copies * N, 3, *size]``, view ``k`` of image ``i`` at ``k * N + i``.
    """
    x = images.repeat(copies, 1, 1, 1)
    n = len(x)

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

    scale = torch.exp(uniform(math.log(scales[0]), math.log(scales[1])))
    theta = torch.deg2rad(uniform(-degrees, degrees))
    # affine_grid maps view coordinates in [-1, 1] to image coordinates: the inverse transform.
    shift = torch.stack([uniform(-jitter, jitter) * 2 / size[1],
                         uniform(-jitter, jitter) * 2 / size[0]], dim=1)
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    # A rotation in pixels, in coordinates normalized per axis: sines scale by the aspect ratio.
    aspect = images.shape[2] / images.shape[3]
    matrix = torch.stack(
        [torch.stack([cos, -sin * aspect], 1), torch.stack([sin / aspect, cos], 1)], 1
    )
    matrix = torch.cat([matrix, shift[:, :, None]], dim=2).to(x)
    grid = F.affine_grid(matrix, [n, 3, *size], align_corners=False)
    # Outside the image is grey, as Lucid's padding: sample around 0.5 with zero padding.
    return F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False) + 0.5


class FeatureVisualization(FromNoise):
    """Lucid-style feature visualization: Fourier parameters, decorrelated colour, robustness.

    Adam ascends ``objective`` (default: each image's target logit) on a :class:`FourierImage`;
    every step the model sees ``views`` random views of each image from
    :func:`robustness_transform`, at its input size unless ``view_size`` says otherwise (so
    fixed-size models such as ViTs work), and the scores are averaged over the views.
    Deterministic for a ``seed``.
    The runner makes one image per class in ``classes``; channel and neuron objectives ignore
    the class except in the record.
    """

    name = "feature_visualization"
    summary = "Lucid-style: Fourier image, decorrelated colour, transformation robustness"
    paper = "Olah, Mordvintsev, Schubert 2017, Distill, doi:10.23915/distill.00007"
    requires_rgb = (
        "its images live in a decorrelated colour space that ImageNet's RGB colour covariance "
        "maps to RGB"
    )

    @dataclass
    class Params(FromNoise.Params):
        #: What to maximize: ``class`` (the logit), ``logprob`` (its log-softmax), ``centered``
        #: (logit minus the mean logit), ``channel:LAYER:C``, ``neuron:LAYER:C[:X:Y]``, or a
        #: sum such as ``2*class + channel:blocks.5:3``.
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
        #: Apply the robustness transforms (rescale, rotate, shift on grey).
        transforms: bool = True
        #: Random views of each image per step (their scores are averaged): more robust
        #: images for proportionally more time per step.
        views: int = field(default=1, metadata={"min": 1})
        #: Side of each view the model sees; 0: the model's input size. Smaller views cost
        #: less per step (fixed-size models such as ViTs need their own size).
        view_size: int = field(default=0, metadata={"min": 0})
        #: Smallest scale of the image in a view (its side relative to the view's; below 1
        #: leaves a grey border, as Lucid's padding).
        min_scale: float = field(default=0.8, metadata={"min_exclusive": 0})
        #: Largest scale of the image in a view (above 1 crops it).
        max_scale: float = field(default=1.0, metadata={"min_exclusive": 0})
        #: Largest shift of a view in pixels of the view.
        jitter: int = field(default=8, metadata={"min": 0})
        #: Largest rotation in degrees.
        rotate_degrees: int = field(default=10, metadata={"min": 0})
        #: Lay the model input out channels-last (faster convolutions on CPU; same values).
        channels_last: bool = setting(True)
        #: Keep the image every this many steps for a progress figure (0: don't).
        record_every: int = field(default=0, metadata={"min": 0})
        #: Seed of the initial spectrum and the transforms.
        seed: int = 0

        def __post_init__(self) -> None:
            parse_objective(self.objective)  # a bad objective fails the config check
            if self.min_scale > self.max_scale:
                raise ConfigError(
                    f"min_scale {self.min_scale:g} is above max_scale {self.max_scale:g}: "
                    "swap them (or set them equal for a fixed scale)"
                )

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
        view = (p.view_size, p.view_size) if p.view_size else size
        views = p.views if p.transforms else 1
        for step in progress_steps(range(1, p.steps + 1), p.steps, self.name):
            optimizer.zero_grad(set_to_none=True)
            x = image()
            if p.transforms:
                x = robustness_transform(
                    x, gen, size=view, copies=views, scales=(p.min_scale, p.max_scale),
                    jitter=p.jitter, degrees=p.rotate_degrees,
                )
            elif view != size:
                x = F.interpolate(x, size=view, mode="bilinear", align_corners=False)
            logits = model(channels_last_layout(handle.normalize(x), p.channels_last))
            loss = -self.objective(activations, logits, targets.repeat(views)).sum() / views
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
