"""Running attributors in an experiment: maps batch by batch, metric scores and figures.

A batch that fails is retried item by item, so one bad item fails alone (with its traceback);
what a technique reports about each item (the layer used, a completeness gap, ...) goes into the
item's ``metadata``. An image with several targets (``target: [predicted, tabby]`` or
``top-3``) gives one item per (image, method, target).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.model import ModelHandle
from xai_core.contracts.target_kinds import TargetKind
from xai_core.errors import XaiError
from xai_core.io import stored_values, write_array
from xai_core.report.figures import FigureOptions, attribution_figure, attribution_title
from xai_core.runner.item import ResultItem
from xai_core.runner.scoring import score_items
from xai_core.runner.state import (
    ImageItem,
    RunState,
    failure,
    failure_details,
    safe_label,
    to_image,
)
from xai_core.runner.targets import ChosenTargetError, image_targets, kind_for, kind_targets_from

#: Sets the prediction and targets of a chunk's images from the logits of a technique's pass
#: on them, and returns one target per image (see :func:`run_attributor`).
TargetChooser = Callable[[list[ImageItem], torch.Tensor], list[int]]


def _item_metadata(metadata: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """What a technique reported (layer used, completeness gap, ...) as JSON for one item.

    Per-item values (tensors or lists with one entry per item) are cut to this item's entry;
    parameters are already in the config, timings in ``seconds``, and large arrays are left out.
    """
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in ("params", "seconds"):
            continue
        if isinstance(value, torch.Tensor):
            if value.ndim >= 1 and value.shape[0] == count:
                value = value[index]
            if value.numel() > 16:
                continue
            value = value.tolist()
        elif isinstance(value, (list, tuple)) and len(value) == count:
            value = value[index]
        if isinstance(value, (str, int, float, bool, type(None))) or (
            isinstance(value, (list, dict)) and len(str(value)) < 2000
        ):
            out[key] = value
    return out


def run_attributor(
    run: RunState,
    label: str,
    technique: Attributor,
    images: list[ImageItem],
    handle: ModelHandle,
    device: torch.device,
    choose_targets: TargetChooser | None = None,
) -> None:
    """Maps, metric scores and figures of ``technique`` for ``images``, batch by batch.

    An image explained for several targets (a list or ``top-k`` in the config's ``target``)
    gives one item per target, each with its ``target``, ``target_label``,
    ``target_probability`` and ``target_rank`` (1 for the first); their files are
    ``<method>.<rank>_<target label>.npz`` (and ``.png``) beside the image's other maps, while
    a single target keeps ``maps/<image>/<method>.npz``. A batch holds about ``batch_size``
    maps: fewer images when each has several targets.

    :param choose_targets: when the images have no prediction yet, called with a chunk's images
        and the logits of the technique's own pass on them
        (:meth:`~xai_core.Attributor.forward_pass`): it sets each image's prediction and
        targets and returns one target per image, so one pass serves both. Images whose call
        failed are left without a prediction.

    Files and records go to ``run.writer``; per-item figures too (drawn in its thread).
    """
    ok = [im for im in images if im.error is None]
    most = max((len(image_targets(im)) for im in ok), default=1)
    batch = max(1, run.config.batch_size // max(1, most))
    options = FigureOptions.from_config(getattr(run.config, "figure", None))
    for start in range(0, len(ok), batch):
        chunk = ok[start : start + batch]
        with run.phases("model"):
            results = _attribute_chunk(
                technique, chunk, handle, device, choose_targets, run.target_kind
            )
        results = _as_stored(results, run.config.storage.dtype)
        # An image whose call failed before its targets were chosen has one (failed) row.
        rows = [
            (im, rank, t) for im in chunk for rank, t in enumerate(image_targets(im) or [None], 1)
        ]
        with run.phases("metrics"):
            results, masks = chunk_masks(run, rows, results, handle)
            scores = score_items(
                run.metrics,
                handle,
                [im.inputs for im, _, _ in rows],
                [result for result, _, _, _ in results],
                [t for _, _, t in rows],
                attributor=technique,
                masks=masks,
                seed=run.config.seed,
                kind=run.target_kind,
            )
        for (im, rank, target), (result, seconds, error, metadata), scored in zip(
            rows, results, scores
        ):
            item = run.base_item(im, label, technique, handle)
            if target is not None:
                set_target(item, im, rank, target, handle)
            item.seconds = seconds
            if error is None and metadata:
                item.metadata = metadata  # before the figure: its title may carry a note
            if error is not None:
                item.fail(error)
            else:
                name = _map_name(label, rank, target, im, handle)
                saliency = result.numpy().astype(np.float32)
                map_path = run.layout.map(im.source.key, name)
                run.writer.submit(write_array, map_path, saliency, run.config.storage.dtype)
                photo = to_image(im.pixels, run.config.display_channels)
                item.files["map"] = run.rel(map_path)
                item.files["input"] = run.rel(run.input_path(im))
                if run.config.figures:
                    fig_path = run.layout.figure(im.source.key, name)
                    region = im.target_info[rank - 1]["region"] if im.target_info else None
                    run.writer.submit(
                        attribution_figure, fig_path, photo, saliency,
                        attribution_title(label, item.as_record()), options, region,
                    )
                    item.files["figure"] = run.rel(fig_path)
            item.set_scores(scored)
            run.items.append(item)
    called = {id(im) for im in ok}  # an image that failed in a call has its row already
    for im in images:
        if im.error is not None and id(im) not in called:
            run.items.append(run.base_item(im, label, technique, handle))


def _as_stored(results: list[tuple], dtype: str) -> list[tuple]:
    """The maps of ``results`` as the run stores them (:func:`~xai_core.io.stored_values`):
    scores, figures and the file all hold the one map of record, so a score renewed later from
    the saved map is the score computed now."""
    return [
        (torch.from_numpy(stored_values(m.detach().cpu().numpy(), dtype)), *rest)
        if m is not None else (m, *rest)
        for m, *rest in results
    ]


def chunk_masks(
    run: RunState, rows: list[tuple[ImageItem, int, int]], results: list[tuple], handle: ModelHandle
) -> tuple[list[tuple], list[torch.Tensor | None] | None]:
    """The results of a chunk's rows and each row's ground-truth mask, when a metric of the run
    needs masks and the config gives them (``None`` for masks otherwise).

    A mask is read once per image per batch, kept on its :class:`ImageItem`. The rows of an
    image whose mask fails (missing, unreadable, another size...) fail with its message: no
    map, figure or score is written for them, so no score is ever computed without the right
    mask; a rerun with the mask fixed redoes them.
    """
    masks_set = run.scoring_masks
    if masks_set is None:
        return results, None
    masks: list[torch.Tensor | None] = []
    out = []
    for (im, _, _), result in zip(rows, results):
        if im.mask is None and im.mask_error is None:
            try:
                im.mask = masks_set.for_image(im.source, handle.preprocessing)
            except XaiError as exc:
                im.mask_error = failure(exc)
            except Exception as exc:  # noqa: BLE001 - a broken decoder fails this image only
                im.mask_error = f"cannot read the mask of {im.source.source!r}: {failure(exc)}"
        if im.mask_error is not None and result[2] is None:
            result = (None, result[1], {"error": im.mask_error}, {})
        masks.append(im.mask)
        out.append(result)
    return out, masks


def set_target(
    item: ResultItem, im: ImageItem, rank: int, target: int, handle: ModelHandle
) -> None:
    """The target fields of one item of ``im``: class, label, probability and its rank among
    the image's targets (1-based, in the config's order); under a target kind, the kind's
    choice, label, score and probability (:attr:`ImageItem.target_info`)."""
    if im.target_info:
        item.target, item.target_rank = target, rank
        item.set_target_info(im.target_info[rank - 1])
        return
    probabilities = im.prediction.get("probabilities")
    item.target = target
    item.target_label = handle.label(target)
    item.target_probability = float(probabilities[target]) if probabilities is not None else None
    item.target_rank = rank


def map_name(label: str, rank: int, target: int, handle: ModelHandle, count: int) -> str:
    """The file name (without suffix) of a map: the method label for an image's only target,
    ``<label>.<rank>_<target label>`` when it has several (``grad_cam.2_tabby``)."""
    if count <= 1:
        return label
    return f"{label}.{rank}_{safe_label(handle.label(target))}"


def _map_name(label: str, rank: int, target: Any, im: ImageItem, handle: ModelHandle) -> str:
    """:func:`map_name`, or under a target kind the same with the target's own label."""
    count = len(image_targets(im))
    if im.target_info and count > 1:
        return f"{label}.{rank}_{safe_label(im.target_info[rank - 1]['label'])}"
    return map_name(label, rank, target, handle, count)


def _attribute_chunk(
    technique: Attributor,
    chunk: list[ImageItem],
    handle: ModelHandle,
    device: torch.device,
    choose_targets: TargetChooser | None = None,
    kind: TargetKind | None = None,
) -> list[tuple[torch.Tensor | None, float, dict[str, str] | None, dict[str, Any]]]:
    """``(map, seconds, error, metadata)`` for every (image, target) of a chunk, input-major,
    from one call; if the call fails, image by image to isolate failures.

    Images with the same number of targets go in as one ``[n, k]`` target list, so techniques
    that share work between the targets of an input do; otherwise each target is its own row.
    With ``choose_targets`` (images without a prediction yet), the targets are chosen from the
    call's own logits, one per image; under a target ``kind``, by the kind in the call's own
    pass (an image it chose nothing for gets one failed row).
    """
    x = torch.stack([im.inputs for im in chunk]).to(device)
    spec: Any
    if kind is not None:
        spec = kind if choose_targets is not None else kind_for(chunk, kind)
    elif choose_targets is not None:
        def spec(logits: torch.Tensor) -> list[int]:
            return choose_targets(chunk, logits)
    else:
        x, spec = _class_spec(chunk, x)
    start = time.perf_counter()
    try:
        attribution = technique.attribute(handle, x, spec)
        if kind is not None and choose_targets is not None:
            kind_targets_from(chunk, attribution, kind)
        count = len(attribution.maps)
        seconds = (time.perf_counter() - start) / max(count, 1)
        rows = [
            (m, seconds, None, _item_metadata(attribution.metadata, i, count))
            for i, m in enumerate(attribution.maps)
        ]
        return _with_unexplained(chunk, rows) if kind is not None else rows
    except ChosenTargetError:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken call fails its items, not the run
        if len(chunk) == 1:
            error = failure_details(exc)
            elapsed = time.perf_counter() - start
            return [(None, elapsed, error, {}) for _ in (image_targets(chunk[0]) or [None])]
    return [
        row
        for one in chunk
        for row in _attribute_chunk(technique, [one], handle, device, choose_targets, kind)
    ]


def _class_spec(chunk: list[ImageItem], x: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """The inputs and class targets of a chunk whose targets are known (see
    :func:`_attribute_chunk`)."""
    targets = [image_targets(im) for im in chunk]
    counts = {len(t) for t in targets}
    if counts == {1}:
        return x, [t[0] for t in targets]
    if len(counts) == 1:
        return x, targets
    index = torch.tensor([i for i, t in enumerate(targets) for _ in t], device=x.device)
    return x[index], [c for t in targets for c in t]


def _with_unexplained(chunk: list[ImageItem], rows: list[tuple]) -> list[tuple]:
    """A target kind's rows with one failed row for each image it chose no target for (the
    image's own error says why), so rows line up with :func:`image_targets`."""
    out, rest = [], iter(rows)
    for im in chunk:
        if not image_targets(im):
            out.append((None, 0.0, {"error": im.error or "no target"}, {}))
            continue
        out.extend(next(rest) for _ in image_targets(im))
    return out
