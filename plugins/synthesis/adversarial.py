"""Fooling images and adversarial examples: ``fooling``, ``fgsm`` and ``pgd``.

Budgets and step sizes are in pixel space ``[0, 1]`` (see the package docstring).
"""


from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import Synthesizer
from xai_core.contracts.synthesizer import SynthesisContext, SynthesisRecord
from xai_core.nn.gradients import class_scores
from xai_core.nn.progress import progress_steps

from .common import (
    image_records,
    model_logits,
    needs_images,
    per_image,
    quantize,
)

__all__ = ["Fooling", "FGSM", "PGD", "project", "normalized_step"]

NORMS = ("linf", "l2")
#: How a fooling step turns the gradient into a step of ``step_size``: divided by its largest
#: absolute value (``linf``: no pixel moves more than ``step_size``), by its L2 norm (``l2``), or
#: its sign (``sign``: every pixel moves by ``step_size``, the steepest L-infinity ascent).
STEP_NORMS = ("linf", "l2", "sign")


def project(pixels: Tensor, start: Tensor, linf: float | None, l2: float | None) -> Tensor:
    """Project onto the budget balls around ``start`` (L2 first, then L-infinity) and ``[0, 1]``."""
    delta = pixels - start
    if l2 is not None:
        norms = delta.flatten(1).norm(dim=1)
        delta = delta * per_image(torch.clamp(l2 / norms, max=1.0))
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
    return grad / per_image(size.clamp(min=1e-12))


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
        linf_budget: float | None = field(
            default=None,
            metadata={
                "min": 1 / 255,
                "reason": "one grey level: no PNG could differ from the photo",
            },
        )
        #: Optional L2 budget in pixel space, held by the steps; the final rounding to 8 bits
        #: can add up to half a grey level per pixel on top of it.
        l2_budget: float | None = field(default=None, metadata={"min_exclusive": 0})

    def generate(
        self, model: nn.Module, targets: Tensor, images: Tensor | None, context: SynthesisContext
    ) -> tuple[Tensor, list[SynthesisRecord]]:
        p = self.params
        handle = context.handle
        start = needs_images(images, self.name)
        began = time.perf_counter()
        x = start.clone()
        result = quantize(start, start, p.linf_budget)
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        iterations = [p.max_iterations] * len(x)
        seconds = [0.0] * len(x)
        for it in progress_steps(range(p.max_iterations + 1), p.max_iterations + 1, self.name):
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


@dataclass
class AttackParams:
    """The parameters ``pgd`` and ``fgsm`` share: the budget, its geometry, the direction and the
    random start. ``pgd`` adds its ``step_size`` and ``steps``; ``fgsm`` takes one step of
    ``eps``."""

    #: Budget: the largest change allowed, in pixel space, in the ``norm`` sense (``fgsm``: also
    #: its step size).
    eps: float = field(default=8 / 255, metadata={"min_exclusive": 0})
    #: Budget and step geometry.
    norm: str = field(default="linf", metadata={"choices": NORMS})
    #: ``true``: make the model predict ``target``; ``false``: move away from ``target``.
    targeted: bool = False
    #: Start from a uniformly random point of the budget ball (seeded by ``seed``).
    random_start: bool = False
    #: Seed of the random start.
    seed: int = 0


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
    class Params(AttackParams):
        #: Size of one step in pixel space.
        step_size: float = field(default=2 / 255, metadata={"min_exclusive": 0})
        #: Number of steps.
        steps: int = field(default=10, metadata={"min": 1})

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
        return (start + direction * per_image(radius / norms * p.eps)).clamp(0, 1)

    def _step(self, x: Tensor, grad: Tensor, start: Tensor) -> Tensor:
        p = self.params
        if p.norm == "linf":
            moved = x + p.step_size * grad.sign()
            return (start + (moved - start).clamp(-p.eps, p.eps)).clamp(0, 1)
        # The 1e-10 keeps a zero gradient from dividing by zero (same constant as torchattacks).
        # Operations in torchattacks' order, so that float rounding matches too.
        direction = grad / per_image(grad.flatten(1).norm(dim=1) + 1e-10)
        delta = (x + p.step_size * direction) - start
        shrink = torch.clamp(p.eps / delta.flatten(1).norm(dim=1), max=1.0)
        return (start + delta * per_image(shrink)).clamp(0, 1)

    def generate(
        self, model: nn.Module, targets: Tensor, images: Tensor | None, context: SynthesisContext
    ) -> tuple[Tensor, list[SynthesisRecord]]:
        p = self.params
        handle = context.handle
        start = needs_images(images, self.name)
        began = time.perf_counter()
        x = self._random_start(start) if p.random_start else start.clone()
        # Descending the target's cross-entropy is ascending its negative.
        sign = -1.0 if p.targeted else 1.0
        for _ in progress_steps(range(p.steps), p.steps, self.name):
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
    class Params(AttackParams):
        @property
        def steps(self) -> int:
            return 1

        @property
        def step_size(self) -> float:
            return self.eps


# --- class visualization -----------------------------------------------------------------------


