"""The technique contract: :class:`Attributor`, :class:`Synthesizer` and their result types.

A technique is a class with a public ``name``, a ``Params`` dataclass (its config schema) and one
method to implement. The base classes do the bookkeeping every technique needs and none should
repeat: parameter validation, model/device/mode handling, target resolution, and the removal of
every torch hook a technique registers, also when it raises.

What does *not* live here: loading models (:mod:`xai_core.models`), reading images
(:mod:`xai_core.runner.inputs`) and running experiments (:mod:`xai_core.runner.run`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.params import build_params
from xai_core.contracts.targets import TargetSpec, resolve_targets
from xai_core.errors import InputError, PluginError
from xai_core.nn.hooks import HookRecorder, model_state

__all__ = [
    "Attribution",
    "Synthesis",
    "Technique",
    "Attributor",
    "Synthesizer",
    "AttributionContext",
]


@dataclass
class Attribution:
    """Maps that explain predictions, one per input item.

    :ivar maps: float tensor ``[N, H, W]`` at input resolution, on the CPU.
    :ivar targets: long tensor ``[N]``: the class each map explains.
    :ivar method: the technique's registered name.
    :ivar metadata: what the technique reports about the run (parameters, layer used, ...).
    :ivar input_index: long tensor ``[N]``: which input each map belongs to. With one target per
        input it is ``0..N-1``; with ``k`` targets per input, maps are input-major
        (input 0's ``k`` maps first) and ``N`` is ``inputs * k``.
    """

    maps: Tensor
    targets: Tensor
    method: str
    metadata: dict[str, Any] = field(default_factory=dict)
    input_index: Tensor | None = None

    def __post_init__(self) -> None:
        if self.input_index is None:
            self.input_index = torch.arange(self.maps.shape[0])

    def __len__(self) -> int:
        return self.maps.shape[0]


@dataclass
class Synthesis:
    """Images created by a technique, one per target.

    :ivar images: float tensor ``[N, 3, H, W]`` in pixel space ``[0, 1]``, on the CPU.
    :ivar targets: long tensor ``[N]``: the class each image was made for.
    :ivar method: the technique's registered name.
    :ivar metadata: run-level information (parameters, seconds).
    :ivar records: one dict per image (success, iterations, final probability, ...).
    """

    images: Tensor
    targets: Tensor
    method: str
    metadata: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]


class Technique(abc.ABC):
    """Common base of attributors and synthesizers: a name and validated parameters.

    Subclasses set ``name`` (the public name), ``Params`` (a dataclass whose fields, types and
    defaults are the technique's parameters), and optionally ``summary`` and ``paper`` for
    listings and docs.
    """

    kind: ClassVar[str] = "technique"
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    @dataclass
    class Params:
        """No parameters."""

    def __init__(self, params: Any = None, **overrides: Any):
        if isinstance(params, self.Params) and not overrides:
            self.params = params
        else:
            values: dict[str, Any] = {}
            if isinstance(params, self.Params):
                values.update(dataclasses.asdict(params))
            elif isinstance(params, Mapping):
                values.update(params)
            elif params is not None:
                raise TypeError(
                    f"{type(self).__name__} takes a {self.Params.__qualname__} instance or a "
                    f"mapping of parameters, not {type(params).__name__}"
                )
            values.update(overrides)
            self.params = build_params(self.Params, values, where=f"{self.name or 'method'}")

    @classmethod
    def check_class(cls, technique: type, plugin: str) -> None:
        """Reject a technique class that breaks the contract, naming the plugin."""
        if not isinstance(getattr(technique, "name", None), str) or not technique.name:
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__} has no `name` class attribute"
            )
        params = getattr(technique, "Params", None)
        if not (isinstance(params, type) and dataclasses.is_dataclass(params)):
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__}.Params must be a dataclass"
            )
        if getattr(technique, "__abstractmethods__", None):
            missing = ", ".join(sorted(technique.__abstractmethods__))
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__} does not implement {missing}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


@dataclass
class AttributionContext:
    """What an attributor's :meth:`Attributor.compute` gets besides model, inputs and targets.

    :ivar handle: the model handle (preprocessing, class names, layer lookup).
    :ivar hooks: register torch hooks through this; all are removed when ``compute`` returns or
        raises.
    :ivar metadata: put run-level facts here (the layer used, a completeness gap, ...).
    :ivar input_index: for each row of the batch ``compute`` gets, the index of the original
        input. With several targets per input the base class repeats each input ``k`` times
        (input-major); a technique that can share work between targets of one input (one
        forward pass for all of them) uses this and ``targets_per_input``.
    :ivar targets_per_input: ``k``; 1 for one target per input.
    """

    handle: ModelHandle
    hooks: HookRecorder
    metadata: dict[str, Any] = field(default_factory=dict)
    input_index: Tensor | None = None
    targets_per_input: int = 1


def _check_inputs(inputs: Tensor) -> None:
    if not isinstance(inputs, Tensor):
        raise InputError(f"inputs must be a torch.Tensor [N,3,H,W], not {type(inputs).__name__}")
    if inputs.ndim != 4 or inputs.shape[1] != 3:
        raise InputError(
            f"inputs must be a normalized batch of shape [N,3,H,W]; got {tuple(inputs.shape)}"
            + (" (add a batch dimension with inputs[None])" if inputs.ndim == 3 else "")
        )
    if not inputs.is_floating_point():
        raise InputError(f"inputs must be a floating-point tensor, not {inputs.dtype}")


class Attributor(Technique):
    """Explains predictions with one map per input: ``attribute(model, inputs, target)``.

    Subclasses implement :meth:`compute`. Everything else (eval mode, device, targets, hooks,
    result checks) is done here, identically for every technique.
    """

    kind: ClassVar[str] = "attributor"

    def attribute(
        self,
        model: ModelHandle | nn.Module,
        inputs: Tensor,
        target: TargetSpec = "predicted",
    ) -> Attribution:
        """Explain ``model``'s predictions on ``inputs``.

        :param model: a handle from :func:`xai_core.load_model` or a plain ``torch.nn.Module``.
        :param inputs: normalized batch ``[N, 3, H, W]`` (the model's own preprocessing).
        :param target: ``"predicted"``, a class index, a class name, a sequence with one of
            those per item, or one equal-length list per item for several targets per input
            (maps are then input-major; see :attr:`Attribution.input_index`).
        :return: an :class:`Attribution` with maps ``[N, H, W]`` on the CPU.
        """
        handle = as_model_handle(model)
        _check_inputs(inputs)
        start = time.perf_counter()
        module = handle.module
        with model_state(module) as device:
            x = inputs.detach().to(device=device, dtype=torch.float32)
            targets = resolve_targets(target, len(x), handle, lambda: module(x)).to(device)
            k = targets.shape[1] if targets.ndim == 2 else 1
            index = torch.arange(len(x), device=device).repeat_interleave(k)
            if k > 1:
                x, targets = x[index], targets.flatten()
            context = AttributionContext(
                handle=handle, hooks=HookRecorder(), input_index=index, targets_per_input=k
            )
            with context.hooks:
                maps = self.compute(module, x, targets, context)
        maps = self._check_maps(maps, x)
        metadata = {"params": dataclasses.asdict(self.params), **context.metadata}
        metadata["seconds"] = time.perf_counter() - start
        return Attribution(
            maps=maps.detach().float().cpu(),
            targets=targets.cpu(),
            method=self.name,
            metadata=metadata,
            input_index=index.cpu(),
        )

    @abc.abstractmethod
    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Return maps ``[N, H, W]`` for ``inputs`` (on the model's device) and ``targets``.

        The model is in eval mode, its parameters do not require gradients, and gradients are
        enabled. Register torch hooks with ``context.hooks``.
        """

    def _check_maps(self, maps: Any, inputs: Tensor) -> Tensor:
        expected = (inputs.shape[0], inputs.shape[2], inputs.shape[3])
        if not isinstance(maps, Tensor) or tuple(maps.shape) != expected:
            got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
            raise PluginError(
                f"attributor {self.name!r} returned maps of shape {got}; the contract is "
                f"[N, H, W] at input resolution, here {expected}"
            )
        return maps


class Synthesizer(Technique):
    """Creates images for target classes: ``synthesize(model, target, images=None)``.

    Subclasses implement :meth:`generate`. Budgets and images are in pixel space ``[0, 1]``; the
    handle's ``normalize`` turns them into model inputs.
    """

    kind: ClassVar[str] = "synthesizer"

    def synthesize(
        self,
        model: ModelHandle | nn.Module,
        target: TargetSpec,
        images: Tensor | None = None,
        *,
        count: int | None = None,
    ) -> Synthesis:
        """Create one image per target.

        :param model: a handle from :func:`xai_core.load_model` or a plain ``torch.nn.Module``.
        :param target: class index, class name, ``"predicted"`` (needs ``images``), or one per
            item.
        :param images: optional starting images ``[N, 3, H, W]`` in pixel space ``[0, 1]``.
        :param count: how many images to create when no ``images`` are given (default: one per
            target in ``target``, else 1).
        """
        handle = as_model_handle(model)
        if images is not None:
            _check_inputs(images)
            n = images.shape[0]
        elif count is not None:
            n = count
        elif isinstance(target, Sequence) and not isinstance(target, str):
            n = len(target)
        else:
            n = 1
        start = time.perf_counter()
        module = handle.module
        with model_state(module) as device:
            x = None if images is None else images.detach().to(device=device, dtype=torch.float32)

            def logits() -> Tensor:
                if x is None:
                    raise InputError("target 'predicted' needs starting images")
                return module(handle.normalize(x))

            targets = resolve_targets(target, n, handle, logits).to(device)
            context = AttributionContext(handle=handle, hooks=HookRecorder())
            with context.hooks:
                out, records = self.generate(module, targets, x, context)
        metadata = {"params": dataclasses.asdict(self.params), **context.metadata}
        metadata["seconds"] = time.perf_counter() - start
        return Synthesis(
            images=out.detach().float().clamp(0, 1).cpu(),
            targets=targets.cpu(),
            method=self.name,
            metadata=metadata,
            records=records,
        )

    @abc.abstractmethod
    def generate(
        self,
        model: nn.Module,
        targets: Tensor,
        images: Tensor | None,
        context: AttributionContext,
    ) -> tuple[Tensor, list[dict[str, Any]]]:
        """Return images ``[N, 3, H, W]`` in ``[0, 1]`` and one record dict per image."""
