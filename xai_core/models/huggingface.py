"""The Hugging Face adapter: any ``transformers`` image classifier as a
:class:`~xai_core.ModelHandle`.

``hf/<model id>`` (``hf/google/vit-base-patch16-224``) loads a model from the Hugging Face Hub,
or from its cache without any network; ``hf/<directory>`` loads a folder that ``save_pretrained``
wrote (a relative directory is relative to the working directory). Both go through
``AutoModelForImageClassification``; ``pretrained: false`` builds the architecture of the model's
``config.json`` with random weights. Offline, a model that is neither a directory nor in the
cache fails within seconds, naming the ways to get it.

The handle's module is :class:`HFClassifier`, a wrapper whose ``forward(x)`` returns the logits
``[N, classes]`` (what every technique expects, not a ``transformers`` output object): its layer
names start with ``model.`` (``model.vit.layers.11.layernorm_before``), in ``xai list layers`` and
in every ``layer:`` parameter alike. The preprocessing comes from the model's image processor
(``preprocessor_config.json``: mean, std, size, crop, resampling), else from the config's
``image_size`` with ImageNet's statistics; class names from ``config.id2label`` (the default
``LABEL_0``, ``LABEL_1``... mean no names). A CLIP model (``model_type: clip``) is a zero-shot
classifier of the config's ``labels`` instead (:mod:`xai_core.models.clip`); ``labels`` and
``options.prompt`` are refused for any other ``hf/*`` model, and a CLIP model without
``labels`` is refused, at config time when its ``config.json`` is local.

``transformers`` is imported inside the functions (the ``hf`` extra: ``pip install
xai-core[hf]``). What does not live here: the registry's front door
(:mod:`xai_core.models.loading`) and the handle contract (:mod:`xai_core.contracts.model`);
``plugins/models.py`` registers the ``hf/*`` family.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from xai_core.contracts.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RANDOM_WEIGHTS,
    ModelHandle,
    Preprocessing,
    channel_stats,
    load_checkpoint,
)
from xai_core.errors import ConfigError, ModelLoadError
from xai_core.models.clip import CLIP_TYPES, LABELS_FIX, CLIPZeroShot, check_prompt, prompts
from xai_core.models.labels import read_labels
from xai_core.models.network import reachable

__all__ = ["HF_PREFIX", "HFClassifier", "check_hf", "handle_from_hf", "hf_label", "hf_source"]

#: The prefix of the family: ``hf/<model id>`` or ``hf/<directory>``.
HF_PREFIX = "hf/"
HF_HOST = "huggingface.co"
INSTALL = "pip install xai-core[hf]"
#: A Hub model id: ``name`` or ``owner/name`` of letters, digits, ``-``, ``_`` and ``.``.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: ``config.id2label`` when nobody named the classes.
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
#: PIL's resampling filters (``resample`` of an image processor) as torchvision names; filters
#: torchvision cannot apply to tensors (lanczos, box, hamming) become the nearest smooth one.
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear",
             5: "bilinear"}
#: Options of ``from_pretrained`` that say where the files are: the image processor's files
#: are read with them too.
_LOCATION_OPTIONS = ("cache_dir", "revision", "subfolder", "token")
#: Parameters of the embeddings that put tokens in front of the patch tokens.
_PREFIX_PARAMETERS = ("cls_token", "distillation_token", "register_tokens")


def _transformers() -> ModuleType:
    try:
        import transformers
    except ImportError:
        raise ModelLoadError(
            f"hf/* models need the transformers package: {INSTALL}"
        ) from None
    return transformers


class HFClassifier(nn.Module):
    """A ``transformers`` image classifier whose ``forward(x)`` returns its logits.

    :ivar model: the ``...ForImageClassification`` model (so layer paths start with ``model.``).
    :ivar num_classes: ``config.num_labels``.
    :ivar num_prefix_tokens: the class, distillation and register tokens in front of the patch
        tokens, for a transformer that has them (read by :func:`xai_core.nn.layers.infer_layout`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_classes = int(model.config.num_labels)
        prefix = _prefix_tokens(model)
        if prefix:
            self.num_prefix_tokens = prefix

    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=x).logits


def _prefix_tokens(model: nn.Module) -> int:
    """The tokens an HF transformer's embeddings put before the patch tokens: the sizes of its
    ``cls_token``, ``distillation_token`` and ``register_tokens`` (``0`` for a CNN, a Swin)."""
    count = 0
    for name, parameter in model.named_parameters():
        if name.rsplit(".", 1)[-1] in _PREFIX_PARAMETERS and parameter.ndim == 3:
            count += int(parameter.shape[1])
    return count


# --- where the model is ---------------------------------------------------------------------


def _looks_like_path(arch: str) -> bool:
    return arch.startswith(("/", "./", "../", "~", ".\\")) or arch in (".", "..")


def hf_source(arch: str) -> tuple[str, bool]:
    """What ``hf/<arch>`` names: ``(absolute directory, True)`` for a ``save_pretrained``
    folder (relative to the working directory), ``(model id, False)`` for a Hub id.

    :raises ConfigError: for a path that is not a directory, a directory without a
        ``config.json``, or text that is not a model id.
    """
    path = Path(arch).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"hf/{arch}: the directory {str(path.resolve())!r} has no config.json; give a "
                "folder that `model.save_pretrained(folder)` wrote (and its image processor's "
                "`save_pretrained`, for the preprocessing)"
            )
        return str(path.resolve()), True
    if _looks_like_path(arch):
        raise ConfigError(
            f"hf/{arch}: the directory {str(path.resolve())!r} does not exist; a relative "
            "directory is relative to the working directory (give an absolute one to run from "
            "anywhere)"
        )
    if not _MODEL_ID.match(arch):
        raise ConfigError(
            f"hf/{arch}: {arch!r} is neither a directory nor a Hugging Face model id; write "
            "hf/<owner>/<name> (e.g. hf/google/vit-base-patch16-224) or hf/<directory>"
        )
    return arch, False


def hf_label(name: str) -> str:
    """The label of ``hf/<arch>`` in outputs when the config gives none: ``hf/<folder name>``
    for a directory (not its whole path), the name itself for a model id."""
    arch = name[len(HF_PREFIX):]
    path = Path(arch).expanduser()
    if arch and (path.is_dir() or _looks_like_path(arch)):
        return f"{HF_PREFIX}{path.resolve().name}"
    return name


def check_hf(arch: str, pretrained: bool = True, checkpoint: str | None = None,
             labels: Any = None, prompt: Any = None, **options: Any) -> None:
    """Check ``hf/<arch>`` before anything loads: ``transformers`` installed, the directory
    there with its ``config.json``, or a well-formed model id; a ``checkpoint`` file there;
    ``labels`` and ``prompt`` readable, given for a CLIP model and for no other (as far as the
    local ``config.json`` tells: a Hub model not in the cache is checked when it loads)."""
    if importlib.util.find_spec("transformers") is None:
        raise ModelLoadError(f"hf/* models need the transformers package: {INSTALL}")
    source, local = hf_source(arch)
    if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
        raise ConfigError(f"checkpoint {checkpoint!r} of hf/{arch} does not exist")
    _check_zero_shot(arch, hf_model_type(source, local, **options), labels, prompt)


def _check_zero_shot(arch: str, model_type: str | None, labels: Any, prompt: Any) -> None:
    """``labels`` and ``prompt`` against the ``model_type`` (``None``: not known yet)."""
    if model_type is not None and model_type not in CLIP_TYPES:
        given = [key for key, value in (("labels", labels), ("options.prompt", prompt))
                 if value is not None]
        if given:
            raise ConfigError(
                f"hf/{arch} is a {model_type} model, which brings its own classes: "
                f"{' and '.join(given)} apply only to a CLIP model (zero-shot prompts) among "
                "hf/* models; remove them"
            )
        return
    if model_type is not None and labels is None:
        raise ConfigError(
            f"hf/{arch} is a CLIP model, which classifies text prompts rather than fixed "
            f"classes; {LABELS_FIX}"
        )
    read_labels(labels)
    check_prompt(prompt)


def hf_model_type(source: str, local: bool, **location: Any) -> str | None:
    """``model_type`` of the ``config.json`` of a directory or of a model in the Hugging Face
    cache, read without ``transformers`` and without any network; ``None`` when not local."""
    name = "/".join(filter(None, [location.get("subfolder"), "config.json"]))
    path: Any = str(Path(source) / name)
    if not local:
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(source, name, cache_dir=location.get("cache_dir"),
                                          revision=location.get("revision"))
        except (ImportError, ValueError):
            return None
    if not isinstance(path, str) or not Path(path).is_file():
        return None
    try:
        value = json.loads(Path(path).read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value is not None else None


def _not_available(arch: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"cannot load {what} of hf/{arch}: it is not in the Hugging Face cache and {HF_HOST} is "
        "not reachable (offline?). Download it once where there is network (`hf download "
        f"{arch}`, or from_pretrained then save_pretrained(DIR)) and use hf/DIR or that cache "
        "(HF_HOME); or use a local model (`xai list models`)"
    )


def _from_hub(loader: Any, source: str, local: bool, arch: str, what: str,
              **kwargs: Any) -> Any:
    """``loader(source, **kwargs)`` from a directory or the cache, else (when ``source`` is a
    model id and the Hub answers) from the network; a :class:`ModelLoadError` naming the fix."""
    try:
        return loader(source, local_files_only=True, **kwargs)
    except OSError as exc:
        if local:
            raise ModelLoadError(f"hf/{arch}: cannot read the {what}: {exc}") from None
    if not reachable(HF_HOST):
        raise _not_available(arch, what)
    try:
        return loader(source, **kwargs)
    except OSError as exc:
        raise ModelLoadError(
            f"hf/{arch}: cannot download the {what} ({exc}); is {arch!r} a model id on "
            f"{HF_HOST} (https://huggingface.co/{arch})?"
        ) from None


# --- the handle -----------------------------------------------------------------------------


def handle_from_hf(
    arch: str, pretrained: bool = True, checkpoint: str | None = None, labels: Any = None,
    prompt: Any = None, **kwargs: Any
) -> ModelHandle:
    """A handle for a Hugging Face image classifier: ``hf/<model id>`` or ``hf/<directory>``
    (a ``save_pretrained`` folder, relative to the working directory); for a CLIP model, a
    zero-shot classifier of ``labels`` (:mod:`xai_core.models.clip`).

    :param pretrained: its weights; ``False`` builds its ``config.json``'s architecture with
        random weights.
    :param checkpoint: a local state dict in the ``transformers`` model's key names.
    :param labels: a CLIP model's classes (a list, or a text file with one a line); refused
        for any other model.
    :param prompt: a CLIP model's prompt template (one ``{}``; default ``"a photo of a {}."``).
    :param kwargs: passed to ``from_pretrained`` (``revision``, ``num_labels`` with
        ``ignore_mismatched_sizes``...); config attributes among them change the config.
    """
    transformers = _transformers()
    source, local = hf_source(arch)
    location = {k: v for k, v in kwargs.items() if k in _LOCATION_OPTIONS}
    model_type = hf_model_type(source, local, **location)
    if model_type is None and (labels is not None or prompt is not None):
        model_type = _from_hub(transformers.AutoConfig.from_pretrained, source, local, arch,
                               "config", **kwargs).model_type
    _check_zero_shot(arch, model_type, labels, prompt)
    zero_shot = model_type in CLIP_TYPES
    auto = transformers.AutoModel if zero_shot else transformers.AutoModelForImageClassification
    pretrained = bool(pretrained) and checkpoint is None
    try:
        if pretrained:
            model = _from_hub(auto.from_pretrained, source, local, arch, "model", **kwargs)
        else:
            config = _from_hub(transformers.AutoConfig.from_pretrained, source, local, arch,
                               "config", **kwargs)
            # transformers reads `architectures` to pick a class, and fails on None.
            config.architectures = config.architectures or []
            model = auto.from_config(config)
    except ValueError as exc:
        raise ModelLoadError(
            f"hf/{arch} is not an image classifier AutoModelForImageClassification knows: {exc}"
        ) from None
    # A Hub model whose config was not local: its type is known now.
    _check_zero_shot(arch, model.config.model_type, labels, prompt)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    weights = "checkpoint" if checkpoint else ("pretrained" if pretrained else RANDOM_WEIGHTS)
    info = {"weights": weights, "checkpoint": checkpoint, "model_id": arch,
            "source": "directory" if local else "huggingface",
            "architecture": type(model).__name__}
    module: nn.Module
    if zero_shot:
        class_names = read_labels(labels)
        tokenizer = _from_hub(transformers.AutoTokenizer.from_pretrained, source, local, arch,
                              "tokenizer", **location)
        module = CLIPZeroShot(model, tokenizer, prompts(class_names, prompt))
        info["prompts"] = module.prompts
    else:
        module = HFClassifier(model)
        class_names = hf_class_names(model.config)
    return ModelHandle(
        name=f"{HF_PREFIX}{arch}",
        module=module.eval(),
        preprocessing=hf_preprocessing(
            transformers, source, local,
            model.config.vision_config if zero_shot else model.config, **location,
        ),
        class_names=class_names,
        info=info,
    )


def hf_class_names(config: Any) -> list[str] | None:
    """``config.id2label`` in index order; ``None`` when it has the default ``LABEL_<i>`` names
    or misses an index."""
    labels = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    count = int(config.num_labels)
    names = [labels.get(i) for i in range(count)]
    if any(n is None for n in names) or all(_DEFAULT_LABEL.match(n) for n in names):
        return None
    return names  # type: ignore[return-value]


def _edges(size: Any) -> tuple[int | None, int | None, int | None]:
    """``(height, width, shortest_edge)`` of an image processor's ``size`` or ``crop_size`` (a
    dict or a ``SizeDict``; ``None`` where it does not say)."""
    if size is None:
        return None, None, None
    if isinstance(size, int):
        return size, size, None
    read = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    return read("height"), read("width"), read("shortest_edge")


def _geometry(processor: Any) -> tuple[tuple[int, int], int] | None:
    """``(input_size, resize_size)`` of an image processor, as a short-side resize and a centre
    crop (the one geometry :class:`Preprocessing` has: a processor that resizes to height x width
    gets its short side resized, then the crop)."""
    height, width, shortest = _edges(getattr(processor, "size", None))
    crop_h, crop_w, _ = _edges(getattr(processor, "crop_size", None))
    crop_pct = getattr(processor, "crop_pct", None)
    if shortest is not None and crop_pct and shortest < 384:  # ConvNeXt's rule
        return (shortest, shortest), int(shortest / crop_pct)
    resize = shortest if shortest is not None else (
        min(height, width) if height and width else None
    )
    if getattr(processor, "do_center_crop", False) and crop_h and crop_w:
        return (crop_h, crop_w), resize or min(crop_h, crop_w)
    if height and width:
        return (height, width), min(height, width)
    if shortest is not None:
        return (shortest, shortest), shortest
    return None


def _processor(transformers: ModuleType, source: str, local: bool, **location: Any) -> Any:
    """The model's image processor, or ``None`` when it has none (a model from a config alone);
    never downloads when offline."""
    loader = transformers.AutoImageProcessor.from_pretrained
    try:
        return loader(source, local_files_only=True, **location)
    except (OSError, ValueError, ImportError):
        pass
    if local or not reachable(HF_HOST):
        return None
    try:
        return loader(source, **location)
    except (OSError, ValueError, ImportError):
        return None


def hf_preprocessing(
    transformers: ModuleType, source: str, local: bool, config: Any, **location: Any
) -> Preprocessing:
    """The preprocessing of an HF model: its image processor's mean, std, size, crop and
    resampling; without one, ``config.image_size`` with ImageNet's mean and std (statistics
    averaged over the channels for a model of ``num_channels`` other than 3). ``location``:
    ``from_pretrained``'s ``cache_dir``, ``revision``... for the processor's files."""
    channels = int(getattr(config, "num_channels", 3) or 3)
    processor = _processor(transformers, source, local, **location)
    geometry = _geometry(processor) if processor is not None else None
    if geometry is None:
        size = getattr(config, "image_size", 224)
        side = int(size[0] if isinstance(size, (list, tuple)) else size)
        mean, std = channel_stats(IMAGENET_MEAN, IMAGENET_STD, channels)
        return Preprocessing(mean=mean, std=std).at_size(side)
    if getattr(processor, "do_normalize", True):
        mean = tuple(processor.image_mean or IMAGENET_MEAN)
        std = tuple(processor.image_std or IMAGENET_STD)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    mean, std = channel_stats(mean, std, channels)
    input_size, resize = geometry
    resample = getattr(processor, "resample", None)
    return Preprocessing(
        input_size=input_size, resize_size=resize,
        interpolation=_RESAMPLE.get(int(getattr(resample, "value", resample)), "bilinear")
        if resample is not None else "bilinear",
        mean=mean, std=std,
    )
