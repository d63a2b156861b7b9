"""Built-in metrics (plugin ``metrics``): faithfulness, robustness, localisation and the
randomisation sanity check.

* :mod:`.curves`: ``deletion`` / ``insertion`` (Petsiuk et al. 2018), perturbation curves;
* :mod:`.robustness`: ``infidelity`` / ``max_sensitivity`` (Yeh et al. 2019);
* :mod:`.localisation`: ``pointing_game`` (Zhang et al. 2018), ``relevance_mass`` /
  ``relevance_rank`` (Arras et al. 2022), against a ground-truth object mask;
* :mod:`.randomisation`: ``cascading_randomization`` (Adebayo et al. 2018). Its score is the mean
  absolute-value rank correlation over the cascade (lower passes the check); per item, every
  step's Spearman correlation with and without absolute values and SSIM are reported.

Each metric's documentation cites its paper and section. The baselines and the blur come from
:mod:`xai_core.nn.images`, the progress bar from :mod:`xai_core.nn.progress`.
"""

from __future__ import annotations

from xai_core import hookimpl

from .curves import (
    FILLS,
    OUTPUTS,
    Deletion,
    Insertion,
    curve_auc,
    model_outputs,
    perturbation_curves,
    pixel_ranks,
)
from .localisation import PointingGame, RelevanceMass, RelevanceRank, dilate
from .randomisation import (
    CascadingRandomization,
    map_ssim,
    parameter_layers,
    rank_correlation,
    reinitialise,
)
from .robustness import (
    NORMS,
    Infidelity,
    MaxSensitivity,
    infidelity_from_noise,
    max_sensitivity_from_noise,
)

__all__ = [
    "BUILTIN_METRICS",
    "FILLS",
    "NORMS",
    "OUTPUTS",
    "CascadingRandomization",
    "Deletion",
    "Infidelity",
    "Insertion",
    "MaxSensitivity",
    "PointingGame",
    "RelevanceMass",
    "RelevanceRank",
    "curve_auc",
    "dilate",
    "infidelity_from_noise",
    "map_ssim",
    "max_sensitivity_from_noise",
    "model_outputs",
    "parameter_layers",
    "perturbation_curves",
    "pixel_ranks",
    "rank_correlation",
    "reinitialise",
]

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
