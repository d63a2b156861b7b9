"""``class_visualization``: an image that maximizes a class score, from noise (Simonyan et al.
2014; Yosinski et al. 2015), with jitter, periodic blur and clamping."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle
from xai_core.contracts.synthesizer import SynthesisContext, SynthesisRecord
from xai_core.nn.gradients import class_scores
from xai_core.nn.images import gaussian_blur
from xai_core.nn.progress import progress_steps

from .common import FromNoise, image_records, per_image


def image_size(handle: ModelHandle, size: int) -> tuple[int, int]:
    """``size`` as ``(H, W)``, or the model's own input size when ``size`` is 0."""
    return (size, size) if size else tuple(handle.preprocessing.input_size)


class ClassVisualization(FromNoise):
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

    @dataclass
    class Params(FromNoise.Params):
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
        shape = (len(targets), handle.in_chans, h, w)
        start = images if images is not None else (
            0.5 + p.init_std * torch.randn(shape, generator=gen, device=device)
        ).clamp(0, 1)
        began = time.perf_counter()
        x = start.clone()
        for step in progress_steps(range(1, p.steps + 1), p.steps, self.name):
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
            x = (x.detach() + p.learning_rate * grad / per_image(scale)).clamp(0, 1)
            if p.blur_every and step % p.blur_every == 0:
                x = gaussian_blur(x, p.blur_sigma)
            if p.record_every and step % p.record_every == 0:
                context.snapshot(step, x)
        seconds = (time.perf_counter() - began) / len(x)
        records = image_records(
            model, handle, x, targets, start, [p.steps] * len(x), [seconds] * len(x)
        )
        return x, records
