"""Built-in metrics (plugin ``metrics``): faithfulness, robustness, localisation and the
randomisation sanity check.

* :mod:`.curves`: ``deletion`` / ``insertion`` (Petsiuk et al. 2018), perturbation curves;
* :mod:`.road`: ``road_morf`` / ``road_lerf`` (Rong et al. 2022), removal with noisy linear
  imputation, which leaks less of the mask's shape than deletion;
* :mod:`.faithfulness`: ``faithfulness_correlation`` (Bhatt et al. 2020);
* :mod:`.robustness`: ``infidelity`` / ``max_sensitivity`` (Yeh et al. 2019);
* :mod:`.localisation`: ``pointing_game`` (Zhang et al. 2018), ``relevance_mass`` /
  ``relevance_rank`` (Arras et al. 2022), against a ground-truth object mask;
* :mod:`.complexity`: ``sparseness`` (Gini index, Chalasani et al. 2020) and ``complexity``
  (entropy, Bhatt et al. 2020), properties of the map alone;
* :mod:`.randomisation`: ``cascading_randomization`` (Adebayo et al. 2018). Its score is the mean
  absolute-value rank correlation over the cascade (lower passes the check); per item, every
  step's Spearman correlation with and without absolute values and SSIM are reported.

Each metric's documentation cites its paper and says how it differs, where it does, from the
reference implementations it is tested against (Quantus 0.6, Captum, pytorch-grad-cam;
``tests/plugins/metrics/test_quantus.py``, ``tests/plugins/metrics/test_metrics.py``). The baselines
and the blur come from :mod:`xai_core.nn.images`, the progress bar from :mod:`xai_core.nn.progress`.
"""

from __future__ import annotations

from xai_core import hookimpl

from .complexity import Complexity, Sparseness, gini_index, share_entropy
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
from .faithfulness import FaithfulnessCorrelation, faithfulness_from_subsets, pearson
from .localisation import PointingGame, RelevanceMass, RelevanceRank, dilate
from .randomisation import (
    CascadingRandomization,
    map_ssim,
    parameter_layers,
    rank_correlation,
    reinitialise,
)
from .road import (
    ORDERS,
    RoadLeastRelevantFirst,
    RoadMostRelevantFirst,
    linear_imputation,
    noisy_linear_imputation,
    removal_masks,
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
    "ORDERS",
    "OUTPUTS",
    "CascadingRandomization",
    "Complexity",
    "Deletion",
    "FaithfulnessCorrelation",
    "Infidelity",
    "Insertion",
    "MaxSensitivity",
    "PointingGame",
    "RelevanceMass",
    "RelevanceRank",
    "RoadLeastRelevantFirst",
    "RoadMostRelevantFirst",
    "Sparseness",
    "curve_auc",
    "dilate",
    "faithfulness_from_subsets",
    "gini_index",
    "infidelity_from_noise",
    "linear_imputation",
    "map_ssim",
    "max_sensitivity_from_noise",
    "model_outputs",
    "noisy_linear_imputation",
    "parameter_layers",
    "pearson",
    "perturbation_curves",
    "pixel_ranks",
    "rank_correlation",
    "reinitialise",
    "removal_masks",
    "share_entropy",
]

BUILTIN_METRICS = (
    Deletion,
    Insertion,
    RoadMostRelevantFirst,
    RoadLeastRelevantFirst,
    FaithfulnessCorrelation,
    Infidelity,
    MaxSensitivity,
    PointingGame,
    RelevanceMass,
    RelevanceRank,
    Sparseness,
    Complexity,
    CascadingRandomization,
)


@hookimpl
def register_metrics(register):
    for metric in BUILTIN_METRICS:
        register(metric)
