"""The model-randomisation sanity check, ``cascading_randomization`` (Adebayo, Gilmer, Muelly,
Goodfellow, Hardt, Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018, section 3.1): the
model's layers are re-initialised one by one from the logits down (on a copy) and the map
recomputed after each; the Spearman rank correlation between the original and the randomised
maps should fall.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xai_core.contracts.metric import Metric, MetricContext
from xai_core.nn.progress import progress_bar

__all__ = [
    "CascadingRandomization",
    "map_ssim",
    "parameter_layers",
    "rank_correlation",
    "reinitialise",
]


def parameter_layers(model: nn.Module, inputs: Tensor) -> list[str]:
    """Names of the modules that own parameters, in the order they run on ``inputs``.

    The model's own parameters (a ViT's ``cls_token`` and ``pos_embed``) count as running
    first: they are used at the bottom, with the embedding, though the model's forward hook
    fires last.
    """
    seen: list[str] = []
    handles = []

    def make(name: str):
        def hook(*_args: Any) -> None:
            if name not in seen:
                seen.append(name)

        return hook

    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            if module is model:
                handles.append(module.register_forward_pre_hook(make(name)))
            else:
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
    """Adebayo et al.'s model randomisation test: do maps change when the weights do?

    The score is the mean over the cascade's steps of the Spearman correlation between the
    absolute original map and the absolute map of the model randomised down to that step.

    Against Quantus 0.6's ``MPRT`` (``abs=True``, top-down;
    ``tests/plugins/metrics/test_quantus.py``): on the same re-drawn weights the per-layer
    correlations agree to 1e-5. The differences are deliberate. (1) The score: Quantus's
    ``return_average_correlation`` means to leave out the unrandomised model's correlation (it skips
    a key ``"orig"``) but stores it as ``"original"``, so its average includes that 1.0: with ``L``
    layers it is ``(1 + L * ours) / (L + 1)``. (2) The layers: Quantus randomises every module with
    a ``reset_parameters`` method, in definition order; we randomise every module that owns
    parameters, in the order they run (a module without ``reset_parameters``, such as a
    position embedding or layer scale, gets a truncated normal instead of being skipped), and
    ``max_steps`` can group them. (3) The draw: Quantus seeds torch's global generator with
    ``seed + 1`` before every layer (the same seed for each), we seed each layer apart and
    leave the global generator as it was.
    """

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
        max_steps: int = field(default=0, metadata={"min": 0})

    def compute(self, model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor,
                context: MetricContext) -> tuple[Tensor, list[dict[str, Any]]]:
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
        with progress_bar(len(steps), self.name, unit="step") as bar:
            for step, names in enumerate(steps):
                for offset, name in enumerate(names):
                    reinitialise(modules[name], seed + 1000 * step + offset)
                changed = context.explain(inputs, targets, module=randomised).cpu().numpy()
                for record, before, after in zip(records, original, changed):
                    record["spearman_abs"].append(rank_correlation(np.abs(before), np.abs(after)))
                    record["spearman"].append(rank_correlation(before, after))
                    record["ssim"].append(map_ssim(before, after))
                bar.update(1)
        scores = torch.tensor([float(np.mean(r["spearman_abs"])) for r in records])
        details = [{k: [round(v, 5) for v in values] for k, values in r.items()} for r in records]
        return scores, details
