"""Contract tests any plugin author can run on their own techniques, metrics and models.

    from xai_core.testing import check_attributor, check_metric, check_model, check_synthesizer

    def test_my_plugin_keeps_the_contract():
        check_attributor("my_technique")
        check_synthesizer("my_synthesizer")
        check_metric("my_metric")
        check_model("my_model")

Each check builds a small model (or takes yours), calls the plugin's class the way xai-core will,
and raises :class:`ContractError` listing every broken rule, so one failing test shows all of
them at once. Techniques (:func:`check_attributor`, :func:`check_synthesizer`):

``shapes``       maps ``[N, H, W]`` at input resolution, targets ``[N]`` (images ``[N,3,H,W]``
                 in ``[0, 1]`` for synthesizers)
``finite``       no NaN or infinity
``hooks``        no torch hook left on any module afterwards
``state``        model mode, ``requires_grad`` flags and weights exactly as before, and the
                 model's logits bit-identical after the call
``batch``        a batch gives the same maps as the items one by one (within tolerance)
``determinism``  two calls with the same seed give identical results
``targets``      several targets per input give the same maps as one call per target

Metrics (:func:`check_metric`, :data:`METRIC_CHECKS`): scores ``[N]``, floating point, no
infinity (``nan`` only where a score is undefined), identical for the same seed, what ``requires``
declares refused when missing and nothing undeclared needed, hooks and model state as above.

Models (:func:`check_model`, :data:`MODEL_CHECKS`): a :class:`ModelHandle` whose module is in
eval mode, logits ``[N, num_classes]`` for a batch at ``preprocessing.input_size``, as many class
names as classes, preprocessing that round-trips (``denormalize(normalize(x)) == x``), and a
loader that takes ``pretrained=False`` and ``checkpoint=PATH`` (and loads that file).

xai-core runs the same checks over every built-in plugin (``tests/test_contract.py`` and
``tests/test_testing.py``), so a third-party plugin is held to exactly the rules the built-ins
keep.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import REQUIREMENTS, Metric, MetricResult
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.contracts.technique import AttributionContext
from xai_core.errors import XaiError
from xai_core.models.loading import load_model
from xai_core.nn.gradients import input_gradients
from xai_core.plugins.factory import get_attributor, get_metric, get_synthesizer

__all__ = [
    "ContractError",
    "ATTRIBUTOR_CHECKS",
    "SYNTHESIZER_CHECKS",
    "METRIC_CHECKS",
    "MODEL_CHECKS",
    "TinyNet",
    "hook_count",
    "check_attributor",
    "check_synthesizer",
    "check_metric",
    "check_model",
]

ATTRIBUTOR_CHECKS = ("shapes", "finite", "hooks", "state", "batch", "determinism", "targets")
SYNTHESIZER_CHECKS = ("shapes", "finite", "hooks", "state", "determinism")
METRIC_CHECKS = ("shapes", "finite", "determinism", "requires", "hooks", "state")
MODEL_CHECKS = ("handle", "logits", "class_names", "preprocessing", "options")


class ContractError(AssertionError):
    """A technique broke one or more rules of the contract; the message lists them."""


class TinyNet(nn.Module):
    """A small CNN with in-place ReLUs, batch norm and a linear head: fast, and it exercises the
    things techniques most often get wrong (in-place ops, eval-mode layers, module reuse)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def _default_model() -> ModelHandle:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    module = TinyNet().eval()
    with torch.no_grad():
        # Non-trivial batch-norm statistics, so eval mode matters.
        module.features[1].running_mean.uniform_(-0.2, 0.2)
        module.features[1].running_var.uniform_(0.5, 1.5)
    torch.random.set_rng_state(generator_state)
    return as_model_handle(module)


def hook_count(module: nn.Module) -> int:
    """Torch hooks of every kind registered on ``module`` and its submodules."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in module.modules()
    )


def _snapshot(module: nn.Module) -> dict[str, Any]:
    return {
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
    }


def _compare_state(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = []
    if before["training"] != after["training"]:
        problems.append("state: the model's train/eval modes changed")
    if before["requires_grad"] != after["requires_grad"]:
        problems.append("state: parameters' requires_grad flags changed")
    for key, value in before["state"].items():
        if not torch.equal(value, after["state"][key]):
            problems.append(f"state: weight or buffer {key!r} changed")
            break
    return problems


def _resolve(kind: type, technique: str | type | Any, params: Mapping[str, Any] | None) -> Any:
    if isinstance(technique, str):
        factories = {Attributor: get_attributor, Synthesizer: get_synthesizer, Metric: get_metric}
        return factories[kind](technique, **dict(params or {}))
    if isinstance(technique, type):
        return technique(**dict(params or {}))
    return technique


def _run_checks(checks: Iterable[str], valid: tuple[str, ...], body: Callable[[str], list[str]]):
    problems: list[str] = []
    for check in checks:
        if check not in valid:
            raise ValueError(f"unknown check {check!r}; valid checks: {', '.join(valid)}")
        try:
            problems.extend(body(check))
        except Exception as exc:  # a crash is a broken contract too; report it with the rest
            problems.append(f"{check}: raised {type(exc).__name__}: {exc}")
    return problems


def check_attributor(
    technique: str | type | Attributor,
    *,
    params: Mapping[str, Any] | None = None,
    model: ModelHandle | nn.Module | None = None,
    inputs: Tensor | None = None,
    targets: list[int] | None = None,
    checks: Iterable[str] = ATTRIBUTOR_CHECKS,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``technique`` keeps the attributor contract.

    :param technique: a registered name, an :class:`Attributor` subclass, or an instance.
    :param params: parameters when ``technique`` is a name or class.
    :param model: defaults to :class:`TinyNet` (10 classes).
    :param inputs: defaults to 3 random images ``[3, 3, 48, 48]``.
    :param targets: one class per input (defaults to ``0, 1, 2, ...``).
    :param checks: a subset of :data:`ATTRIBUTOR_CHECKS`.
    """
    method = _resolve(Attributor, technique, params)
    handle = as_model_handle(model) if model is not None else _default_model()
    if inputs is None:
        inputs = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(seed))
    n = inputs.shape[0]
    targets = (
        list(targets) if targets is not None else [i % (handle.num_classes or 2) for i in range(n)]
    )
    module = handle.module

    def call(x: Tensor, target: Any) -> Any:
        torch.manual_seed(seed)
        return method.attribute(handle, x, target)

    with torch.no_grad():
        logits_before = module(inputs)
    before = _snapshot(module)
    hooks_before = hook_count(module)
    first = call(inputs, targets)

    def check(name: str) -> list[str]:
        maps = first.maps
        if name == "shapes":
            expected = (n, inputs.shape[2], inputs.shape[3])
            out = []
            if tuple(maps.shape) != expected:
                out.append(f"shapes: maps are {tuple(maps.shape)}, expected {expected}")
            if first.targets.tolist() != targets:
                out.append(f"shapes: targets are {first.targets.tolist()}, expected {targets}")
            return out
        if name == "finite":
            return [] if torch.isfinite(maps).all() else ["finite: maps contain NaN or infinity"]
        if name == "hooks":
            left = hook_count(module) - hooks_before
            return [f"hooks: {left} torch hook(s) left on the model"] if left else []
        if name == "state":
            out = _compare_state(before, _snapshot(module))
            with torch.no_grad():
                if not torch.equal(module(inputs), logits_before):
                    out.append("state: the model's logits changed after the call")
            return out
        if name == "batch":
            singles = torch.cat([call(inputs[i : i + 1], [targets[i]]).maps for i in range(n)])
            if not torch.allclose(singles, maps, atol=atol, rtol=rtol):
                gap = (singles - maps).abs().max().item()
                return [f"batch: batched maps differ from per-item maps (max gap {gap:.3g})"]
            return []
        if name == "determinism":
            again = call(inputs, targets).maps
            return [] if torch.equal(again, maps) else ["determinism: same seed, different maps"]
        if name == "targets":
            k = min(2, handle.num_classes or 2)
            several = [[(t + j) % (handle.num_classes or 2) for j in range(k)] for t in targets]
            result = call(inputs, several)
            out = []
            if result.maps.shape[0] != n * k:
                return [f"targets: {n} inputs x {k} targets gave {result.maps.shape[0]} maps"]
            for j in range(k):
                single = call(inputs, [row[j] for row in several]).maps
                if not torch.allclose(result.maps[j::k], single, atol=atol, rtol=rtol):
                    out.append("targets: several targets per input differ from one call each")
                    break
            return out
        raise AssertionError(name)

    problems = _run_checks(checks, ATTRIBUTOR_CHECKS, check)
    if problems:
        raise ContractError(f"{method.name or type(method).__name__}: " + "; ".join(problems))


def check_synthesizer(
    technique: str | type | Synthesizer,
    *,
    params: Mapping[str, Any] | None = None,
    model: ModelHandle | nn.Module | None = None,
    images: Tensor | None = None,
    targets: list[int] | None = None,
    checks: Iterable[str] = SYNTHESIZER_CHECKS,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``technique`` keeps the synthesizer contract.

    :param images: starting images in ``[0, 1]`` (defaults to 2 random ``48x48`` images).
    """
    method = _resolve(Synthesizer, technique, params)
    handle = as_model_handle(model) if model is not None else _default_model()
    if images is None:
        images = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(seed))
    n = images.shape[0]
    targets = (
        list(targets)
        if targets is not None
        else [(i + 1) % (handle.num_classes or 2) for i in range(n)]
    )
    module = handle.module

    def call() -> Any:
        torch.manual_seed(seed)
        return method.synthesize(handle, targets, images=images)

    with torch.no_grad():
        logits_before = module(handle.normalize(images))
    before = _snapshot(module)
    hooks_before = hook_count(module)
    first = call()

    def check(name: str) -> list[str]:
        out: list[str] = []
        if name == "shapes":
            if first.images.shape[0] != n or first.images.shape[1] != 3 or first.images.ndim != 4:
                out.append(f"shapes: images are {tuple(first.images.shape)}, expected [{n},3,H,W]")
            if first.images.min() < 0 or first.images.max() > 1:
                out.append("shapes: images leave pixel space [0, 1]")
            if len(first.records) != n:
                out.append(f"shapes: {len(first.records)} records for {n} images")
        elif name == "finite":
            if not torch.isfinite(first.images).all():
                out.append("finite: images contain NaN or infinity")
        elif name == "hooks":
            left = hook_count(module) - hooks_before
            if left:
                out.append(f"hooks: {left} torch hook(s) left on the model")
        elif name == "state":
            out.extend(_compare_state(before, _snapshot(module)))
            with torch.no_grad():
                if not torch.equal(module(handle.normalize(images)), logits_before):
                    out.append("state: the model's logits changed after the call")
        elif name == "determinism":
            if not torch.equal(call().images, first.images):
                out.append("determinism: same seed, different images")
        return out

    problems = _run_checks(checks, SYNTHESIZER_CHECKS, check)
    if problems:
        raise ContractError(f"{method.name or type(method).__name__}: " + "; ".join(problems))


class _ReferenceSaliency(Attributor):
    """The attributor :func:`check_metric` gives a metric that requires one: absolute input
    gradients summed over channels, defined here so the check needs no plugin installed."""

    name = "testing_saliency"

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return input_gradients(model, inputs, targets).abs().sum(dim=1)


def _default_masks(n: int, height: int, width: int) -> Tensor:
    """A centred box covering a quarter of each image: a plausible object mask."""
    masks = torch.zeros(n, height, width, dtype=torch.bool)
    masks[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return masks


def _same_scores(a: Tensor, b: Tensor) -> bool:
    """Equal, with ``nan`` (an undefined score) equal to ``nan``."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def check_metric(
    metric: str | type | Metric,
    *,
    params: Mapping[str, Any] | None = None,
    model: ModelHandle | nn.Module | None = None,
    inputs: Tensor | None = None,
    maps: Tensor | None = None,
    targets: list[int] | None = None,
    masks: Tensor | None = None,
    attributor: Attributor | None = None,
    checks: Iterable[str] = METRIC_CHECKS,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``metric`` keeps the metric contract.

    :param metric: a registered name, a :class:`Metric` subclass, or an instance.
    :param params: parameters when ``metric`` is a name or class.
    :param model: defaults to :class:`TinyNet` (10 classes), so a metric that makes many
        forward passes is still checked in well under a second.
    :param inputs: defaults to 3 random normalized images ``[3, 3, 48, 48]``.
    :param maps: defaults to random maps ``[N, H, W]`` in ``[0, 1]``.
    :param targets: one class per input (defaults to ``0, 1, 2, ...``).
    :param masks: ground-truth masks; default: a centred box, given only if ``requires`` has
        ``"mask"``.
    :param attributor: default: input-gradient saliency, given only if ``requires`` has
        ``"attributor"``.
    :param checks: a subset of :data:`METRIC_CHECKS`.
    """

    method = _resolve(Metric, metric, params)
    label = method.name or type(method).__name__
    handle = as_model_handle(model) if model is not None else _default_model()
    generator = torch.Generator().manual_seed(seed)
    if inputs is None:
        inputs = torch.randn(3, 3, 48, 48, generator=generator)
    n, height, width = inputs.shape[0], inputs.shape[2], inputs.shape[3]
    if maps is None:
        maps = torch.rand(n, height, width, generator=generator)
    targets = (
        list(targets) if targets is not None else [i % (handle.num_classes or 2) for i in range(n)]
    )
    requires = tuple(getattr(method, "requires", ()))
    if masks is None and "mask" in requires:
        masks = _default_masks(n, height, width)
    if attributor is None and "attributor" in requires:
        attributor = _ReferenceSaliency()
    given = {"masks": masks, "attributor": attributor}
    module = handle.module

    def call(**overrides: Any) -> MetricResult:
        kwargs = {**given, **overrides}
        return method.evaluate(handle, inputs, maps, targets, seed=seed, **kwargs)

    with torch.no_grad():
        logits_before = module(inputs)
    before = _snapshot(module)
    hooks_before = hook_count(module)
    try:
        first = call()
    except Exception as exc:
        raise ContractError(f"{label}: evaluate raised {type(exc).__name__}: {exc}") from exc

    def check(name: str) -> list[str]:
        scores = first.scores
        out: list[str] = []
        if name == "shapes":
            if not isinstance(first, MetricResult):
                return [f"shapes: evaluate returned {type(first).__name__}, not a MetricResult"]
            if tuple(scores.shape) != (n,):
                out.append(f"shapes: scores are {tuple(scores.shape)}, expected ({n},)")
            if not scores.is_floating_point():
                out.append(f"shapes: scores are {scores.dtype}, expected a floating-point type")
            if len(first.details) != n:
                out.append(f"shapes: {len(first.details)} details for {n} maps")
        elif name == "finite":
            if torch.isinf(scores).any():
                out.append("finite: scores contain infinity (use nan for an undefined score)")
            if scores.isnan().all():
                out.append("finite: every score is nan (undefined) on the check's inputs")
        elif name == "determinism":
            if not _same_scores(call().scores, scores):
                out.append("determinism: same seed, different scores")
        elif name == "requires":
            unknown = sorted(set(requires) - set(REQUIREMENTS))
            if unknown:
                out.append(f"requires: {unknown} are not among {', '.join(REQUIREMENTS)}")
            for need, keyword in (("mask", "masks"), ("attributor", "attributor")):
                if need in requires:
                    try:
                        call(**{keyword: None})
                    except XaiError:
                        continue
                    out.append(f"requires: declares {need!r} but evaluate ran without it")
                elif given[keyword] is not None:
                    # Undeclared needs must not be needed: the run gives only what is declared.
                    call(**{keyword: None})
        elif name == "hooks":
            left = hook_count(module) - hooks_before
            if left:
                out.append(f"hooks: {left} torch hook(s) left on the model")
        elif name == "state":
            out.extend(_compare_state(before, _snapshot(module)))
            with torch.no_grad():
                if not torch.equal(module(inputs), logits_before):
                    out.append("state: the model's logits changed after the call")
        return out

    problems = _run_checks(checks, METRIC_CHECKS, check)
    if problems:
        raise ContractError(f"{label}: " + "; ".join(problems))


def _shifted_state(module: nn.Module) -> dict[str, Tensor]:
    """The module's state with every floating-point tensor moved by 0.25: weights no loader can
    produce by accident, so loading them proves the checkpoint was read."""
    return {
        key: (value.detach().cpu() + 0.25 if value.is_floating_point() else value.detach().cpu())
        for key, value in module.state_dict().items()
    }


def check_model(
    model: str | ModelHandle,
    *,
    options: Mapping[str, Any] | None = None,
    batch_size: int = 2,
    checks: Iterable[str] | None = None,
    atol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Raise :class:`ContractError` unless ``model`` keeps the model contract.

    :param model: a registered model name, loaded with ``pretrained=False`` (nothing downloads)
        updated with ``options``; or a :class:`ModelHandle` you built.
    :param options: loader options, e.g. ``{"pretrained": True}`` to check shipped weights.
    :param batch_size: images in the batch the logits check runs.
    :param checks: a subset of :data:`MODEL_CHECKS`; by default all of them for a name, all
        but ``options`` (which calls the loader again) for a handle.
    """

    name = model if isinstance(model, str) else None
    load_options = {"pretrained": False, **dict(options or {})}
    if checks is None:
        checks = MODEL_CHECKS if name is not None else MODEL_CHECKS[:-1]
    checks = tuple(checks)
    if name is None and "options" in checks:
        raise ValueError("the 'options' check loads the model again: give a registered name")
    label = name or getattr(model, "name", type(model).__name__)
    if name is not None:
        try:
            model = load_model(name, **load_options)
        except Exception as exc:
            raise ContractError(
                f"{label}: load_model({name!r}, **{load_options!r}) raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(model, ModelHandle):
        raise ContractError(f"{label}: handle: got {type(model).__name__}, not a ModelHandle")
    handle = model
    module = handle.module
    generator = torch.Generator().manual_seed(seed)
    size = tuple(handle.preprocessing.input_size)
    pixels = torch.rand(batch_size, 3, *size, generator=generator)
    logits: list[Tensor] = []

    def run_logits() -> Tensor:
        if not logits:
            with torch.no_grad():
                logits.append(handle(handle.normalize(pixels).to(handle.device)))
        return logits[0]

    def check(check_name: str) -> list[str]:
        out: list[str] = []
        if check_name == "handle":
            if not isinstance(module, nn.Module):
                return [f"handle: module is {type(module).__name__}, not a torch.nn.Module"]
            training = [path or "(root)" for path, m in module.named_modules() if m.training]
            if training:
                out.append(f"handle: modules in training mode: {', '.join(training[:5])}")
        elif check_name == "logits":
            out_logits = run_logits()
            classes = handle.num_classes
            expected = (batch_size, classes if classes is not None else -1)
            if not isinstance(out_logits, Tensor) or out_logits.ndim != 2:
                got = getattr(out_logits, "shape", type(out_logits).__name__)
                return [f"logits: the module returned {got}, expected [N, num_classes]"]
            if out_logits.shape[0] != batch_size or (
                classes is not None and out_logits.shape[1] != classes
            ):
                out.append(
                    f"logits: {tuple(out_logits.shape)} for a batch at {size}, expected "
                    f"{expected} (num_classes -1: unknown)"
                )
            if not torch.isfinite(out_logits).all():
                out.append("logits: NaN or infinity")
        elif check_name == "class_names":
            names = handle.class_names
            if names is not None:
                if not all(isinstance(c, str) for c in names):
                    out.append("class_names: not all strings")
                classes = run_logits().shape[1]
                if len(names) != classes:
                    out.append(f"class_names: {len(names)} names for {classes} logits")
        elif check_name == "preprocessing":
            prep = handle.preprocessing
            if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
                return [f"preprocessing: input_size {size} is not (height, width)"]
            back = handle.denormalize(handle.normalize(pixels))
            if not torch.allclose(back, pixels, atol=atol):
                out.append("preprocessing: denormalize(normalize(x)) differs from x")
            photo = Image.new("RGB", (size[1] + 13, size[0] + 7), (200, 120, 40))
            converted = prep.to_pixels(photo)
            if tuple(converted.shape) != (3, *size):
                out.append(
                    f"preprocessing: to_pixels gave {tuple(converted.shape)}, expected (3, *{size})"
                )
            elif converted.min() < 0 or converted.max() > 1:
                out.append("preprocessing: to_pixels leaves [0, 1]")
        elif check_name == "options":
            state = _shifted_state(module)
            with tempfile.TemporaryDirectory() as folder:
                path = f"{folder}/checkpoint.pt"
                torch.save(state, path)
                loaded = load_model(
                    label, **{**load_options, "pretrained": False, "checkpoint": path}
                )
            for key, value in loaded.module.state_dict().items():
                if key in state and not torch.equal(value.detach().cpu(), state[key]):
                    out.append(f"options: checkpoint=PATH was not loaded ({key!r} differs)")
                    break
        return out

    problems = _run_checks(checks, MODEL_CHECKS, check)
    if problems:
        raise ContractError(f"{label}: " + "; ".join(problems))


def default_params(technique_cls: type) -> dict[str, Any]:
    """The defaults of a technique's ``Params`` as a dict (handy for parametrized tests)."""
    return dataclasses.asdict(technique_cls.Params())
