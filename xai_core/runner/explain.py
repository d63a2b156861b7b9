"""``xai_core.explain``: one call from Python, the same run as ``xai run``.

:func:`explain` writes what it is given as an :class:`~xai_core.runner.config.ExperimentConfig`
(validated by :func:`~xai_core.runner.config.load_config`, so every error is the config's,
raised before anything runs) and runs it with :func:`~xai_core.runner.run.run_experiment` into
an output folder, then opens that folder (:func:`~xai_core.report.explanations.open_run`): the
object it returns is the one ``open_run`` gives for the folder of ``xai run`` on the same config.

What a config file cannot hold goes through the run as files or as the run's model:

- images in memory (PIL images, tensors, arrays) are written under the folder's ``given/``
  (:attr:`~xai_core.runner.layout.RunLayout.given`) and listed as the run's inputs, so the run
  hashes and resumes them as any file: an 8-bit PIL image as a PNG, a tensor or array as an
  ``.npy`` of pixel values in ``[0, 1]`` (read as :mod:`xai_core.runner.inputs` reads arrays);
- a :class:`~xai_core.ModelHandle` or a plain ``nn.Module`` is passed to the run
  (``run_experiment(handle=...)``); the config names it ``python/<name>`` (no config file can load
  it) and its records fingerprint its weights.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.target_kinds import ScoreFunction, TargetKind
from xai_core.errors import ConfigError, XaiError, did_you_mean
from xai_core.io import write_bytes
from xai_core.report.explanations import Explanations
from xai_core.runner.config import (
    GIVEN_PREFIX,
    ExperimentConfig,
    ModelConfig,
    check_registered_names,
    load_config,
)
from xai_core.runner.layout import RunLayout
from xai_core.runner.run import run_experiment
from xai_core.store import load_items, read_results

__all__ = ["explain", "EXPLAIN_OPTIONS"]

#: Options of :func:`explain` itself, besides the config's keys and the model's.
EXPLAIN_OPTIONS = ("output_dir", "progress", "force")
#: The config keys that :func:`explain` sets from its arguments.
_ARGUMENTS = ("model", "models", "inputs", "target", "methods", "metrics")
_CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(ExperimentConfig)
                     if f.name not in _ARGUMENTS + ("output_dir",))
_MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "name")
#: The model keys that still apply to a model passed from Python (the others describe how a
#: model is loaded: it is not).
_GIVEN_MODEL_KEYS = ("label", "input_size", "method_params")

Images = Any  # a path, sample:NAME, PIL image, tensor or array, or a list of them


def explain(
    model: str | Mapping[str, Any] | ModelHandle | nn.Module,
    images: Images,
    methods: str | Sequence[str | Mapping[str, Any]] = ("saliency",),
    target: Any = "predicted",
    metrics: str | Sequence[str | Mapping[str, Any]] = (),
    **options: Any,
) -> Explanations:
    """Explain ``images`` with each of ``methods`` on ``model``: the run of ``xai run`` on the
    config these arguments make, returned as :class:`~xai_core.Explanations`.

    >>> import xai_core
    >>> ex = xai_core.explain("timm/resnet10t", ["sample:cat", "sample:coffee"],
    ...                       methods=["saliency", "grad_cam"], pretrained=False, input_size=32,
    ...                       figures=False, workers=0)
    >>> ex.frame()[["image", "method"]].values.tolist()
    [['sample:cat', 'saliency'], ['sample:cat', 'grad_cam'],
     ['sample:coffee', 'saliency'], ['sample:coffee', 'grad_cam']]
    >>> ex.map("sample:cat", "grad_cam").shape
    (32, 32)

    :param model: a registered name (``"efficientnet_lite0"``, ``"timm/resnet18"``), a
        config's ``model`` mapping, a :class:`~xai_core.ModelHandle` or a plain ``nn.Module``
        (:func:`~xai_core.contracts.model.as_model_handle`; moved to the run's device and put
        in eval mode).
    :param images: one input or a list: paths, folders, globs and ``sample:NAME`` as a config's
        ``inputs``; PIL images; tensors or arrays ``[C, H, W]`` of pixel values in ``[0, 1]``
        (not normalized: each is preprocessed like an image file); a tensor ``[B, C, H, W]`` is
        ``B`` such images.
    :param methods: names, or ``{name:, params:, label:}`` mappings as a config's ``methods``.
    :param target: as a config's ``target``: ``"predicted"``, ``"top-k"``, a class index or
        name, a list of them, a target kind mapping ``{kind: ..., ...}`` or a built
        :class:`~xai_core.TargetKind` of a registered kind.
    :param metrics: as a config's ``metrics``.
    :param options: any other key of a run's config (``device``, ``batch_size``, ``seed``,
        ``figures``, ``figure``...), any key of its ``model`` (``pretrained``,
        ``checkpoint``, ``input_size``, ``options``, ``label``...), and ``output_dir`` (default: a
        new temporary folder, removed when the returned object and its items are garbage
        collected, at exit, or by :meth:`~xai_core.Explanations.close`), ``progress`` (``True``
        prints the run's messages, or a callable taking each line) and ``force`` (redo
        finished items; a second call into the same ``output_dir`` resumes otherwise).
    :raises ConfigError: for anything the config check refuses, before anything runs.
    """
    ours, config_keys, model_keys = _split_options(options)
    handle = _given_model(model)
    owner = None
    folder = ours.get("output_dir")
    if folder is None:
        owner = tempfile.TemporaryDirectory(prefix="xai-explain-")
        folder = owner.name
    folder = Path(folder)
    try:
        written, inputs = _inputs(images, RunLayout(folder, folder).given)
        raw = {
            **config_keys,
            "model": _model_section(model, handle, model_keys),
            "inputs": inputs,
            "target": _target(target),
            "methods": _entries(methods),
            "metrics": _entries(metrics),
            "output_dir": str(folder),
        }
        config = load_config(raw, check_names=handle is None)
        if handle is not None:
            check_registered_names(config, model_given=True)
        for path, data in written:  # only once the config is known to be right
            path.parent.mkdir(parents=True, exist_ok=True)
            if not (path.is_file() and path.read_bytes() == data):
                write_bytes(path, data)
        run_experiment(config, _progress(ours.get("progress")), force=bool(ours.get("force")),
                       handle=handle)
        results = read_results(folder)
        return Explanations(folder, results, load_items(folder, results), owner=owner)
    except BaseException:
        if owner is not None:
            owner.cleanup()
        raise


def _split_options(options: Mapping[str, Any]):
    """``explain``'s own options, the config's keys and the model's keys; an unknown key is
    refused with its close matches and every valid key."""
    ours, config, model = {}, {}, {}
    for key, value in options.items():
        if key in EXPLAIN_OPTIONS:
            ours[key] = value
        elif key in _CONFIG_KEYS:
            config[key] = value
        elif key in _MODEL_KEYS:
            model[key] = value
        else:
            valid = [*EXPLAIN_OPTIONS, *_CONFIG_KEYS, *_MODEL_KEYS]
            if key in _ARGUMENTS:
                raise ConfigError(f"explain: give {key!r} as explain's own argument")
            hint = did_you_mean(key, valid, 1, otherwise=".")
            raise ConfigError(f"explain: unknown option {key!r}{hint} Options: {', '.join(valid)}")
    return ours, config, model


def _given_model(model: Any) -> ModelHandle | None:
    if isinstance(model, (ModelHandle, nn.Module)):
        return as_model_handle(model)
    if isinstance(model, (str, Mapping)):
        return None
    raise XaiError(
        "explain: `model` is a registered name (xai_core.list_models()), a config's model "
        f"mapping, a ModelHandle or a torch.nn.Module, not {type(model).__name__}"
    )


def _model_section(model: Any, handle: ModelHandle | None, keys: dict[str, Any]) -> dict:
    if handle is None:
        base = {"name": model} if isinstance(model, str) else dict(model)
        return {**base, **keys}
    loading = sorted(set(keys) - set(_GIVEN_MODEL_KEYS))
    if loading:
        raise ConfigError(
            f"explain: {', '.join(loading)} describe how a model is loaded, but the model is "
            f"passed from Python and brings its own weights; options that apply to it: "
            f"{', '.join(_GIVEN_MODEL_KEYS)}"
        )
    return {"name": GIVEN_PREFIX + handle.name, "label": handle.name, **keys}


def _target(target: Any) -> Any:
    """A built target kind as the config's mapping (``{kind: NAME, ...its params}``)."""
    if isinstance(target, ScoreFunction):
        raise ConfigError(
            "explain: a Python callable target cannot be written into a run's config; use a "
            "registered target kind (`xai list targets`), or call "
            "xai_core.get_attributor(NAME).attribute(model, inputs, target=ScoreFunction(...))"
        )
    if isinstance(target, TargetKind):
        return {"kind": target.name, **dataclasses.asdict(target.params)}
    return target


def _entries(entries: Any) -> list:
    if isinstance(entries, (str, Mapping)):
        return [entries]
    return [dict(e) if isinstance(e, Mapping) else e for e in entries]


def _inputs(images: Images, given: Path) -> tuple[list[tuple[Path, bytes]], list[str]]:
    """The config's ``inputs`` for ``images``, and the files to write for those in memory."""
    if isinstance(images, (str, os.PathLike)) or _in_memory(images) is not None:
        images = [images]
    written: list[tuple[Path, bytes]] = []
    inputs: list[str] = []
    for image in images:
        kind = _in_memory(image)
        if kind is None:
            if not isinstance(image, (str, os.PathLike)):
                raise XaiError(
                    f"explain: an image is a path, sample:NAME, a PIL image, or a tensor or array "
                    f"[C, H, W] in [0, 1] ([B, C, H, W] for several), not {type(image).__name__}"
                )
            inputs.append(os.fspath(image))
            continue
        for pixels in _split_batch(image) if kind == "array" else [image]:
            name = f"image_{len(written)}"
            path, data = (_png(pixels, given / f"{name}.png") if kind == "pil"
                          else _npy(pixels, given / f"{name}.npy"))
            written.append((path, data))
            inputs.append(str(path))
    return written, inputs


def _in_memory(image: Any) -> str | None:
    from PIL import Image

    if isinstance(image, Image.Image):
        return "pil"
    if isinstance(image, (torch.Tensor, np.ndarray)):
        return "array"
    return None


def _split_batch(image: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 4:
        return list(array)
    if array.ndim in (2, 3):
        return [array]
    raise XaiError(
        f"explain: an image tensor is [C, H, W] (or [H, W]) and a batch [B, C, H, W]; got shape "
        f"{list(array.shape)}"
    )


def _npy(array: np.ndarray, path: Path) -> tuple[Path, bytes]:
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise XaiError(
                f"explain: image {path.stem} holds values in [{np.nanmin(array):.3g}, "
                f"{np.nanmax(array):.3g}]; give pixel values in [0, 1] (before the model's "
                "normalization, which the run applies), e.g. tensor / 255"
            )
    elif array.dtype not in (np.uint8, np.uint16):
        raise XaiError(f"explain: image {path.stem} is of {array.dtype}; give floats in "
                       "[0, 1] or uint8")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return path, buffer.getvalue()


#: PIL modes written as they are (8 bits a channel): what a PNG holds and the run reads.
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")


def _png(image: Any, path: Path) -> tuple[Path, bytes]:
    if image.mode not in _PNG_MODES:
        raise XaiError(
            f"explain: a PIL image of mode {image.mode!r} is not 8-bit; convert it "
            "(image.convert('RGB')) or give a float tensor [C, H, W] in [0, 1]"
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return path, buffer.getvalue()


def _progress(value: Any) -> Callable[[str], None] | None:
    if value is None or value is False:
        return None
    if value is True:
        return lambda line: print(line, file=sys.stderr)
    if callable(value):
        return value
    raise XaiError(f"explain: progress is True, False or a callable taking a line, not {value!r}")
