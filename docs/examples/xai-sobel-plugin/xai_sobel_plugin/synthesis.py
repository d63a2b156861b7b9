"""The ``edge_push`` synthesizer: a photo changed, along its own edges only, towards a class.

Each step moves the pixels in the direction that raises the target class's logit (the sign of
the gradient, as in iterative FGSM), weighted by the starting photo's edge strength, so the
change stays on edges the photo already has. The change is bounded by ``epsilon`` per pixel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import xai_core
from xai_core.nn.gradients import class_scores

from .edges import sobel_magnitude


class EdgePush(xai_core.Synthesizer):
    """Signed-gradient ascent on the target logit, masked by the photo's edges."""

    name = "edge_push"
    summary = "push a photo towards a class by changing its edges only (example plugin)"
    #: It changes given photos, one image per photo and target.
    starts_from_images = True

    @dataclass
    class Params:
        #: Largest change of any pixel, in [0, 1] pixel units.
        epsilon: float = field(default=0.03, metadata={"min_exclusive": 0.0, "max": 1.0})
        #: Gradient steps.
        steps: int = field(default=10, metadata={"min": 1})

    def generate(
        self,
        model: nn.Module,
        targets: Tensor,
        images: Tensor | None,
        context: xai_core.SynthesisContext,
    ) -> tuple[Tensor, list[xai_core.SynthesisRecord]]:
        if images is None:
            raise xai_core.XaiError("edge_push changes photos: give starting images")
        start_time = time.perf_counter()
        handle = context.handle
        edges = sobel_magnitude(images)
        weight = (edges / edges.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1))[:, None]
        step = self.params.epsilon / self.params.steps
        x = images.clone()
        for _ in range(self.params.steps):
            x.requires_grad_(True)
            score = class_scores(model(handle.normalize(x)), targets).sum()
            (grad,) = torch.autograd.grad(score, x)
            with torch.no_grad():
                x = x + step * weight * grad.sign()
                x = images + (x - images).clamp(-self.params.epsilon, self.params.epsilon)
                x = x.clamp(0, 1)
        with torch.no_grad():
            probabilities = model(handle.normalize(x)).softmax(dim=1)
        seconds = (time.perf_counter() - start_time) / len(x)
        records = []
        for i, target in enumerate(targets.tolist()):
            predicted = int(probabilities[i].argmax())
            change = (x[i] - images[i]).flatten()
            records.append(
                xai_core.SynthesisRecord(
                    target=target,
                    target_probability=float(probabilities[i, target]),
                    predicted=predicted,
                    predicted_probability=float(probabilities[i, predicted]),
                    success=predicted == target,
                    iterations=self.params.steps,
                    seconds=seconds,
                    l2=float(change.norm()),
                    linf=float(change.abs().max()),
                )
            )
        return x.detach(), records
