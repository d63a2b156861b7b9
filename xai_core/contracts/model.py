"""Model handles and the model registry's front door.

A :class:`ModelHandle` is what every technique receives: the eval-mode module, the preprocessing
that module expects (resize, crop, mean/std from the model's own config), its class names, and the
location of its last spatial block. :func:`load_model` builds handles from the names plugins
register (``efficientnet_lite0``, ``timm/<arch>``, ``torchvision/<arch>``); the built-in families
are registered by ``plugins/models.py`` with the building blocks below.

A model takes ``C`` input channels, any ``C >= 1``: the length of its preprocessing's
``mean``/``std`` (:attr:`ModelHandle.in_chans`). A model built for other channels than its
published RGB statistics (``timm/resnet18`` with ``in_chans: 1``) gets them from
:func:`channel_stats`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from xai_core.errors import InputError, ModelLoadError, XaiError
from xai_core.nn.hooks import model_device
from xai_core.nn.layers import LayerInfo, auto_layer, check_layer, list_layers

__all__ = [
    "RANDOM_WEIGHTS",
    "ModelHandle",
    "Preprocessing",
    "ModelEntry",
    "as_model_handle",
    "channel_stats",
    "imagenet_class_names",
    "input_channels",
    "load_checkpoint",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Images more elongated than this are rejected rather than resized to gigapixels.
MAX_ASPECT_RATIO = 20
#: ``info["weights"]`` of a model whose weights were never trained (``pretrained=False``).
RANDOM_WEIGHTS = "random"


def channel_stats(
    mean: Sequence[float], std: Sequence[float], channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalization statistics for ``channels`` input channels: ``mean`` and ``std`` as they
    are when they have one value per channel, else (RGB statistics of a model built for other
    channels) their averages for every channel: ImageNet's become ``0.449`` and ``0.226``, the
    statistics of its grayscale images."""
    if len(mean) == channels and len(std) == channels:
        return tuple(mean), tuple(std)
    return (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels


def input_channels(module: nn.Module) -> int | None:
    """The input channels of ``module``: its ``in_chans`` (timm), else its first convolution's
    ``in_channels``; ``None`` when it has neither."""
    value = getattr(module, "in_chans", None)
    if isinstance(value, int) and value >= 1:
        return value
    return next((m.in_channels for m in module.modules() if isinstance(m, nn.Conv2d)), None)


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the model's input: resize the short side, center-crop, normalize.

    ``mean`` and ``std`` hold one value per input channel: their length is the model's channel
    count (:attr:`channels`).
    """

    input_size: tuple[int, int] = (224, 224)
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"Preprocessing: mean {tuple(self.mean)} and std {tuple(self.std)} need one "
                "value per input channel each"
            )

    @property
    def channels(self) -> int:
        """The number of input channels: one per value of ``mean``."""
        return len(self.mean)

    def to_pixels(self, image: Image.Image | Tensor) -> Tensor:
        """Resized and cropped image ``[C, H, W]`` in ``[0, 1]`` (not normalized): a PIL image
        (``"RGB"`` gives 3 channels, ``"L"`` one) or a float tensor ``[C, H, W]`` in ``[0, 1]``
        (an array input, :func:`xai_core.runner.inputs.read_input`)."""
        from torchvision.transforms import functional as F

        if isinstance(image, Tensor):
            return self.resize_crop(image).clamp(0, 1)
        return F.to_tensor(self.resize_crop(image))

    def resize_crop(self, image: Any, interpolation: str | None = None) -> Any:
        """The geometry of :meth:`to_pixels`: the short side resized to ``resize_size``, then the
        centre ``input_size`` cropped, of a PIL image or a tensor ``[C, H, W]``. ``interpolation``
        replaces the model's (``"nearest"`` keeps a ground-truth mask binary while it lands on
        exactly its image's pixels)."""
        # timm and torchvision take ~2 s to import: `import xai_core` does not pay for them.
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        height, width = image.shape[-2:] if isinstance(image, Tensor) else image.size[::-1]
        if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
            raise InputError(
                f"image of {width}x{height} pixels has an aspect ratio beyond "
                f"{MAX_ASPECT_RATIO}:1; resizing its short side to {self.resize_size} would "
                "need an unreasonably large image. Crop it first."
            )
        mode = InterpolationMode(interpolation or self.interpolation)
        if isinstance(image, Tensor):
            image = F.resize(image, [self.resize_size], interpolation=mode, antialias=True)
        else:
            image = F.resize(image, self.resize_size, interpolation=mode)
        return F.center_crop(image, list(self.input_size))

    def __call__(self, image: Image.Image | Tensor) -> Tensor:
        """Normalized model input ``[C, H, W]``."""
        return self.normalize(self.to_pixels(image))

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        shape = (-1, 1, 1) if like.ndim == 3 else (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    def normalize(self, pixels: Tensor) -> Tensor:
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def denormalize(self, inputs: Tensor) -> Tensor:
        mean, std = self._stats(inputs)
        return inputs * std + mean

    def at_size(self, size: int) -> Preprocessing:
        """This preprocessing at a square ``size`` (``model.input_size``), keeping its crop
        ratio (the resized short side over the crop)."""
        ratio = self.resize_size / max(self.input_size)
        return dataclasses.replace(
            self, input_size=(size, size), resize_size=max(size, round(size * ratio))
        )


@dataclass
class ModelHandle:
    """A classifier ready to be explained.

    :ivar name: registry name (``"timm/resnet18"``) or the class name of a plain module.
    :ivar module: the ``nn.Module`` in eval mode; it returns logits ``[N, num_classes]``.
    :ivar preprocessing: the model's own input pipeline; its ``mean``/``std`` have one value per
        input channel (:attr:`in_chans`).
    :ivar class_names: one name per output class, or ``None`` when unknown.
    :ivar info: where the weights came from and other facts for ``results.json``; loaders set
        ``info["weights"]`` to the source (``"pretrained"``, ``"checkpoint"``, a package name)
        or to :data:`RANDOM_WEIGHTS` when the weights are an untrained initialisation.
    """

    name: str
    module: nn.Module
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    class_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _last_conv_block: str | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        value = getattr(self.module, "num_classes", None)
        return value if isinstance(value, int) else None

    @property
    def in_chans(self) -> int:
        """The number of input channels the model takes (1 grayscale, 3 RGB, 13 multispectral
        bands...): one per value of its preprocessing's ``mean``."""
        return self.preprocessing.channels

    def check_channels(self, inputs: Tensor, what: str = "inputs") -> None:
        """Raise :class:`InputError` unless ``inputs`` ``[N, C, H, W]`` have this model's
        channel count, naming both."""
        if inputs.ndim == 4 and inputs.shape[1] != self.in_chans:
            raise InputError(
                f"{what} have {inputs.shape[1]} channel(s) (shape {tuple(inputs.shape)}) but "
                f"model {self.name!r} takes {self.in_chans}: give a normalized batch "
                f"[N,{self.in_chans},H,W] (or load the model with the channel count of the data, "
                "e.g. options: "
                f"{{in_chans: {inputs.shape[1]}}} for a timm model)"
            )

    @property
    def trained(self) -> bool:
        """``False`` when the weights are a random initialisation (``pretrained=False``): its
        explanations show what an untrained network computes, which summaries should say."""
        return self.info.get("weights") != RANDOM_WEIGHTS

    @property
    def weights_description(self) -> str:
        """Short text for summary lines and figure titles: ``"random weights"`` for an untrained
        model, else ``"weights: <source>"`` (``"weights: unknown"`` for a plain module)."""
        if not self.trained:
            return "random weights"
        return f"weights: {self.info.get('weights') or 'unknown'}"

    def label(self, index: int) -> str:
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return self.class_names[index]
        return f"class {index}"

    def normalize(self, pixels: Tensor) -> Tensor:
        return self.preprocessing.normalize(pixels)

    def denormalize(self, inputs: Tensor) -> Tensor:
        return self.preprocessing.denormalize(inputs)

    def __call__(self, inputs: Tensor) -> Tensor:
        return self.module(inputs)

    def to(self, device: str | torch.device) -> ModelHandle:
        self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return model_device(self.module)

    def last_conv_block(self) -> str:
        """Module path of the last block that still has spatial resolution (``layer: auto``).

        Delegates to :func:`xai_core.nn.layers.auto_layer`, which also understands channels-last
        maps and transformer tokens, at this model's input size.
        """
        if self._last_conv_block is None:
            self._last_conv_block = auto_layer(
                self.module, self.preprocessing.input_size, self.in_chans
            )
        return self._last_conv_block

    def layers(self) -> list[LayerInfo]:
        """Every module with its type and output shape at this model's input size, the
        automatic layer marked (:func:`xai_core.nn.layers.list_layers`; ``xai list layers``)."""
        return list_layers(self.module, self.preprocessing.input_size, self.in_chans)

    def check_layer(self, layer: str) -> str:
        """``layer`` if it is ``"auto"`` or a module path of this model; else an error naming
        close matches and ``xai list layers <this model>`` (see
        :func:`~xai_core.nn.layers.check_layer`)."""
        return check_layer(self.module, layer, self.name)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model or model family (``name`` ending in ``/*``)."""

    name: str
    loader: Callable[..., ModelHandle]
    description: str = ""
    lister: Callable[[], list[str]] | None = None
    #: ``"imagenet"`` when the model's classes are ImageNet-1k's (unless the config sets
    #: ``num_classes``): class names in a config are then checked before the model loads.
    classes: str | None = None
    #: What the model computes (:data:`xai_core.contracts.target_kinds.TASKS`:
    #: ``classification``, ``segmentation``, ``detection``), ``None`` when not said: a config
    #: whose target kind needs another is refused before the model loads.
    task: str | None = None
    #: A model that code the config names builds (``factory``, ``hub/*``): it cannot describe
    #: its own input, so its loader also takes the config's ``input_size``, ``mean``, ``std``,
    #: ``labels`` and ``args`` (see :mod:`xai_core.models.sources`).
    from_code: bool = False
    #: Checks the loader's options (same signature as ``loader``) before anything is built:
    #: files exist, names resolve. ``load_model`` and the config check call it.
    check: Callable[..., None] | None = None

    @property
    def is_family(self) -> bool:
        return self.name.endswith("/*")

    @property
    def prefix(self) -> str:
        return self.name[:-1] if self.is_family else self.name


def as_model_handle(model: ModelHandle | nn.Module) -> ModelHandle:
    """Wrap a plain ``nn.Module`` (timm models keep their own preprocessing config; another
    module takes the channels of its first convolution, in definition order, with ImageNet's
    statistics averaged when that is not 3: :func:`channel_stats`)."""
    if isinstance(model, ModelHandle):
        return model
    if not isinstance(model, nn.Module):
        raise XaiError(
            f"expected a model handle from xai_core.load_model or a torch.nn.Module, "
            f"not {type(model).__name__}"
        )
    preprocessing = Preprocessing()
    if hasattr(model, "pretrained_cfg"):
        preprocessing = timm_preprocessing(model)
    elif (channels := input_channels(model)) is not None and channels != preprocessing.channels:
        mean, std = channel_stats(preprocessing.mean, preprocessing.std, channels)
        preprocessing = Preprocessing(mean=mean, std=std)
    num_classes = getattr(model, "num_classes", None)
    names = imagenet_class_names() if num_classes == 1000 else None
    return ModelHandle(type(model).__name__, model, preprocessing, names)


@functools.lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...]:
    """torchvision's list of the ImageNet-1k classes, read from its source file: importing
    ``torchvision.models`` costs about a second (it imports ``torch._dynamo``), which a config
    check that only names a class (``xai config --check``, a refused ``xai run``) need not pay."""
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.submodule_search_locations:
        meta = Path(next(iter(spec.submodule_search_locations))) / "models" / "_meta.py"
        try:
            for node in ast.parse(meta.read_text()).body:
                if (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and getattr(node.targets[0], "id", None) == "_IMAGENET_CATEGORIES"):
                    names = ast.literal_eval(node.value)
                    if len(names) == 1000:
                        return tuple(names)
        except (OSError, SyntaxError, ValueError):
            pass  # another torchvision layout: import it
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, index order (``281`` is ``"tabby"``)."""
    return list(_imagenet_names())


def class_names_for(num_classes: int) -> list[str] | None:
    return imagenet_class_names() if num_classes == 1000 else None


# --- weights ---------------------------------------------------------------------------------


def load_checkpoint(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a local state dict into ``module`` with ``weights_only=True``; strict, clear errors."""
    file = Path(path).expanduser()
    state = _state_dict_of(_read_checkpoint(file), file)
    _load_strictly(module, state, file)


def _read_checkpoint(file: Path) -> Any:
    """What ``torch.load(file, weights_only=True)`` returns; a :class:`ModelLoadError` else."""
    if not file.is_file():
        raise ModelLoadError(f"checkpoint {str(file)!r} does not exist or is not a file")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        # PyTorch's own messages suggest weights_only=False: never relayed (nor chained), since
        # xai never unpickles code; the file has to become plain tensors first.
        raise ModelLoadError(_unreadable_checkpoint_message(file, exc)) from None


def _state_dict_of(state: Any, file: Path) -> dict[str, Tensor]:
    """The state dict a checkpoint holds: itself, or its ``state_dict``, ``model`` or
    ``model_state_dict`` entry, without a ``module.`` prefix (``DataParallel``) on every key."""
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelLoadError(f"checkpoint {str(file)!r} does not hold a state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _load_strictly(module: nn.Module, state: dict[str, Tensor], file: Path) -> None:
    """``module.load_state_dict(state)``, every mismatch a :class:`ModelLoadError` naming a few."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        mismatches = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        detail = "; ".join(mismatches[:3]) + (
            f" (+{len(mismatches) - 3} more)" if len(mismatches) > 3 else ""
        )
        raise ModelLoadError(
            f"checkpoint {str(file)!r} does not fit the model: {detail or exc}"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {_few(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {_few(result.unexpected_keys)}")
    if problems:
        raise ModelLoadError(
            f"checkpoint {str(file)!r} does not fit the model: {'; '.join(problems)}"
        )


def _unreadable_checkpoint_message(file: Path, exc: BaseException) -> str:
    """Why ``torch.load(file, weights_only=True)`` failed, and the one safe way forward."""
    text = str(exc)
    names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
    if not names and "Weights only load failed" not in text:
        return (
            f"checkpoint {str(file)!r} is not a file torch.save wrote, or it is damaged "
            f"({type(exc).__name__}: {text}); point `checkpoint` at a state dict of tensors"
        )
    new = file.with_name(f"{file.stem}.state_dict{file.suffix or '.pt'}")
    advice = (
        "unpickling objects can run code from the file, so xai loads weights only and never "
        "turns that off. If you trust the file, convert it once to a plain state dict, in a "
        "trusted environment that has the classes it needs: "
        f"`torch.save(torch.load({str(file)!r}, weights_only=False).state_dict(), "
        f"{str(new)!r})` for a saved model (for a dict that holds the model's state dict, save "
        f"that entry instead), then set `checkpoint` to {str(new)!r}"
    )
    if names:
        return (
            f"checkpoint {str(file)!r} holds pickled Python objects ({', '.join(names)}), not "
            f"only tensors; {advice}"
        )
    detail = text.partition("WeightsUnpickler error:")[2].partition("Check the documentation")[0]
    detail = " ".join(detail.split()) or "no detail"
    return (
        f"checkpoint {str(file)!r} cannot be read as tensors only ({detail}): it is damaged, "
        f"not a file torch.save wrote, or it holds pickled Python objects; {advice}"
    )


def load_state_in_order(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load ``state`` into ``module`` by position (for checkpoints with other key names).

    Every tensor's shape is checked against the model's tensor at the same position; any mismatch
    (count or shape) raises :class:`ModelLoadError` naming both keys.
    """
    target = module.state_dict()
    if len(state) != len(target):
        raise ModelLoadError(
            f"{source} holds {len(state)} tensors but the model has {len(target)}; "
            "they cannot be mapped in order"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelLoadError(
                f"{source}: tensor {src_key!r} has shape {tuple(tensor.shape)} but model tensor "
                f"{dst_key!r} at the same position has {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    module.load_state_dict(mapped, strict=True)


def _few(keys: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return f"{shown} (+{len(keys) - n} more)" if len(keys) > n else shown


# --- timm ------------------------------------------------------------------------------------


def timm_preprocessing(module: nn.Module) -> Preprocessing:
    import timm.data  # start-up: see Preprocessing.to_pixels

    cfg = timm.data.resolve_model_data_config(module)
    _, height, width = cfg["input_size"]
    crop_pct = cfg.get("crop_pct") or 0.875
    # timm's data config keeps the RGB statistics of a model built with other `in_chans`.
    mean, std = channel_stats(cfg["mean"], cfg["std"], input_channels(module) or len(cfg["mean"]))
    return Preprocessing(
        input_size=(height, width),
        resize_size=int(min(height, width) / crop_pct),
        interpolation=cfg.get("interpolation") or "bilinear",
        mean=mean,
        std=std,
    )


# --- torchvision -----------------------------------------------------------------------------


