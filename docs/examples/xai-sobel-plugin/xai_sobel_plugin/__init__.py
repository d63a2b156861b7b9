"""xai-sobel-plugin: one of each thing an xai-core plugin can provide, around one idea (the
Sobel edge map, the model-independent control of Adebayo et al. 2018):

- ``sobel_edges``, an attributor (:mod:`.edges`);
- ``edge_push``, a synthesizer (:mod:`.synthesis`);
- ``edge_similarity``, a metric (:mod:`.metrics`);
- ``edge_cnn``, a model whose weights ship in the package (:mod:`.model`).

``pyproject.toml`` lists this module in the ``xai_core`` entry-point group; xai-core calls the
hooks below once each, with a ``register`` function.
"""

from __future__ import annotations

from collections.abc import Callable

import xai_core

from .edges import SobelEdges
from .metrics import EdgeSimilarity
from .model import load_edge_cnn
from .synthesis import EdgePush


@xai_core.hookimpl
def register_attributors(register: Callable[..., None]) -> None:
    register(SobelEdges)


@xai_core.hookimpl
def register_synthesizers(register: Callable[..., None]) -> None:
    register(EdgePush)


@xai_core.hookimpl
def register_metrics(register: Callable[..., None]) -> None:
    register(EdgeSimilarity)


@xai_core.hookimpl
def register_models(register: Callable[..., None]) -> None:
    register("edge_cnn", load_edge_cnn, description="tiny stripe classifier, weights shipped")
