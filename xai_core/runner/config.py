"""Experiment configs: a typed OmegaConf schema, YAML files, ``key=value`` overrides.

Everything is checked before any model loads: unknown keys (with close matches and the valid keys),
wrong types, unknown model/method names and every method's parameters against the method's own
``Params`` dataclass. Techniques use :func:`build_params` for the same checks when built from code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xai_core.contracts.metric import Metric
from xai_core.contracts.params import (
    build_params,
    check_field_values,
    check_keys,
    omegaconf_message,
)
from xai_core.contracts.technique import Technique
from xai_core.errors import ConfigError, XaiError, did_you_mean
from xai_core.io import ARRAY_DTYPES
from xai_core.models.huggingface import HF_PREFIX
from xai_core.models.loading import check_model_name, check_model_options, model_entry
from xai_core.models.sources import FACTORY_MODEL, anchored, default_label, read_labels
from xai_core.plugins.factory import build_sink, resolve_entry
from xai_core.report.figures import FigureOptions
from xai_core.runner.examples import EXAMPLE_PREFIX, example_path
from xai_core.runner.masks import check_mask_config

__all__ = [
    "ModelConfig",
    "MethodConfig",
    "BenchmarkConfig",
    "MaskConfig",
    "ExperimentConfig",
    "FIGURES_AUTO_IMAGES",
    "build_params",
    "load_config",
    "model_run_config",
    "parse_override",
    "safe_label",
]

DEVICES = ("cpu", "cuda", "auto")
#: Largest batch a config may ask for: beyond it a run would only fail later, out of memory.
MAX_BATCH_SIZE = 65536
#: Seeds go to torch, which takes 64-bit integers.
MAX_SEED = 2**63 - 1
#: With ``figures: auto``, a run of more images than this draws no per-item figures (the grid
#: and the report still show the maps): beyond a few screens of them nobody opens them one by
#: one, and each costs time and disk.
FIGURES_AUTO_IMAGES = 64
#: The values of ``figures``.
FIGURES = (True, False, "auto", "grid")


@dataclass
class ModelConfig:
    """Which model to explain and how to load it."""

    #: A registered model (``xai list models``): ``efficientnet_lite0``, ``timm/<arch>``,
    #: ``torchvision/<arch>``, ``hub/<owner>/<repo>:<entrypoint>`` (torch.hub; ``options:
    #: {source: local}`` for ``hub/<directory>:<entrypoint>``). Left out with ``factory``.
    name: str = "efficientnet_lite0"
    #: Load pretrained weights (downloaded for hub models; fails fast offline).
    pretrained: bool = True
    #: A local state-dict file, loaded with ``weights_only=True`` (overrides ``pretrained``);
    #: relative to the working directory.
    checkpoint: str | None = None
    #: Extra keyword arguments for the model's constructor (e.g. ``num_classes``; for a timm
    #: model ``in_chans`` sets the input channels: 1 grayscale, 4 RGB-D, 13 bands...).
    options: dict[str, Any] = field(default_factory=dict)
    #: Name of the model in outputs, figures and ``results.json`` (default: ``name`` with
    #: ``/`` as ``_``; a factory's callable, a hub model's entrypoint); needed to compare one
    #: architecture with itself (two checkpoints).
    label: str | None = None
    #: Square input size in pixels instead of the model's own (the resize keeps the model's
    #: crop ratio). Default: the model's. Required for a model from code (``factory``,
    #: ``hub/``), which cannot say its own.
    input_size: int | None = field(default=None, metadata={"min": 8, "max": 8192})
    #: Per-method parameters for this model only, by method label, over the method's own
    #: ``params``: ``{grad_cam: {layer: features.12}}``. Model-specific settings (a CAM layer)
    #: live here when one experiment compares several models.
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Your own model instead of a registered ``name``: ``FILE.py:CALLABLE`` (a ``.py`` file,
    #: relative to the config file's folder) or ``package.module:CALLABLE``; the callable
    #: returns an ``nn.Module``. Needs ``input_size``; see ``docs/own-models.md``.
    factory: str | None = None
    #: Keyword arguments of the ``factory`` callable or of the ``hub/`` entrypoint.
    args: dict[str, Any] = field(default_factory=dict)
    #: Normalisation mean per RGB channel of a model from code (``factory``, ``hub/``).
    #: Default: ImageNet's, ``[0.485, 0.456, 0.406]``.
    mean: list[float] | None = None
    #: Normalisation std per RGB channel of a model from code. Default: ImageNet's,
    #: ``[0.229, 0.224, 0.225]``.
    std: list[float] | None = None
    #: Class names of a model from code, in output order: a text file with one a line
    #: (relative to the config file's folder) or a list. Targets may then name classes. For a
    #: CLIP model (``hf/openai/clip-vit-base-patch32``) the classes it tells apart: each becomes
    #: the prompt ``options.prompt`` (default ``"a photo of a {}."``) with the label in its ``{}``.
    labels: Any = None

    @property
    def shown_label(self) -> str:
        """The model's name in items, figures and ``results.json``: ``label``, else ``name``
        (a factory's callable name, a hub model's entrypoint)."""
        return self.label or default_label(self.name, self.factory)

    @property
    def run_label(self) -> str:
        """The model's label as a file name (``timm/resnet18`` -> ``timm_resnet18``)."""
        return safe_label(self.shown_label)

    def loader_options(self) -> dict[str, Any]:
        """The keyword arguments of ``load_model`` for this model: ``pretrained``,
        ``checkpoint`` and ``options``; for a model from code also the keys that describe it."""
        options = {"pretrained": self.pretrained, "checkpoint": self.checkpoint, **self.options}
        if model_entry(self.name).from_code:
            described = {"factory": self.factory, "args": self.args, "labels": self.labels,
                         "mean": self.mean, "std": self.std, "input_size": self.input_size}
            options.update({k: v for k, v in described.items() if v is not None})
        elif self.labels is not None and self.name.startswith(HF_PREFIX):
            options["labels"] = self.labels  # a CLIP model's prompts
        return options

    def identity(self) -> dict[str, Any]:
        """The model config as the run's records fingerprint it: the keys of a model from code
        only when set, so the records of runs before they existed stay valid."""
        data = dataclasses.asdict(self)
        for key in CODE_KEYS:
            if data[key] in (None, {}):
                del data[key]
        return data


#: The keys of ``model`` that only a model from code (``factory``, ``hub/``) takes.
CODE_KEYS = ("factory", "args", "mean", "std", "labels")


@dataclass
class MethodConfig:
    """One technique and its parameters (checked against the technique's ``Params``)."""

    #: A registered name (``xai list attributors``, ``synthesizers``, ``metrics``).
    name: str = MISSING
    #: Its parameters; see ``docs/reference/techniques.md``.
    params: dict[str, Any] = field(default_factory=dict)
    #: Name in outputs and figures (default: ``name``); needed to use one method twice.
    label: str | None = None


#: Control rows of the ground-truth benchmark: maps that know nothing about the model.
BENCHMARK_CONTROLS = ("random", "centre_gaussian", "edges")


@dataclass
class BenchmarkConfig:
    """The ground-truth benchmark (``xai benchmark``): which held-out images, which controls."""

    #: Held-out images of the ground-truth set to evaluate on.
    images: int = field(default=64, metadata={"min": 1})
    #: Seed of the procedural image generator.
    dataset_seed: int = field(default=7, metadata={"min": 0, "max": MAX_SEED})
    #: Control rows that know nothing about the model.
    controls: list[str] = field(default_factory=lambda: list(BENCHMARK_CONTROLS))
    #: Images the cascading randomisation check runs on (it re-runs each method per layer).
    sanity_images: int = field(default=16, metadata={"min": 0})


@dataclass
class StorageConfig:
    """How a run stores its arrays (maps, synthesized images, inputs that are not photos):
    compressed ``.npz`` files (:func:`xai_core.io.write_array`)."""

    #: ``float16`` (the default: within float16's relative precision, 2**-11, of each map's
    #: largest magnitude, about half the bytes) or ``float32`` (the values as computed).
    dtype: str = field(default="float16", metadata={"choices": ARRAY_DTYPES})


@dataclass
class MaskConfig:
    """Ground-truth object masks, for the localisation metrics (``pointing_game``,
    ``relevance_mass``, ``relevance_rank``) in ``xai run``; see ``docs/masks.md``.
    ``masks: FOLDER`` is short for ``masks: {folder: FOLDER}``."""

    #: Folder of mask PNGs named like the inputs: ``<folder>/<stem>.png`` (a sample's stem is
    #: its name), or ``<folder>/<class>/<stem>.png`` for an ImageFolder tree. Relative to the
    #: working directory like ``inputs``; ``example:masks`` is the folder shipped with the
    #: examples.
    folder: str | None = None
    #: Input (as written in ``inputs``, or a path of the same file) -> its mask file; looked up
    #: before ``folder``.
    files: dict[str, str] = field(default_factory=dict)
    #: The object's class values in label PNGs (palette images, as Pascal VOC's: 8 is cat);
    #: VOC's void border (255) is background unless listed. Other masks are binary (nonzero is
    #: object) and ignore it. ``labels: 8`` is short for ``labels: [8]``.
    labels: list[int] = field(default_factory=list)


@dataclass
class ExperimentConfig:
    """A run: a model, inputs, a target and the methods to apply, and where outputs go."""

    #: The model to explain (the one-model shorthand of ``models``).
    model: ModelConfig = field(default_factory=ModelConfig)
    #: Several models to explain side by side: every method runs on every model (entries as
    #: ``model``, or just names). Outputs go to ``<output_dir>/<model label>/``; the report and
    #: ``figures/compare/`` put the models next to each other. Give ``model`` or ``models``.
    models: list[ModelConfig] = field(default_factory=list)
    #: Image files, folders (recursive), globs and ``sample:NAME`` photos (``xai list samples``).
    inputs: list[str] = field(default_factory=list)
    #: The class each map explains: ``predicted``, ``top-k`` (the k most probable classes), a
    #: class index, name (any ImageNet synonym) or WordNet id, or a list of these: several
    #: targets, each explained on every input.
    target: Any = "predicted"
    #: Attributors and synthesizers to apply, in order.
    methods: list[MethodConfig] = field(default_factory=list)
    #: Metrics scoring every attribution map (``xai list metrics``), same shape as ``methods``.
    metrics: list[MethodConfig] = field(default_factory=list)
    #: Trackers the finished run is sent to (``xai list sinks``; docs/sinks.md), same shape as
    #: ``methods``: ``[tensorboard, {name: mlflow, params: {experiment: demo}}]``.
    sinks: list[MethodConfig] = field(default_factory=list)
    #: Ground-truth object masks of the inputs, for metrics that need them (localisation).
    masks: MaskConfig = field(default_factory=MaskConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    #: Where every output of the run goes.
    output_dir: str = "outputs/run"
    #: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    device: str = "cpu"
    #: Seeds Python, NumPy and torch before each method.
    seed: int = field(default=0, metadata={"min": 0, "max": MAX_SEED})
    #: Images per batch for predictions and attributions.
    batch_size: int = field(default=8, metadata={"min": 1, "max": MAX_BATCH_SIZE})
    #: DataLoader worker processes that read and preprocess images (0: in the main process,
    #: between batches), or ``auto`` (:func:`auto_workers`): none for a model on a CPU of up
    #: to 4 cores, where a worker takes cores from the model's threads (on 2 cores 0 workers
    #: ran saliency 1.1-1.25x and Grad-CAM 1.15-1.25x faster than 1, in 4 runs:
    #: ``benchmarks/bench_throughput.py``), else one per 8 cores on a CPU and one per 4 beside
    #: an accelerator (at most 8), which decode while the model computes.
    workers: int | str = field(default="auto", metadata={"min": 0, "max": 1024})
    #: Keep the model's weights channels-last during the run: convolutions on CPUs (and
    #: tensor cores) run markedly faster that way; inputs and maps are unchanged.
    channels_last: bool = True
    #: PNG figures: ``true`` (a figure per image and method, and the side-by-side grid),
    #: ``false`` (none), ``auto`` (the grid, and the per-item figures only for a run of at
    #: most ``FIGURES_AUTO_IMAGES`` (64) images: a larger run says that it leaves them out;
    #: the report shows every map either way), ``grid`` (the grid and the run-wide figures
    #: only; ``xai report RUN figures=true`` draws the per-item ones later from the saved
    #: maps).
    figures: bool | str = "auto"
    #: How maps and other arrays are stored (``storage: {dtype: float32}`` keeps float32).
    storage: StorageConfig = field(default_factory=StorageConfig)
    #: How maps are drawn in figures and the report (``xai_core.report.figures.FigureOptions``):
    #: ``sign`` (``all``, ``positive``, ``negative``, ``absolute``), ``cmap``, ``overlay``
    #: (``blended_heat_map``, ``masked_image``, ``alpha_scaling``), ``overlay_alpha``,
    #: ``clip_percentile``.
    figure: dict[str, Any] = field(default_factory=dict)
    #: The input channels figures show the photo as: 1 index (grayscale) or 3 (red, green,
    #: blue), e.g. ``[3, 2, 1]`` for a multispectral model. Default: a 1- (or 2-) channel
    #: model's first channel as grayscale, an RGB model's channels as they are, the first
    #: three of more. Changing it recomputes the items (their photos are drawn as inputs are
    #: read).
    display_channels: list[int] | None = None

    @property
    def model_list(self) -> list[ModelConfig]:
        """The models of the run: ``models``, or the one ``model``."""
        return list(self.models) or [self.model]

    def item_figures(self, images: int) -> bool:
        """Whether a run of ``images`` inputs draws a figure per image and method (see
        ``figures``); the grid and comparison figures follow ``figures`` alone."""
        if self.figures == "auto":
            return images <= FIGURES_AUTO_IMAGES
        return self.figures is True

    @property
    def compares_models(self) -> bool:
        """Whether outputs are laid out per model (``models`` lists more than one)."""
        return len(self.models) > 1


def safe_label(label: str) -> str:
    """A method label as a file name: no separators, no parent references.

    The run writes each method's maps and figures under this name, and the config check refuses
    two labels that come out the same, so one home serves both.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "method"


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` as ``("a.b", [1, 2])``: the value parsed as YAML, as OmegaConf does."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. device=cpu)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    if raw == "":
        return key, ""
    # Parse the value as YAML the way OmegaConf does, but keep ${...} unresolved until the
    # whole config is assembled.
    parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={raw}"]), resolve=False)
    return key, parsed["v"]


def _apply_override(cfg: DictConfig, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = cfg
    walked: list[str] = []
    for part in parts[:-1]:
        walked.append(part)
        node = _child(node, part, walked)
    last = parts[-1]
    if isinstance(node, ListConfig):
        index = _list_index(node, last, parts)
        node[index] = value
    else:
        node[last] = value


def _list_index(node: ListConfig, part: str, walked: list[str]) -> int:
    if not part.lstrip("-").isdigit():
        raise ConfigError(f"override key {'.'.join(walked)!r}: {part!r} must be a list index")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise ConfigError(
            f"override key {'.'.join(walked)!r}: index {index} is out of range (the list has "
            f"{len(node)} items)"
        )
    return index


def _child(node: Any, part: str, walked: list[str]) -> Any:
    if isinstance(node, ListConfig):
        return node[_list_index(node, part, walked)]
    if isinstance(node, DictConfig):
        if part not in node or node[part] is None:
            node[part] = {}
        return node[part]
    raise ConfigError(f"override key {'.'.join(walked)!r}: cannot descend into a plain value")


def _normalise_shorthand(cfg: DictConfig) -> None:
    """Accept ``methods: [saliency, {name: x, params: ...}]``, ``inputs: one-string``,
    ``masks: FOLDER`` and ``masks: {labels: 8}``.

    Done before overrides so that ``methods.0.params.abs=false`` works on the shorthand too.
    """
    if isinstance(cfg.get("models"), str):
        cfg.models = [cfg.models]
    for name in ("methods", "metrics", "models", "sinks"):
        entries = cfg.get(name)
        if isinstance(entries, ListConfig) and any(isinstance(m, str) for m in entries):
            cfg[name] = [{"name": m} if isinstance(m, str) else m for m in entries]
    if isinstance(cfg.get("inputs"), str):
        cfg.inputs = [cfg.inputs]
    if isinstance(cfg.get("model"), str):
        cfg.model = {"name": cfg.model}
    _normalise_masks(cfg)


def _normalise_masks(cfg: DictConfig) -> None:
    masks = cfg.get("masks")
    if isinstance(masks, str):
        cfg.masks = {"folder": masks}
    elif masks is None and "masks" in cfg:
        cfg.masks = {}
    elif isinstance(masks, DictConfig) and isinstance(masks.get("labels"), int):
        masks.labels = [masks.labels]


class _Problems:
    """Every error a config check finds, reported together: one error is raised as it is
    (its own type), several as one :class:`ConfigError` with a line each."""

    def __init__(self) -> None:
        self.found: list[XaiError] = []

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        try:
            yield
        except XaiError as exc:
            self.found.append(exc)

    def raise_any(self) -> None:
        # Two checks may trip on one mistake (an unknown model name): say it once.
        found = list({str(exc): exc for exc in self.found}.values())
        if len(found) == 1:
            raise found[0]
        if found:
            lines = "\n".join(f"- {exc}" for exc in found)
            raise ConfigError(f"{len(found)} problems in the config:\n{lines}")


def _read(source: str | Path | Mapping[str, Any] | None) -> DictConfig:
    """The config as written: a YAML file, ``example:NAME``, a mapping, or nothing."""
    if source is None:
        return OmegaConf.create({})
    if isinstance(source, Mapping):
        return OmegaConf.create(dict(source))
    path = Path(source)
    if str(source).startswith(EXAMPLE_PREFIX):
        path = example_path(str(source))
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return cfg


def _folder(source: str | Path | Mapping[str, Any] | None) -> Path | None:
    """The folder of the config file ``source``: a factory file or labels file given relative
    is relative to it. ``None`` for a mapping (relative paths are the working directory's)."""
    if source is None or isinstance(source, Mapping):
        return None
    path = example_path(str(source)) if str(source).startswith(EXAMPLE_PREFIX) else Path(source)
    return path.resolve().parent


def _name_factory_models(raw: dict[str, Any]) -> None:
    """A model with ``factory`` is the registered model ``factory``: its ``name`` may be left
    out; another name beside a factory is refused (which one would load?)."""
    models = raw.get("models") if isinstance(raw.get("models"), list) else []
    for i, model in enumerate([raw.get("model"), *models]):
        if not isinstance(model, dict) or model.get("factory") is None:
            continue
        name = model.setdefault("name", FACTORY_MODEL)
        if name != FACTORY_MODEL:
            where = f"models[{i - 1}]" if i else "model"
            raise ConfigError(
                f"{where} gives both `name` ({name!r}) and `factory`; a factory model needs no "
                "name: remove `name` (give `label` to name it in outputs)"
            )


def _with_overrides(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    _normalise_shorthand(cfg)
    try:
        for text in overrides:
            key, value = parse_override(text)
            _apply_override(cfg, key, value)
            _normalise_shorthand(cfg)  # `methods=[saliency]` on the command line too
        raw = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(omegaconf_message(exc, "")) from None
    assert isinstance(raw, dict)
    return raw


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    check_names: bool = True,
) -> ExperimentConfig:
    """Read a YAML file (or a mapping), apply ``key=value`` overrides, validate, resolve.

    With ``check_names`` (the default), model and method names and every method's params are
    checked against the plugin registries too. Nothing is loaded. Every error is reported at
    once (one line each, with its key path) once the config's shape fits the schema.
    """
    raw = _with_overrides(_read(source), overrides)
    check_keys(ExperimentConfig, raw, "")
    _name_factory_models(raw)
    if raw.get("model") is not None and raw.get("models"):
        raise ConfigError(
            "the config gives both `model` and `models`; use `model` for one model or list "
            "every model under `models`"
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), raw)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(omegaconf_message(exc, "")) from None
    assert isinstance(config, ExperimentConfig)
    folder = _folder(source)
    if folder is not None:
        for model in config.model_list:
            model.name, model.factory, model.labels = anchored(
                model.name, model.factory, model.labels, model.options, folder
            )
    problems = _Problems()
    _check_values(config, problems)
    if check_names:
        check_registered_names(config, problems)
    # Only when all else is right: a misspelt name or a bad value is the error to fix first.
    if not config.methods and not problems.found:
        problems.found.append(ConfigError(
            "the config lists no methods, so a run would produce nothing; set `methods` to the "
            "techniques to apply (`xai list attributors`, `xai list synthesizers`), "
            "e.g. methods=[saliency]"
        ))
    problems.raise_any()
    return config


def _check_values(config: ExperimentConfig, problems: _Problems) -> None:
    device = config.device
    if device not in DEVICES and not device.startswith("cuda:"):
        problems.found.append(ConfigError(
            f"bad config value at 'device': {device!r}; use one of {', '.join(DEVICES)} or cuda:N"
        ))
    with problems.collect():
        check_field_values(config)
    for key in ("methods", "metrics", "sinks"):
        labels = [m.label or m.name for m in getattr(config, key)]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            problems.found.append(ConfigError(
                f"{key} {', '.join(duplicates)} appear more than once; give each a distinct `label`"
            ))
    for check, value in ((_check_file_names, config.methods), (_check_models, config),
                         (_check_figures, config.figures),
                         (_check_workers, config.workers),
                         (_check_display_channels, config),
                         (check_mask_config, config.masks),
                         (FigureOptions.from_config, config.figure),
                         (_check_controls, config.benchmark)):
        with problems.collect():
            check(value)


def auto_workers(workers: int | str, device: Any, cores: int | None = None) -> int:
    """The DataLoader workers of a run: ``workers``, or for ``auto`` (see
    :attr:`ExperimentConfig.workers`) the number for a model on ``device`` with ``cores`` (the
    cores this process may use)."""
    if workers != "auto":
        return max(0, int(workers))
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    if getattr(device, "type", str(device).split(":")[0]) == "cpu":
        return 0 if cores <= 4 else min(8, cores // 8 or 1)
    return min(8, max(1, cores // 4))


def _check_workers(value: Any) -> None:
    if isinstance(value, str) and value != "auto":
        hint = did_you_mean(value, ["auto"], n=1)
        raise ConfigError(
            f"bad config value at 'workers': {value!r}; use a number of DataLoader worker "
            f"processes (0: read images in the main process) or auto{hint}"
        )


def _check_figures(value: Any) -> None:
    # ``1 == True`` in a tuple: compare types too, so ``figures: 1`` is refused.
    if not any(value == allowed and type(value) is type(allowed) for allowed in FIGURES):
        hint = did_you_mean(str(value), ["auto", "grid"], n=1) if isinstance(value, str) else ""
        raise ConfigError(
            f"bad config value at 'figures': {value!r}; use true (every figure), false (none), "
            f"auto (the grid, and per-item figures for runs of at most "
            f"{FIGURES_AUTO_IMAGES} images) or grid (the grid alone){hint}"
        )


def known_channels(model: ModelConfig) -> int | None:
    """The input channels of ``model`` known before it loads: its ``options.in_chans``, else 3
    for a model of ImageNet's classes (an RGB model); ``None`` when only the loaded model can
    tell (:attr:`~xai_core.ModelHandle.in_chans`)."""
    value = model.options.get("in_chans")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        entry = model_entry(model.name)
    except XaiError:
        return None  # an unknown name: check_registered_names reports it
    return 3 if entry.classes == "imagenet" else None


def _check_display_channels(config: ExperimentConfig) -> None:
    """``display_channels`` is 1 or 3 indices below each model's channel count (where known
    before loading; the runner checks the loaded model again)."""
    from xai_core.report.figures import display_channels

    if config.display_channels is None:
        return
    display_channels(max(config.display_channels, default=0) + 1, config.display_channels)
    for model in config.model_list:
        channels = known_channels(model)
        if channels is not None:
            display_channels(channels, config.display_channels)


def check_channels(model: ModelConfig, cls: type, where: str) -> None:
    """Refuse a technique that needs RGB (``requires_rgb``) for a model of other channels,
    naming both (before the model loads where its channels are known)."""
    channels = known_channels(model)
    if channels is None or not getattr(cls, "requires_rgb", ""):
        return
    try:
        cls.check_channels(channels, f"model {model.name!r}")
    except XaiError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_controls(bench: BenchmarkConfig) -> None:
    for i, control in enumerate(bench.controls):
        if control not in BENCHMARK_CONTROLS:
            hint = did_you_mean(control, BENCHMARK_CONTROLS, 1, otherwise=".")
            raise ConfigError(
                f"bad config value at 'benchmark.controls[{i}]': {control!r} is not a control"
                f"{hint} Controls: {', '.join(BENCHMARK_CONTROLS)}"
            )


def _check_file_names(methods: Sequence[MethodConfig]) -> None:
    """Refuse labels that differ but name the same files: their outputs would overwrite each
    other (``a/b`` and ``a_b`` both write ``maps/<image>/a_b.npz``)."""
    seen: dict[str, str] = {}
    for method in methods:
        label = method.label or method.name
        name = safe_label(label)
        other = seen.setdefault(name, label)
        if other != label:
            raise ConfigError(
                f"methods {other!r} and {label!r} both write their outputs as {name!r} (a label "
                "becomes a file name: characters other than letters, digits, '.', '_' and '-' "
                "turn into '_'); set distinct `label`s that differ in those characters"
            )


def _check_models(config: ExperimentConfig) -> None:
    """Distinct model labels, and per-model method params that name a method of the run."""
    labels = [m.run_label for m in config.model_list]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigError(
            f"models {', '.join(twice)} appear more than once (outputs go to a folder per model "
            "label); give each a distinct `label`, e.g. the checkpoint's name"
        )
    methods = [m.label or m.name for m in config.methods]
    for i, model in enumerate(config.model_list):
        where = f"models[{i}]" if config.models else "model"
        for label in model.method_params:
            if label not in methods:
                hint = did_you_mean(label, methods, 1, otherwise=".")
                raise ConfigError(
                    f"bad config key '{where}.method_params.{label}': the run has no method "
                    f"labelled {label!r}{hint} Methods: {', '.join(methods) or '(none)'}"
                )


#: The prefix of the model name that a run's config records for a model passed from Python
#: (:func:`xai_core.explain`, ``run_experiment(handle=...)``): no config file can load it.
GIVEN_PREFIX = "python/"


def check_given_name(name: str) -> None:
    """Refuse a config file's model that was passed from Python to the run it was saved by."""
    if name.startswith(GIVEN_PREFIX):
        raise ConfigError(
            f"model {name!r} was passed from Python (xai_core.explain with a module or handle); "
            "a config file cannot load it: name a registered model (`xai list models`) or your "
            "own code (`factory: FILE.py:CALLABLE`, docs/own-models.md)"
        )


def model_run_config(config: ExperimentConfig, model: ModelConfig) -> ExperimentConfig:
    """The single-model config of one of ``config``'s models: its own output folder (when the
    run compares models) and its ``method_params`` over each method's ``params``."""
    methods = [
        dataclasses.replace(
            m, params={**m.params, **model.method_params.get(m.label or m.name, {})}
        )
        for m in config.methods
    ]
    output_dir = config.output_dir
    if config.compares_models:
        output_dir = str(Path(config.output_dir) / model.run_label)
    return dataclasses.replace(
        config, model=model, models=[], methods=methods, output_dir=output_dir
    )


def _check_target(config: ExperimentConfig, model_given: bool = False) -> None:
    """The target against the classes of each model whose classes are known before it loads
    (ImageNet models): a misspelt class name fails here, not after a model load. A target kind
    (``{kind: ...}``) has its keys checked, its task against each model's, and is refused
    beside a synthesizer (they explain classes)."""
    from xai_core.contracts.model import imagenet_class_names
    from xai_core.contracts.target_kinds import TargetKind
    from xai_core.contracts.targets import check_target
    from xai_core.plugins.factory import build_target

    kind = build_target(config.target, "target")
    if isinstance(kind, TargetKind):
        _check_kind_methods(config, kind)
    for i, model in enumerate([] if model_given else config.model_list):
        entry = model_entry(model.name)
        imagenet = entry.classes == "imagenet" and model.options.get("num_classes", 1000) == 1000
        names = imagenet_class_names() if imagenet else _labels(
            model, entry.from_code or model.name.startswith(HF_PREFIX)
        )
        num_classes = len(names) if names is not None else model.options.get("num_classes")
        try:
            if isinstance(kind, TargetKind):
                kind.check_task(entry.task, model.name)
                kind.check_against(names, num_classes)
            else:
                check_target(config.target, names, num_classes)
        except XaiError as exc:
            where = f"models[{i}]" if config.models else "model"
            raise ConfigError(
                f"bad config value at 'target' (for {where} {model.name}): {exc}"
            ) from None


#: The parameters through which a method (``score``) or metric (``output``) reads the
#: target's probability instead of its score.
_READS_PROBABILITY = ("score", "output")


def _check_kind_methods(config: ExperimentConfig, kind: Any) -> None:
    """Methods and metrics that cannot explain ``kind``: synthesizers (they make images of a
    class), and those set to read a probability the kind does not have."""
    from xai_core.contracts.synthesizer import Synthesizer

    entries = [(f"methods[{i}]", m, Technique) for i, m in enumerate(config.methods)]
    entries += [(f"metrics[{i}]", m, Metric) for i, m in enumerate(config.metrics)]
    for where, entry, base in entries:
        cls, params = resolve_entry(entry, where, base)
        if issubclass(cls, Synthesizer):
            raise ConfigError(
                f"bad config value at 'target': target kind {kind.name!r} is for attributors; "
                f"{where} ({entry.name}) is a synthesizer, which makes images of a class: run "
                "it in a config whose target is a class"
            )
        for key in _READS_PROBABILITY:
            if getattr(params, key, None) == "probability" and not kind.has_probability:
                raise ConfigError(
                    f"bad config value at '{where}.params.{key}': {entry.name} reads the "
                    f"target's probability ({key}: probability"
                    f"{', its default' if key not in entry.params else ''}), but target kind "
                    f"{kind.name!r} has none; set {where}.params.{key}: logit to read its score"
                )


def _labels(model: ModelConfig, described: bool) -> list[str] | None:
    """The class names a model from code (or a CLIP model) has from its ``labels`` (``None``:
    none, or unreadable, which its own check reports)."""
    if not described:
        return None
    try:
        return read_labels(model.labels)
    except XaiError:
        return None


def _check_model_source(model: ModelConfig) -> None:
    """A model from code gets its own check (files, names, ``input_size``) without building it;
    any other model refuses the keys that only such a model takes (but ``hf/*`` takes
    ``labels``, which its check allows for CLIP models only), then runs its entry's own check
    when it has one (``hf/*``: the directory or model id)."""
    entry = model_entry(model.name)
    if entry.from_code:
        check_model_options(model.name, **model.loader_options())
        return
    given = [key for key in CODE_KEYS if getattr(model, key) not in (None, {})
             and not (key == "labels" and model.name.startswith(HF_PREFIX))]
    if given:
        raise ConfigError(
            f"model {model.name!r} is a registered model: {', '.join(given)} apply only to a "
            "model built from code (`factory`, `hub/...`), which cannot describe itself; "
            f"{model.name} brings its own preprocessing and classes, so remove them"
        )
    if entry.check is not None:
        check_model_options(model.name, **model.loader_options())


def check_registered_names(
    config: ExperimentConfig, problems: _Problems | None = None, *, model_given: bool = False
) -> None:
    """Check model and method names and method params against the plugin registries, and the
    target against the models' classes where they are known before loading; every error at
    once (into ``problems`` when given, else raised).

    :param model_given: the run gets its model from Python (``run_experiment(handle=...)``,
        :func:`xai_core.explain`): its name is no registered model's, and the target is checked
        against the model's classes when the run starts, before anything is computed.
    """
    found = problems if problems is not None else _Problems()
    for model in [] if model_given else config.model_list:
        with found.collect():
            check_given_name(model.name)
            check_model_name(model.name)
            _check_model_source(model)
    with found.collect():
        _check_target(config, model_given)
    for model in config.model_list:
        for i, method in enumerate(model_run_config(config, model).methods):
            where = f"methods[{i}]"
            if model.method_params.get(method.label or method.name):
                where += f" (with method_params of model {model.run_label!r})"
            with found.collect():
                cls, _ = resolve_entry(method, where)
                check_channels(model, cls, where)
    for i, metric in enumerate(config.metrics):
        with found.collect():
            resolve_entry(metric, f"metrics[{i}]", Metric)
    for i, sink in enumerate(config.sinks):
        with found.collect():
            build_sink(sink, f"sinks[{i}]")
    if problems is None:
        found.raise_any()


def to_yaml(config: ExperimentConfig) -> str:
    """``config`` as YAML, with only the model block that applies: ``models`` when the config
    lists models (``model`` is then an unused default), else ``model``."""
    data = OmegaConf.to_container(OmegaConf.structured(config))
    assert isinstance(data, dict)
    del data["model" if config.models else "models"]
    return OmegaConf.to_yaml(data)
