"""What a run holds while it works: its settings, the items written so far, the images in hand.

The attribution and synthesis steps (:mod:`xai_core.runner.run`,
:mod:`xai_core.runner.synthesis`) append result items here; :mod:`xai_core.runner.results`
turns them into ``results.json``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.technique import Technique
from xai_core.report.figures import display_image
from xai_core.runner.config import ExperimentConfig, safe_label
from xai_core.runner.inputs import InputImage
from xai_core.runner.item import ResultItem
from xai_core.runner.layout import RunLayout
from xai_core.runner.masks import MaskSet
from xai_core.runner.timing import Phases
from xai_core.runner.writer import Writer

__all__ = ["RunState", "ImageItem", "to_image", "safe_label", "failure", "failure_details"]


def print_progress(message: str) -> None:
    """The progress callback of command-line runs (``xai run``, ``xai benchmark``): one
    ``[xai]`` line on stderr, so stdout keeps only results."""
    print(f"[xai] {message}", file=sys.stderr, flush=True)


@dataclass
class ImageItem:
    """One input image on its way through the methods of a run."""

    source: InputImage
    index: int = 0
    pixels: torch.Tensor | None = None  # [C, H, W] in [0, 1]
    inputs: torch.Tensor | None = None  # normalized [C, H, W]
    error: str | None = None
    prediction: dict[str, Any] = field(default_factory=dict)
    target: int | None = None  # the first of ``targets``
    targets: list[Any] = field(default_factory=list)  # every class this image is explained for
    #: Under a target kind, per target: its ``label``, ``value``, ``value_name``,
    #: ``probability`` (``None`` without one) and ``region`` (a box or mask figures outline, or
    #: ``None``); ``targets`` then hold the kind's choices.
    target_info: list[dict[str, Any]] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)  # labels of the methods still to do
    #: The ground-truth mask at input size, or the error of loading it: read once per batch,
    #: when a metric needs it (:func:`xai_core.runner.attribution.chunk_masks`).
    mask: torch.Tensor | None = None
    mask_error: str | None = None
    #: Whether the saved photo (8-bit PNG) gives the input exactly (see
    #: :func:`~xai_core.runner.inputs.photo_is_input`), so no array of it is stored.
    photo_is_input: bool = False


def _target_kind(target: Any) -> Any:
    from xai_core.contracts.target_kinds import TargetKind
    from xai_core.plugins.factory import build_target

    built = build_target(target)
    return built if isinstance(built, TargetKind) else None


def to_image(pixels: torch.Tensor, channels: Sequence[int] | None = None) -> np.ndarray:
    """``[C, H, W]`` pixels as the ``[H, W, 3]`` RGB view figures show, of the input channels
    ``channels`` (the config's ``display_channels``; see
    :func:`~xai_core.report.figures.display_image`)."""
    return display_image(pixels, channels)


def failure(exc: BaseException) -> str:
    """The ``error`` of an item whose technique call failed: one line for summaries and tables."""
    return f"{type(exc).__name__}: {exc}"


def failure_details(exc: BaseException) -> dict[str, str]:
    """The ``error`` and ``traceback`` fields of an item whose call failed.

    A run goes on after a failed item, so the exception is gone by the time anyone looks: the
    full traceback (chained causes included) is kept in ``results.json`` beside the one-line
    error, and ``xai --debug run`` prints it, so a plugin author can find the failing line
    without re-running the whole config.
    """
    return {
        "error": failure(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


class RunState:
    """A run's config, output folder, progress callback, metrics, masks and result items."""

    def __init__(
        self,
        config: ExperimentConfig,
        progress: Callable[[str], None] | None,
        *,
        root: Path | None = None,
        model_label: str | None = None,
        phases: Phases | None = None,
    ):
        """:param root: the run's output folder when this state is one model's part of a run
            that compares models (``config.output_dir`` is then the model's folder); file paths
            in items are relative to it.
        :param model_label: the model's name in items (default: the config's model name).
        :param phases: the run's time accounting, when this state is one model's part of it."""
        self.config = config
        self.out = Path(config.output_dir)
        self.root = root if root is not None else self.out
        self.model_label = model_label or config.model.shown_label
        self.say = progress or (lambda _msg: None)
        self.items: list[ResultItem] = []
        self.metrics: list[tuple[str, Metric]] = []
        #: The config's sinks (label, sink), called once the run finished.
        self.sinks: list[tuple[str, Any]] = []
        #: The inputs' ground-truth masks (``masks:`` in the config), ``None`` without.
        self.masks = MaskSet.from_config(config.masks)
        #: The config's target as a target kind (``target: {kind: ...}``), ``None`` for classes.
        self.target_kind = _target_kind(config.target)
        self.rank = 0
        #: Whether a figure is drawn per image and method (``figures``: ``auto`` is decided by
        #: :meth:`~xai_core.runner.config.ExperimentConfig.item_figures` once the inputs are
        #: known).
        self.item_figures = config.figures in (True, "auto")
        #: Per-method progress on stderr (command-line runs; see xai_core.runner.progress).
        self.shows_progress = False
        #: Where the run's wall time goes (shared by the models of a run).
        self.phases = phases or Phases()
        #: Writes files and records off the main thread (see xai_core.runner.writer); the
        #: default writes at once, in the caller's thread.
        self.writer = Writer(threads=0, phases=self.phases)

    @property
    def scoring_masks(self) -> MaskSet | None:
        """The inputs' masks when a metric of the run reads them (``requires`` ``"mask"``),
        else ``None``: only then are masks loaded and part of an item's identity."""
        if self.masks is None or not any("mask" in m.requires for _, m in self.metrics):
            return None
        return self.masks

    @property
    def layout(self) -> RunLayout:
        """Every path of this (model's part of the) run."""
        return RunLayout(self.root, self.out)

    def rel(self, path: Path) -> str:
        """``path`` relative to the run's output folder, as items name their files."""
        return self.layout.rel(path)

    def input_path(self, im: ImageItem) -> Path:
        """The file that holds ``im``'s input (:func:`~xai_core.runner.inputs.photo_is_input`):
        its photo, or the array of its normalized input."""
        if im.photo_is_input:
            return self.layout.photo(im.source.key)
        return self.layout.input(im.source.key)

    def base_item(
        self, im: ImageItem, label: str, technique: Technique, handle: ModelHandle
    ) -> ResultItem:
        """The fields every result item of ``im`` has, before the method's own."""
        item = ResultItem(
            image=im.source.source,
            key=im.source.key,
            index=im.index,
            model=self.model_label,
            method=technique.name,
            kind=technique.kind,
            label=label,
            target=im.target,
            error=im.error,
            rank=self.rank,
        )
        if im.target_info:  # a target kind's target: no class prediction
            item.set_target_info(im.target_info[0])
        elif im.target is not None:
            item.target_label = handle.label(im.target)
        if "predicted" in im.prediction:  # a class prediction (not a target kind's)
            item.predicted = im.prediction["predicted"]
            item.predicted_label = im.prediction["predicted_label"]
            item.predicted_probability = im.prediction["predicted_probability"]
            item.top5 = im.prediction["top5"]
            if im.target is not None:
                item.target_probability = float(im.prediction["probabilities"][im.target])
        if not handle.trained:
            item.random_weights = True  # said in figure titles and the report
        return item
