"""Built-in metrics: faithfulness, localisation and the randomisation sanity check.

Faithfulness (does the model's output follow the map?):

- ``deletion`` / ``insertion``: Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for
  Explanation of Black-box Models", BMVC 2018, section 4.1. Pixels are removed (replaced by a
  baseline) or inserted (into a blurred image) in order of attribution, in ``steps`` equal steps;
  the target's probability is tracked and the area under the curve is the score.
- ``infidelity`` / ``max_sensitivity``: Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On the
  (In)fidelity and Sensitivity of Explanations", NeurIPS 2019, definitions 2.1 and 3.1, with
  Captum's parameter names (``n_perturb_samples``, ``normalize``, ``perturb_radius``,
  ``max_examples_per_batch``).

Localisation against a ground-truth object mask:

- ``pointing_game``: Zhang, Bargal, Lin, Brandt, Shen, Sclaroff, "Top-down Neural Attention by
  Excitation Backprop", IJCV 2018, section 5.1: a hit when the map's maximum lies on the object,
  up to a tolerance of 15 pixels at 224x224.
- ``relevance_mass`` / ``relevance_rank``: Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset
  for the ground truth evaluation of neural network explanations", Information Fusion 2022,
  section 4.2: the share of positive relevance on the object, and the share of the object's size
  ``K`` top-ranked pixels that lie on it.

Sanity check:

- ``cascading_randomization``: Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for
  Saliency Maps", NeurIPS 2018, section 3.1: the model's layers are re-initialised one by one from
  the logits down (on a copy) and the map recomputed after each; the Spearman rank correlation
  between the original and the randomised maps should fall. The score is the mean absolute-value
  rank correlation over the cascade (lower passes the check); per item, every step's Spearman
  correlation with and without absolute values and SSIM are reported.

A pixel map applies to all three channels of its pixel wherever a metric needs an attribution
per input element (infidelity), which is what Captum computes when given the map expanded to
``[N, 3, H, W]``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from xai_core import hookimpl
from xai_core.contracts.metric import Metric, MetricContext
from xai_core.nn.gradients import class_scores

OUTPUTS = ("probability", "logit")
FILLS = ("zero", "blur", "mean")


def model_outputs(model: nn.Module, inputs: Tensor, targets: Tensor, output: str) -> Tensor:
    """The target's probability or logit for each input, ``[N]``, without gradients."""
    with torch.no_grad():
        logits = model(inputs)
    if output == "probability":
        logits = logits.softmax(dim=1)
    return class_scores(logits, targets)


def fill_image(inputs: Tensor, how: str, kernel: int, sigma: float) -> Tensor:
    """The image that removed pixels take their values from, in normalized input space.

    ``zero``: zeros of the normalized input (the dataset mean colour, Petsiuk et al.'s deletion
    baseline); ``blur``: a Gaussian blur of the input (their insertion start); ``mean``: each
    image's own mean colour.
    """
    if how == "zero":
        return torch.zeros_like(inputs)
    if how == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).clone()
    from torchvision.transforms.functional import gaussian_blur

    size = kernel if kernel % 2 == 1 else kernel + 1
    return gaussian_blur(inputs, [size, size], [sigma, sigma])


def pixel_ranks(maps: Tensor) -> Tensor:
    """Each pixel's position when pixels are sorted by attribution, highest first: ``[N, P]``.

    Ties keep raster order (a stable sort), so a constant map removes pixels row by row.
    """
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks


def perturbation_curves(
    model: nn.Module,
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    *,
    start: Tensor,
    end: Tensor,
    steps: int,
    output: str,
    batch_size: int,
    progress: str | None = None,
) -> Tensor:
    """Curves ``[N, steps + 1]``: the output as pixels change from ``start`` to ``end`` in order.

    At step ``k`` the ``round(k * P / steps)`` highest-attributed pixels hold ``end``'s values and
    the rest ``start``'s. Deletion is ``start = inputs, end = baseline``; insertion is
    ``start = blurred, end = inputs``. The steps of all images form one stream cut into batches
    of ``batch_size``, so memory is bounded and every batch is full.
    """
    n, _, height, width = inputs.shape
    pixels = height * width
    ranks = pixel_ranks(maps)
    counts = torch.round(torch.arange(steps + 1, device=inputs.device) * pixels / steps).long()
    total = n * (steps + 1)
    values = torch.empty(total, device=inputs.device)
    bar = tqdm(total=total, desc=progress, leave=False, disable=progress is None)
    for first in range(0, total, batch_size):
        rows = torch.arange(first, min(first + batch_size, total), device=inputs.device)
        image, step = rows // (steps + 1), rows % (steps + 1)
        changed = (ranks[image] < counts[step][:, None]).view(-1, 1, height, width)
        batch = torch.where(changed, end[image], start[image])
        values[rows] = model_outputs(model, batch, targets[image], output)
        bar.update(len(rows))
    bar.close()
    return values.view(n, steps + 1)


def curve_auc(curves: Tensor) -> Tensor:
    """Trapezoidal area under curves ``[N, K]`` sampled at ``K`` equal steps over ``[0, 1]``."""
    inner = curves.sum(dim=1) - (curves[:, 0] + curves[:, -1]) / 2
    return inner / (curves.shape[1] - 1)


class _PerturbationCurve(Metric):
    """Shared by deletion and insertion: they differ in which image is the start."""

    paper = "Petsiuk, Das, Saenko 2018, arXiv:1806.07421"

    def images(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> tuple[Tensor, list[dict[str, Any]]]:
        start, end = self.images(inputs)
        curves = perturbation_curves(
            model,
            inputs,
            maps,
            targets,
            start=start,
            end=end,
            steps=self.params.steps,
            output=self.params.output,
            batch_size=self.params.batch_size,
            progress=self.name,
        )
        details = [{"curve": [round(float(v), 6) for v in c]} for c in curves.cpu()]
        return curve_auc(curves), details


class Deletion(_PerturbationCurve):
    """Deletion AUC: lower means the map's top pixels matter more to the prediction."""

    name = "deletion"
    summary = "AUC of the target probability as top-attributed pixels are deleted (lower: better)"
    higher_is_better = False

    @dataclass
    class Params:
        #: Number of equal steps from the full image to a fully deleted one.
        steps: int = 100
        #: What deleted pixels become: normalized zeros (the paper), a blur, the image mean.
        baseline: str = field(default="zero", metadata={"choices": FILLS})
        #: Blur kernel size and sigma when ``baseline`` is ``blur`` (the paper's 11 and 5).
        blur_kernel: int = 11
        blur_sigma: float = 5.0
        #: Track the target's softmax probability (the paper) or its logit.
        output: str = field(default="probability", metadata={"choices": OUTPUTS})
        #: Perturbed images per forward pass.
        batch_size: int = 128

    def images(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        p = self.params
        return inputs, fill_image(inputs, p.baseline, p.blur_kernel, p.blur_sigma)


class Insertion(_PerturbationCurve):
    """Insertion AUC: higher means the map's top pixels alone restore the prediction."""

    name = "insertion"
    summary = "AUC of the target probability as top-attributed pixels are inserted (higher: better)"
    higher_is_better = True

    @dataclass
    class Params:
        #: Number of equal steps from the start image to the full image.
        steps: int = 100
        #: The image pixels are inserted into: a strong blur (the paper), normalized zeros, mean.
        start: str = field(default="blur", metadata={"choices": FILLS})
        #: Blur kernel size and sigma when ``start`` is ``blur`` (the paper's 11 and 5).
        blur_kernel: int = 11
        blur_sigma: float = 5.0
        #: Track the target's softmax probability (the paper) or its logit.
        output: str = field(default="probability", metadata={"choices": OUTPUTS})
        #: Perturbed images per forward pass.
        batch_size: int = 128

    def images(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        p = self.params
        return fill_image(inputs, p.start, p.blur_kernel, p.blur_sigma), inputs


def infidelity_from_noise(
    forward: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    noise: Tensor,
    normalize: bool,
    batch_size: int,
) -> Tensor:
    """Infidelity ``E_I[(I . a - (f(x) - f(x - I)))^2]`` for given perturbations, ``[N]``.

    :param forward: ``(inputs [B, 3, H, W], targets [B]) -> [B]``, the explained output.
    :param noise: perturbations ``I``, ``[N, S, 3, H, W]``; ``a`` is each map on all channels.
    :param normalize: scale the attributions by the ``beta`` that minimises the infidelity
        (Yeh et al., and Captum's ``normalize``), so a map's overall scale does not count.
    """
    n, samples = noise.shape[:2]
    flat = noise.flatten(0, 1)
    index = torch.arange(n, device=inputs.device).repeat_interleave(samples)
    dots = (flat * maps[index][:, None]).flatten(1).sum(dim=1)
    base = forward(inputs, targets)
    diffs = torch.empty_like(dots)
    for first in range(0, len(flat), batch_size):
        rows = index[first : first + batch_size]
        perturbed = inputs[rows] - flat[first : first + batch_size]
        diffs[first : first + batch_size] = base[rows] - forward(perturbed, targets[rows])
    dots, diffs = dots.view(n, samples).double(), diffs.view(n, samples).double()
    if normalize:
        denominator = (dots * dots).sum(dim=1)
        beta = (dots * diffs).sum(dim=1) / torch.where(denominator == 0, 1.0, denominator)
        dots = dots * beta[:, None]
    return ((dots - diffs) ** 2).mean(dim=1)


class Infidelity(Metric):
    """Infidelity under Gaussian perturbations: how badly ``I . map`` predicts the output change."""

    name = "infidelity"
    summary = "expected squared error of map . noise vs. the output change (lower: better)"
    paper = "Yeh, Hsieh, Suggala, Inouye, Ravikumar 2019, arXiv:1901.09392"
    higher_is_better = False

    @dataclass
    class Params:
        #: Perturbations per image.
        n_perturb_samples: int = 16
        #: Standard deviation of the Gaussian perturbation ``I``, in normalized input units.
        noise_std: float = 0.1
        #: Rescale each map optimally first (Captum's ``normalize``): compares shapes, not scales.
        normalize: bool = True
        #: The explained output: the target's logit (what Captum sees from a logit model).
        output: str = field(default="logit", metadata={"choices": OUTPUTS})
        #: Perturbed inputs per forward pass.
        max_examples_per_batch: int = 128

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor:
        p = self.params
        shape = (inputs.shape[0], p.n_perturb_samples, *inputs.shape[1:])
        noise = torch.randn(shape, generator=context.generator, device=inputs.device) * p.noise_std
        return infidelity_from_noise(
            lambda x, t: model_outputs(model, x, t, p.output),
            inputs, maps, targets, noise, p.normalize, p.max_examples_per_batch,
        )


NORMS = ("fro", "inf")


def max_sensitivity_from_noise(
    explain: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    maps: Tensor,
    targets: Tensor,
    noise: Tensor,
    norm_ord: str,
    batch_size: int,
) -> Tensor:
    """Max-sensitivity ``max_s ||e(x + d_s) - e(x)|| / ||e(x)||`` for given perturbations, ``[N]``.

    :param explain: ``(inputs, targets) -> maps``, the explanation being scored.
    :param maps: ``e(x)``, the maps of the unperturbed inputs.
    :param noise: perturbations ``d``, ``[N, S, 3, H, W]``.
    :param norm_ord: ``fro`` (the 2-norm of the flattened map, Captum's default) or ``inf``.
    """
    order = 2 if norm_ord == "fro" else math.inf
    n, samples = noise.shape[:2]
    flat = noise.flatten(0, 1)
    index = torch.arange(n, device=inputs.device).repeat_interleave(samples)
    reference = torch.linalg.vector_norm(maps.flatten(1), ord=order, dim=1)
    changes = torch.empty(len(flat), device=inputs.device)
    for first in range(0, len(flat), batch_size):
        rows = index[first : first + batch_size]
        perturbed = inputs[rows] + flat[first : first + batch_size]
        difference = explain(perturbed, targets[rows]) - maps[rows]
        changes[first : first + batch_size] = torch.linalg.vector_norm(
            difference.flatten(1), ord=order, dim=1
        )
    # Like Captum, a map that is zero everywhere is compared in absolute terms.
    scale = torch.where(reference == 0, 1.0, reference)
    return (changes.view(n, samples) / scale[:, None]).max(dim=1).values


class MaxSensitivity(Metric):
    """How much the map changes, at most, under small uniform input perturbations."""

    name = "max_sensitivity"
    summary = "largest relative change of the map under small input noise (lower: better)"
    paper = "Yeh, Hsieh, Suggala, Inouye, Ravikumar 2019, arXiv:1901.09392"
    higher_is_better = False
    requires = ("attributor",)

    @dataclass
    class Params:
        #: Perturbations per image.
        n_perturb_samples: int = 10
        #: Perturbations are uniform in ``[-perturb_radius, perturb_radius]`` (normalized units).
        perturb_radius: float = 0.02
        #: Norm of the map difference.
        norm_ord: str = field(default="fro", metadata={"choices": NORMS})
        #: Perturbed inputs per explanation call.
        max_examples_per_batch: int = 64

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor:
        p = self.params
        shape = (inputs.shape[0], p.n_perturb_samples, *inputs.shape[1:])
        noise = torch.rand(shape, generator=context.generator, device=inputs.device)
        noise = (2 * noise - 1) * p.perturb_radius
        return max_sensitivity_from_noise(
            context.explain, inputs, maps, targets, noise, p.norm_ord, p.max_examples_per_batch
        )


def dilate(masks: Tensor, radius: float) -> Tensor:
    """Masks grown by ``radius`` pixels (Euclidean distance), ``[N, H, W]`` bool."""
    from scipy.ndimage import distance_transform_edt

    grown = [
        distance_transform_edt(~m) <= radius if m.any() else np.zeros_like(m)
        for m in masks.cpu().numpy()
    ]
    return torch.from_numpy(np.stack(grown)).to(masks.device)


class PointingGame(Metric):
    """A hit when the map's maximum falls on the object (within the tolerance)."""

    name = "pointing_game"
    summary = "1 if the map's maximum lies on the object, within a tolerance (higher: better)"
    paper = "Zhang et al. 2018, Top-down neural attention by excitation backprop, IJCV"
    requires = ("mask",)

    @dataclass
    class Params:
        #: Tolerance in pixels at ``reference_size`` (15 at 224x224 in Zhang et al.); it scales
        #: with the image, so 64x64 images get 15 * 64 / 224 = 4.3 pixels.
        tolerance: float = 15.0
        reference_size: int = 224

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor:
        masks = context.masks
        assert masks is not None
        size = min(maps.shape[1:])
        radius = self.params.tolerance * size / self.params.reference_size
        context.metadata["tolerance_pixels"] = radius
        grown = dilate(masks, radius)
        # A map with several tied maxima scores the share of them that hit: a constant map then
        # scores the object's share of the image (chance), not a hit or miss by raster order.
        top = maps.flatten(1).max(dim=1, keepdim=True).values
        maxima = maps.flatten(1) == top
        hits = (maxima & grown.flatten(1)).sum(dim=1) / maxima.sum(dim=1)
        return torch.where(masks.flatten(1).any(dim=1), hits.double(), math.nan)


class RelevanceMass(Metric):
    """Share of the map's positive relevance that lies on the object."""

    name = "relevance_mass"
    summary = "share of positive relevance inside the object mask (higher: better)"
    paper = "Arras, Osman, Samek 2022, arXiv:2003.07258"
    requires = ("mask",)

    @dataclass
    class Params:
        #: Use absolute values instead of the positive part (for maps whose sign is arbitrary).
        absolute: bool = False

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor:
        masks = context.masks
        assert masks is not None
        relevance = maps.abs() if self.params.absolute else maps.clamp(min=0)
        total = relevance.flatten(1).sum(dim=1).double()
        inside = (relevance * masks).flatten(1).sum(dim=1).double()
        defined = (total > 0) & masks.flatten(1).any(dim=1)
        return torch.where(defined, inside / torch.where(total > 0, total, 1.0), math.nan)


class RelevanceRank(Metric):
    """Share of the ``K`` highest-ranked pixels on the object, ``K`` being the object's size."""

    name = "relevance_rank"
    summary = "share of the top-K pixels inside the mask, K = mask size (higher: better)"
    paper = "Arras, Osman, Samek 2022, arXiv:2003.07258"
    requires = ("mask",)

    @dataclass
    class Params:
        #: Rank by absolute value instead of signed value.
        absolute: bool = False

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> Tensor:
        masks = context.masks
        assert masks is not None
        ranks = pixel_ranks(maps.abs() if self.params.absolute else maps)
        size = masks.flatten(1).sum(dim=1, keepdim=True)
        top = (ranks < size) & masks.flatten(1)
        score = top.sum(dim=1).double() / size.squeeze(1).clamp(min=1)
        return torch.where(size.squeeze(1) > 0, score, math.nan)


def parameter_layers(model: nn.Module, inputs: Tensor) -> list[str]:
    """Names of the modules that own parameters, in the order they run on ``inputs``."""
    seen: list[str] = []
    handles = []

    def make(name: str):
        def hook(*_args: Any) -> None:
            if name not in seen:
                seen.append(name)

        return hook

    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            handles.append(module.register_forward_hook(make(name)))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def reinitialise(module: nn.Module, seed: int) -> None:
    """Re-draw a module's own parameters from their initial distribution, reproducibly.

    ``reset_parameters`` is the module's own initialisation (what training started from);
    modules without it get a truncated normal, as in Adebayo et al.
    """
    device = next(module.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with torch.no_grad():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for parameter in module.parameters(recurse=False):
                    nn.init.trunc_normal_(parameter, std=0.02)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps; 0 when either is constant (no ranking to share)."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def map_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two absolute-value maps, each scaled to ``[0, 1]`` (Adebayo et al.'s comparison)."""
    from skimage.metrics import structural_similarity

    def scaled(m: np.ndarray) -> np.ndarray:
        m = np.abs(m).astype(np.float64)
        top = m.max()
        return m / top if top > 0 else m

    return float(structural_similarity(scaled(a), scaled(b), data_range=1.0))


class CascadingRandomization(Metric):
    """Adebayo et al.'s model randomisation test: do maps change when the weights do?"""

    name = "cascading_randomization"
    summary = (
        "mean |map| rank correlation with maps of the model randomised layer by layer from the "
        "top (lower: passes the sanity check)"
    )
    paper = "Adebayo et al. 2018, Sanity Checks for Saliency Maps, arXiv:1810.03292"
    higher_is_better = False
    requires = ("attributor",)

    @dataclass
    class Params:
        #: Cascade steps: 0 randomises one parameterised layer per step; ``k`` groups the layers
        #: into at most ``k`` steps (for deep models, to bound the cost).
        max_steps: int = 0

    def compute(
        self,
        model: nn.Module,
        inputs: Tensor,
        maps: Tensor,
        targets: Tensor,
        context: MetricContext,
    ) -> tuple[Tensor, list[dict[str, Any]]]:
        layers = list(reversed(parameter_layers(model, inputs[:1])))
        steps = [[name] for name in layers]
        if self.params.max_steps and len(steps) > self.params.max_steps:
            groups = np.array_split(np.arange(len(layers)), self.params.max_steps)
            steps = [[layers[i] for i in group] for group in groups]
        context.metadata["cascade"] = [" + ".join(s) for s in steps]
        # The original is never touched: every step randomises the copy further.
        randomised = copy.deepcopy(model)
        modules = dict(randomised.named_modules())
        seed = int(context.generator.initial_seed())
        original = maps.cpu().numpy()
        records: list[dict[str, list[float]]] = [
            {"spearman_abs": [], "spearman": [], "ssim": []} for _ in range(len(maps))
        ]
        for step, names in enumerate(tqdm(steps, desc=self.name, leave=False)):
            for offset, name in enumerate(names):
                reinitialise(modules[name], seed + 1000 * step + offset)
            changed = context.explain(inputs, targets, module=randomised).cpu().numpy()
            for record, before, after in zip(records, original, changed):
                record["spearman_abs"].append(rank_correlation(np.abs(before), np.abs(after)))
                record["spearman"].append(rank_correlation(before, after))
                record["ssim"].append(map_ssim(before, after))
        scores = torch.tensor([float(np.mean(r["spearman_abs"])) for r in records])
        details = [{k: [round(v, 5) for v in values] for k, values in r.items()} for r in records]
        return scores, details


BUILTIN_METRICS = (
    Deletion,
    Insertion,
    Infidelity,
    MaxSensitivity,
    PointingGame,
    RelevanceMass,
    RelevanceRank,
    CascadingRandomization,
)


@hookimpl
def register_metrics(register):
    for metric in BUILTIN_METRICS:
        register(metric)
