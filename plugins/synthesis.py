"""Built-in synthesizers: images made by gradient steps on the input pixels.

- ``fooling``: a photo nudged until the model calls it a chosen class (Szegedy et al. 2014,
  "Intriguing properties of neural networks"), still fooling after an 8-bit PNG round trip.
- ``fgsm`` and ``pgd``: adversarial examples (Goodfellow et al. 2015; Madry et al. 2018), targeted
  or untargeted, L-infinity or L2, with an optional seeded random start.
- ``class_visualization``: an image that maximizes a class score, from noise (Simonyan et al.
  2014; Yosinski et al. 2015), with jitter, periodic blur and clamping.

Lucid-style feature visualization lives in :mod:`xai_core_plugins.feature_visualization`.

Every budget and step size is in pixel space ``[0, 1]``; the model's own mean and std are applied
inside (``context.handle.normalize``), so ``eps=4/255`` means four grey levels for every model.
Each synthesizer returns one :class:`~xai_core.contracts.technique.SynthesisRecord` per image,
made by :func:`image_records`. Parameter ranges are declared on the ``Params`` fields
(:mod:`xai_core.contracts.params`), so configs are checked before any model loads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import Synthesizer, hookimpl
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.technique import SynthesisContext, SynthesisRecord
from xai_core.errors import InputError
from xai_core.nn.gradients import class_scores

__all__ = [
    "Fooling",
    "FGSM",
    "PGD",
    "ClassVisualization",
    "image_records",
    "quantize",
    "gaussian_blur",
    "progress",
]

NORMS = ("linf", "l2")
#: How a fooling step turns the gradient into a step of ``step_size``: divided by its largest
#: absolute value (``linf``: no pixel moves more than ``step_size``), by its L2 norm (``l2``), or
#: its sign (``sign``: every pixel moves by ``step_size``, the steepest L-infinity ascent).
STEP_NORMS = ("linf", "l2", "sign")
#: Below this many steps a progress bar is more noise than help.
PROGRESS_MIN_STEPS = 20


def progress(iterable: Iterable[int], total: int, desc: str) -> Iterator[int]:
    """``tqdm`` over the steps of a long run; silent for short runs and when not on a terminal."""
    from tqdm.auto import tqdm

    return iter(
        tqdm(iterable, total=total, desc=desc, leave=False,
             disable=None if total >= PROGRESS_MIN_STEPS else True)
    )


def model_logits(model: nn.Module, handle: ModelHandle, pixels: Tensor) -> Tensor:
    """Logits for images in pixel space: the model's own normalization is applied here."""
    return model(handle.normalize(pixels))


def quantize(pixels: Tensor, start: Tensor | None = None, linf: float | None = None) -> Tensor:
    """Round to the 8-bit grid (what a PNG stores), staying within ``linf`` of ``start``.

    Plain rounding may step up to half a grey level past an L-infinity budget when ``start`` is
    not itself on the grid (resized photos are not); rounding is then moved to the nearest grid
    value inside the budget, which exists whenever ``linf >= 1/255``.
    """
    levels = (pixels * 255).round()
    if linf is not None and start is not None:
        low = ((start - linf) * 255).ceil().clamp(min=0)
        high = ((start + linf) * 255).floor().clamp(max=255)
        levels = torch.minimum(torch.maximum(levels, low), high)
    return levels.clamp(0, 255) / 255


def change_sizes(images: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image L2 and L-infinity norms of ``images - start`` in pixel space, each ``[N]``."""
    delta = (images - start).flatten(1)
    return delta.norm(dim=1), delta.abs().amax(dim=1)


def image_records(
    model: nn.Module,
    handle: ModelHandle,
    images: Tensor,
    targets: Tensor,
    start: Tensor,
    iterations: Iterable[int],
    seconds: Iterable[float],
    success: Iterable[bool] | None = None,
    **extra: Any,
) -> list[SynthesisRecord]:
    """One record per image, measured on the final ``images``.

    ``success`` defaults to "the model predicts the target"; ``l2`` and ``linf`` are the size of
    the change from ``start`` in pixel space; ``extra`` goes into every record's ``extra``.
    """
    with torch.no_grad():
        probs = model_logits(model, handle, images).softmax(dim=1)
    top_p, top = probs.max(dim=1)
    target_p = probs.gather(1, targets.view(-1, 1)).squeeze(1)
    l2, linf = change_sizes(images, start)
    hits = (top == targets).tolist() if success is None else list(success)
    records = []
    for i, (iters, secs) in enumerate(zip(iterations, seconds)):
        records.append(
            SynthesisRecord(
                success=bool(hits[i]),
                iterations=int(iters),
                target=int(targets[i]),
                target_label=handle.label(int(targets[i])),
                target_probability=float(target_p[i]),
                predicted=int(top[i]),
                predicted_label=handle.label(int(top[i])),
                predicted_probability=float(top_p[i]),
                l2=float(l2[i]),
                linf=float(linf[i]),
                seconds=float(secs),
                extra=dict(extra),
            )
        )
    return records


def _per_image(values: Tensor) -> Tensor:
    """Shape ``[N, 1, 1, 1]`` for broadcasting a per-image value over images."""
    return values.view(-1, 1, 1, 1)


def _needs_images(images: Tensor | None, name: str) -> Tensor:
    if images is None:
        raise InputError(f"{name} changes photos: pass starting images [N,3,H,W] in [0, 1]")
    if images.min() < 0 or images.max() > 1:
        raise InputError(
            f"{name} takes images in pixel space [0, 1] (not normalized model inputs); got "
            f"values in [{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    return images


def project(pixels: Tensor, start: Tensor, linf: float | None, l2: float | None) -> Tensor:
    """Project onto the budget balls around ``start`` (L2 first, then L-infinity) and ``[0, 1]``."""
    delta = pixels - start
    if l2 is not None:
        norms = delta.flatten(1).norm(dim=1)
        delta = delta * _per_image(torch.clamp(l2 / norms, max=1.0))
    if linf is not None:
        delta = delta.clamp(-linf, linf)
    return (start + delta).clamp(0, 1)


def normalized_step(grad: Tensor, how: str) -> Tensor:
    """The gradient scaled to unit size in the ``how`` sense (see :data:`STEP_NORMS`)."""
    if how == "sign":
        return grad.sign()
    flat = grad.flatten(1)
    size = flat.abs().amax(dim=1) if how == "linf" else flat.norm(dim=1)
    # A zero gradient (saturated model) gives a zero step rather than NaNs.
    return grad / _per_image(size.clamp(min=1e-12))


# --- fooling images ----------------------------------------------------------------------------


class Fooling(Synthesizer):
    """Gradient ascent on the target logit until the model predicts the target (Szegedy et al.).

    Each step moves the image along the gradient of the target's unnormalized score, normalized
    to ``step_size`` (see :data:`STEP_NORMS`), then back into the optional budgets and ``[0, 1]``.
    After every step at which the model predicts the target, the image is rounded to 8 bits
    (inside the L-infinity budget) and checked again; the run stops for an image only when that
    8-bit version is predicted as the target, so writing it as a PNG keeps it fooling. The
    returned images are those 8-bit versions; ``success: false`` means the cap was reached.
    """

    name = "fooling"
    summary = "photo changed by gradient ascent on a target logit until the model predicts it"
    paper = "Szegedy et al. 2014, arXiv:1312.6199"
    per_class = True

    @dataclass
    class Params:
        #: Target classes (names or indices); one image per class per photo. Empty: the run's
        #: target for each photo.
        classes: list[str] = field(default_factory=list)
        #: Iteration cap per image.
        max_iterations: int = field(default=200, metadata={"min": 1})
        #: Size of one step in pixel space, in the ``step_norm`` sense.
        step_size: float = field(default=0.5 / 255, metadata={"min_exclusive": 0})
        #: How the gradient is normalized into a step.
        step_norm: str = field(default="sign", metadata={"choices": STEP_NORMS})
        #: Optional L-infinity budget in pixel space (``4/255`` = four grey levels); at least
        #: one grey level (1/255), or no PNG could differ from the photo.
        linf_budget: float | None = field(default=None, metadata={"min": 1 / 255})
        #: Optional L2 budget in pixel space, held by the steps; the final rounding to 8 bits
        #: can add up to half a grey level per pixel on top of it.
        l2_budget: float | None = field(default=None, metadata={"min_exclusive": 0})

    def generate(
        self, model: nn.Module, targets: Tensor, images: Tensor | None, context: SynthesisContext
    ) -> tuple[Tensor, list[SynthesisRecord]]:
        p = self.params
        handle = context.handle
        start = _needs_images(images, self.name)
        began = time.perf_counter()
        x = start.clone()
        result = quantize(start, start, p.linf_budget)
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        iterations = [p.max_iterations] * len(x)
        seconds = [0.0] * len(x)
        for it in progress(range(p.max_iterations + 1), p.max_iterations + 1, self.name):
            active = (~done).nonzero().squeeze(1)
            if len(active) == 0:
                break
            xa = x[active].requires_grad_(True)
            logits = model_logits(model, handle, xa)
            hit = logits.argmax(dim=1) == targets[active]
            if hit.any():
                candidates = active[hit]
                q = quantize(x[candidates], start[candidates], p.linf_budget)
                with torch.no_grad():
                    fooled = model_logits(model, handle, q).argmax(dim=1) == targets[candidates]
                result[candidates] = q
                for j in candidates[fooled].tolist():
                    done[j] = True
                    iterations[j] = it
                    seconds[j] = time.perf_counter() - began
            if it == p.max_iterations or bool(done.all()):
                break
            (grad,) = torch.autograd.grad(class_scores(logits, targets[active]).sum(), xa)
            step = x[active] + p.step_size * normalized_step(grad, p.step_norm)
            x[active] = project(step, start[active], p.linf_budget, p.l2_budget)
        unfinished = (~done).nonzero().squeeze(1)
        if len(unfinished):
            result[unfinished] = quantize(x[unfinished], start[unfinished], p.linf_budget)
            for j in unfinished.tolist():
                seconds[j] = time.perf_counter() - began
        records = image_records(
            model, handle, result, targets, start, iterations, seconds,
            success=done.tolist(), eight_bit=True,
        )
        return result, records


# --- FGSM and PGD ------------------------------------------------------------------------------


class PGD(Synthesizer):
    """Projected gradient descent on the cross-entropy (Madry et al. 2018), L-infinity or L2.

    Untargeted (default): ``target`` is the class to move away from (``"predicted"`` for the
    model's own prediction) and each step ascends its cross-entropy. Targeted: ``target`` is the
    class to reach and each step descends its cross-entropy. A step is ``step_size`` times the
    gradient's sign (L-infinity) or the gradient over its L2 norm (L2); the change is then
    projected back into the ``eps`` ball around the photo and into ``[0, 1]``. The loss is the
    batch-mean cross-entropy on the model's logits, as in torchattacks, so that the same settings
    give the same images.
    """

    name = "pgd"
    summary = "projected gradient descent adversarial examples (L-inf or L2, targeted or not)"
    paper = "Madry et al. 2018, arXiv:1706.06083"

    @dataclass
    class Params:
        #: Budget: the largest change allowed, in pixel space, in the ``norm`` sense.
        eps: float = field(default=8 / 255, metadata={"min_exclusive": 0})
        #: Size of one step in pixel space.
        step_size: float = field(default=2 / 255, metadata={"min_exclusive": 0})
        #: Number of steps.
        steps: int = field(default=10, metadata={"min": 1})
        #: Budget and step geometry.
        norm: str = field(default="linf", metadata={"choices": NORMS})
        #: ``true``: make the model predict ``target``; ``false``: move away from ``target``.
        targeted: bool = False
        #: Start from a uniformly random point of the budget ball (seeded by ``seed``).
        random_start: bool = False
        #: Seed of the random start.
        seed: int = 0

    def _random_start(self, start: Tensor) -> Tensor:
        p = self.params
        gen = torch.Generator(device=start.device).manual_seed(p.seed)
        if p.norm == "linf":
            noise = torch.rand(start.shape, generator=gen, device=start.device) * 2 - 1
            return (start + p.eps * noise).clamp(0, 1)
        # A uniform radius in [0, eps] along a uniformly random direction.
        direction = torch.randn(start.shape, generator=gen, device=start.device)
        norms = direction.flatten(1).norm(dim=1)
        radius = torch.rand(len(start), generator=gen, device=start.device)
        return (start + direction * _per_image(radius / norms * p.eps)).clamp(0, 1)

    def _step(self, x: Tensor, grad: Tensor, start: Tensor) -> Tensor:
        p = self.params
        if p.norm == "linf":
            moved = x + p.step_size * grad.sign()
            return (start + (moved - start).clamp(-p.eps, p.eps)).clamp(0, 1)
        # The 1e-10 keeps a zero gradient from dividing by zero (same constant as torchattacks).
        # Operations in torchattacks' order, so that float rounding matches too.
        direction = grad / _per_image(grad.flatten(1).norm(dim=1) + 1e-10)
        delta = (x + p.step_size * direction) - start
        shrink = torch.clamp(p.eps / delta.flatten(1).norm(dim=1), max=1.0)
        return (start + delta * _per_image(shrink)).clamp(0, 1)

    def generate(
        self, model: nn.Module, targets: Tensor, images: Tensor | None, context: SynthesisContext
    ) -> tuple[Tensor, list[SynthesisRecord]]:
        p = self.params
        handle = context.handle
        start = _needs_images(images, self.name)
        began = time.perf_counter()
        x = self._random_start(start) if p.random_start else start.clone()
        # Descending the target's cross-entropy is ascending its negative.
        sign = -1.0 if p.targeted else 1.0
        for _ in progress(range(p.steps), p.steps, self.name):
            x.requires_grad_(True)
            loss = sign * F.cross_entropy(model_logits(model, handle, x), targets)
            (grad,) = torch.autograd.grad(loss, x)
            x = self._step(x.detach(), grad, start).detach()
        seconds = (time.perf_counter() - began) / len(x)
        with torch.no_grad():
            predicted = model_logits(model, handle, x).argmax(dim=1)
        success = (predicted == targets) if p.targeted else (predicted != targets)
        records = image_records(
            model, handle, x, targets, start, [p.steps] * len(x), [seconds] * len(x),
            success=success.tolist(), targeted=p.targeted,
        )
        return x, records


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ``eps``.

    With ``norm: l2`` the step is ``eps`` times the gradient over its L2 norm (the fast gradient
    method). Targeted and untargeted as in :class:`PGD`; ``random_start`` adds a seeded random
    point of the ball first (as in "fast is better than free").
    """

    name = "fgsm"
    summary = "fast gradient sign method: one signed-gradient step of size eps"
    paper = "Goodfellow, Shlens, Szegedy 2015, arXiv:1412.6572"

    @dataclass
    class Params:
        #: Budget and step size, in pixel space, in the ``norm`` sense.
        eps: float = field(default=8 / 255, metadata={"min_exclusive": 0})
        #: Step geometry.
        norm: str = field(default="linf", metadata={"choices": NORMS})
        #: ``true``: make the model predict ``target``; ``false``: move away from ``target``.
        targeted: bool = False
        #: Start from a uniformly random point of the budget ball (seeded by ``seed``).
        random_start: bool = False
        #: Seed of the random start.
        seed: int = 0

        @property
        def steps(self) -> int:
            return 1

        @property
        def step_size(self) -> float:
            return self.eps


# --- class visualization -----------------------------------------------------------------------


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` with reflected borders (radius ``3 sigma``)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def image_size(handle: ModelHandle, size: int) -> tuple[int, int]:
    """``size`` as ``(H, W)``, or the model's own input size when ``size`` is 0."""
    return (size, size) if size else tuple(handle.preprocessing.input_size)


class ClassVisualization(Synthesizer):
    """An image the model finds maximally ``target``: gradient ascent from noise.

    The seed's recipe (Simonyan et al. 2014, with the regularizers of Yosinski et al. 2015): start
    from grey plus Gaussian noise; each step jitters the image by a random shift, ascends the
    target logit minus ``l2_decay`` times the squared L2 norm of the normalized image, with the
    gradient scaled to mean absolute value ``learning_rate``; clamps to ``[0, 1]``; and every
    ``blur_every`` steps blurs with ``blur_sigma``. No photo is needed: the runner makes one image
    per class in ``classes``.
    """

    name = "class_visualization"
    summary = "image maximizing a class logit from noise (jitter, L2 decay, blur, clamp)"
    paper = "Simonyan et al. 2014, arXiv:1312.6034; Yosinski et al. 2015, arXiv:1506.06579"
    starts_from_images = False
    per_class = True
    snapshots = True

    @dataclass
    class Params:
        #: Classes to visualize (names or indices); empty: the run's target.
        classes: list[str] = field(default_factory=list)
        #: Gradient-ascent steps.
        steps: int = field(default=150, metadata={"min": 1})
        #: Mean absolute change of a pixel per step (the gradient is normalized to this).
        learning_rate: float = field(default=0.01, metadata={"min_exclusive": 0})
        #: Weight of the squared L2 norm of the normalized image subtracted from the score.
        l2_decay: float = 1e-4
        #: Largest random shift in pixels before each step (0: none).
        jitter: int = field(default=8, metadata={"min": 0})
        #: Blur every this many steps (0: never).
        blur_every: int = field(default=4, metadata={"min": 0})
        #: Standard deviation of that blur, in pixels; positive when blurring.
        blur_sigma: float = 0.5
        #: Standard deviation of the starting noise around grey.
        init_std: float = field(default=0.1, metadata={"min": 0})
        #: Side of the square image; 0: the model's input size.
        image_size: int = field(default=0, metadata={"min": 0})
        #: Keep the image every this many steps for a progress figure (0: don't).
        record_every: int = field(default=0, metadata={"min": 0})
        #: Seed of the noise and jitter.
        seed: int = 0

        def __post_init__(self) -> None:
            if self.blur_every and self.blur_sigma <= 0:
                raise ValueError(
                    f"blur_sigma must be positive when blurring (blur_every={self.blur_every}), "
                    f"got {self.blur_sigma}; set blur_every: 0 to turn blurring off"
                )

    def generate(
        self, model: nn.Module, targets: Tensor, images: Tensor | None, context: SynthesisContext
    ) -> tuple[Tensor, list[SynthesisRecord]]:
        p = self.params
        handle = context.handle
        device = targets.device
        gen = torch.Generator(device=device).manual_seed(p.seed)
        h, w = image_size(handle, p.image_size)
        shape = (len(targets), 3, h, w)
        start = images if images is not None else (
            0.5 + p.init_std * torch.randn(shape, generator=gen, device=device)
        ).clamp(0, 1)
        began = time.perf_counter()
        x = start.clone()
        for step in progress(range(1, p.steps + 1), p.steps, self.name):
            dy, dx = (
                torch.randint(-p.jitter, p.jitter + 1, (2,), generator=gen, device=device).tolist()
                if p.jitter else (0, 0)
            )
            x.requires_grad_(True)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            inputs = handle.normalize(shifted)
            score = class_scores(model(inputs), targets)
            penalty = p.l2_decay * inputs.pow(2).flatten(1).sum(dim=1)
            (grad,) = torch.autograd.grad((score - penalty).sum(), x)
            scale = grad.abs().flatten(1).mean(dim=1).clamp(min=1e-12)
            x = (x.detach() + p.learning_rate * grad / _per_image(scale)).clamp(0, 1)
            if p.blur_every and step % p.blur_every == 0:
                x = gaussian_blur(x, p.blur_sigma)
            if p.record_every and step % p.record_every == 0:
                context.snapshot(step, x)
        seconds = (time.perf_counter() - began) / len(x)
        records = image_records(
            model, handle, x, targets, start, [p.steps] * len(x), [seconds] * len(x)
        )
        return x, records


@hookimpl
def register_synthesizers(register):
    register(Fooling)
    register(FGSM)
    register(PGD)
    register(ClassVisualization)
    # Imported here: that module builds on the helpers above.
    from xai_core_plugins.feature_visualization import FeatureVisualization

    register(FeatureVisualization)
