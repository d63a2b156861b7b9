"""Score-CAM (Wang et al. 2020, arXiv:1910.01279): channel weights from the class score of the
input masked by each upsampled, normalised activation channel (no gradients), softmax over
channels.

The cost is one forward pass per channel of the target layer (1280 on EfficientNet-Lite0), so
the work goes into making fewer and cheaper passes while keeping pytorch-grad-cam's maps: channels
that give the same mask share a pass (a constant channel gives the all-zero mask), and the
masked images run in inference mode and NHWC layout (on EfficientNet-Lite0 at 224 px, 407 passes
instead of 1280 for the cat photo, each about 1.5x cheaper). Folding the batch norms into the
convolutions (:func:`xai_core.nn.fusion.folded_batch_norm`, undone after) makes each pass cheaper
again, but its rounding moves the maps by about 1e-6, so it is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import AttributionContext, LayerCam
from xai_core.contracts.params import setting
from xai_core.contracts.target_kinds import target_probabilities
from xai_core.families.batches import distinct_inputs
from xai_core.families.cam import CamParams
from xai_core.nn.fusion import folded_when
from xai_core.nn.gradients import channels_last_layout

__all__ = ["ScoreCam"]

#: pytorch-grad-cam's mask normalisation epsilon, kept so that its maps are reproduced.
_SCORE_MASK_EPS = 1e-8


class ScoreCam(LayerCam):
    """Score-CAM: channel weights from the class score of the input masked by each channel."""

    name = "score_cam"
    summary = "channel weights from the class score of the input masked by each activation map"
    paper = "Wang et al. 2020, arXiv:1910.01279"
    uses_gradients = False

    @dataclass
    class Params(CamParams):
        #: Masked inputs per forward pass (bounds memory: ``batch_size x 3 x H x W`` floats).
        batch_size: int = setting(32, min=1)
        #: Channel score: the target ``logit`` (pytorch-grad-cam) or its softmax ``probability``
        #: (the paper's official code); either way the weights are a softmax over channels.
        score: str = field(default="logit", metadata={"choices": ("logit", "probability")})
        #: Corner alignment of the mask upsampling (pytorch-grad-cam uses
        #: ``UpsamplingBilinear2d``, which aligns corners).
        mask_align_corners: bool = True
        #: Run the masked images in NHWC memory layout (faster on CPU with oneDNN; the same
        #: scores up to float rounding).
        channels_last: bool = setting(True)
        #: Fold each eval-mode batch norm into the convolution before it for the masked passes:
        #: faster, the same function up to float rounding (EfficientNet-Lite0, cat photo, 224 px:
        #: 1.1e-6 from pytorch-grad-cam's map, against 4e-7 unfolded), checked on the unmasked
        #: images and not folded where that check fails; the model is restored after the call.
        fold_batch_norm: bool = False

    def layer_maps(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        distinct, per_target = distinct_inputs(inputs, targets, context)
        capture = self.capture(model, inputs, targets, context)
        activations = capture.activations[:: per_target.shape[1]]
        maps = []
        evaluated = 0
        # Folded after the capture: the target layer may be one of the batch norms that folding
        # replaces, and its hook must see the model's own modules.
        p = self.params
        with folded_when(p.fold_batch_norm, model, distinct, p.channels_last, context.metadata):
            for x, a, t in zip(distinct, activations, per_target):
                scores, count = self._channel_scores(model, x, a, t)
                evaluated += count
                weights = torch.softmax(scores, dim=0)  # [C, k]
                maps.append(torch.einsum("ck,chw->khw", weights, a))
        context.metadata["score_cam_forward_passes"] = evaluated
        return torch.cat(maps)

    def _channel_scores(
        self, model: nn.Module, x: Tensor, a: Tensor, targets: Tensor
    ) -> tuple[Tensor, int]:
        """Scores ``[C, k]`` of ``x`` masked by each channel of ``a`` ``[C, h, w]``.

        Channels that give the same mask share one forward pass: a constant channel gives the
        zero mask, and channels whose min-max normalised maps agree to 1e-6 give masks that
        agree to 1e-6 (normalisation commutes with the linear upsampling). On a ReLU network's
        last layer this often halves the work or better.
        """
        flat = a.flatten(1)
        low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
        span = high - low
        keys = torch.where(span > 0, (flat - low) / span.clamp_min(1e-30), torch.zeros_like(flat))
        keys = torch.round(keys * 1e6)
        unique_keys, inverse = torch.unique(keys, dim=0, return_inverse=True)
        first = torch.full((len(unique_keys),), len(flat), dtype=torch.long, device=a.device)
        first.scatter_reduce_(
            0, inverse, torch.arange(len(flat), device=a.device), reduce="amin"
        )
        size = (x.shape[1], x.shape[2])
        scores = []
        with torch.inference_mode():
            for start in range(0, len(first), self.params.batch_size):
                chosen = a[first[start : start + self.params.batch_size]]
                masks = F.interpolate(
                    chosen[:, None],
                    size=size,
                    mode="bilinear",
                    align_corners=self.params.mask_align_corners,
                )
                mflat = masks.flatten(1)
                mlow = mflat.min(dim=1).values[:, None, None, None]
                mhigh = mflat.max(dim=1).values[:, None, None, None]
                masks = (masks - mlow) / (mhigh - mlow + _SCORE_MASK_EPS)
                masked = channels_last_layout(x[None] * masks, self.params.channels_last)
                logits = model(masked).float()
                if self.params.score == "probability":
                    logits = target_probabilities(logits)
                scores.append(logits[:, targets])
        return torch.cat(scores)[inverse], len(first)
