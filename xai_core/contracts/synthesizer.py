"""The synthesizer contract: :class:`Synthesizer` (implement ``generate``), what it returns per
image (:class:`SynthesisRecord`), its intermediate images (:class:`Snapshots`) and the result,
:class:`Synthesis`.

A synthesizer declares what the runner needs to know about it in class attributes
(:attr:`Synthesizer.starts_from_images`, :attr:`~Synthesizer.per_class`,
:attr:`~Synthesizer.snapshots`); the base class checks counts, shapes and values and names the
plugin when they are wrong.
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

from xai_core.contracts.checks import HookGuard, check_tensor
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.target_kinds import TargetKind
from xai_core.contracts.targets import TargetSpec, output_classes_hook, resolve_targets
from xai_core.contracts.technique import AttributionContext, Technique, check_inputs, grad_ready
from xai_core.errors import InputError, PluginError, TargetError
from xai_core.nn.hooks import HookRecorder, model_state

__all__ = ["Synthesis", "SynthesisRecord", "Snapshots", "SynthesisContext", "Synthesizer"]

@dataclass
class SynthesisRecord:
    """What a synthesizer reports about one image it made; the runner reads only these fields.

    :ivar target: the class the image was made for.
    :ivar target_probability: softmax probability of ``target`` for the final image.
    :ivar predicted: the class the model predicts for the final image.
    :ivar predicted_probability: its softmax probability.
    :ivar success: whether the technique reached its goal (the model predicts the target, say).
    :ivar iterations: steps taken for this image.
    :ivar seconds: time spent on this image (default: the call's time over its images).
    :ivar target_label: ``target``'s class name (filled in from the model when empty).
    :ivar predicted_label: ``predicted``'s class name (filled in from the model when empty).
    :ivar l2: size of the change from the starting image in pixel space (L2), if meaningful.
    :ivar linf: the same in L-infinity.
    :ivar extra: anything else, JSON-serialisable; written next to the fields in ``results.json``.
    """

    target: int
    target_probability: float
    predicted: int
    predicted_probability: float
    success: bool
    iterations: int
    seconds: float | None = None
    target_label: str | None = None
    predicted_label: str | None = None
    l2: float | None = None
    linf: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], owner: str = "synthesizer") -> SynthesisRecord:
        """A record from a dict of its fields; keys that are not fields go into ``extra``.

        :raises PluginError: naming ``owner`` and the missing fields.
        """
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise PluginError(
                f"{owner} returned a record without {', '.join(missing)}; a record needs "
                f"{', '.join(required)} (see xai_core.contracts.synthesizer.SynthesisRecord)"
            )
        extra = {k: v for k, v in values.items() if k not in names and k != "extra"}
        extra.update(values.get("extra") or {})
        return cls(**{k: values[k] for k in names if k in values}, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """The fields and the ``extra`` keys in one flat dict, as ``results.json`` stores it."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}


@dataclass
class Snapshots:
    """Intermediate images of a synthesizer that declares :attr:`Synthesizer.snapshots`.

    :ivar steps: after which step each frame was kept.
    :ivar images: float tensor ``[K, N, C, H, W]``: ``K`` frames of the ``N`` images, on the CPU.
    """

    steps: list[int]
    images: Tensor


@dataclass
class Synthesis:
    """Images created by a technique, one per target.

    :ivar images: float tensor ``[N, C, H, W]`` in pixel space ``[0, 1]``, on the CPU.
    :ivar targets: long tensor ``[N]``: the class each image was made for.
    :ivar method: the technique's registered name.
    :ivar metadata: run-level information (``params``, ``seconds``, what the technique adds).
    :ivar records: one :class:`SynthesisRecord` per image.
    :ivar snapshots: intermediate images, when the technique keeps them.
    """

    images: Tensor
    targets: Tensor
    method: str
    metadata: dict[str, Any] = field(default_factory=dict)
    records: list[SynthesisRecord] = field(default_factory=list)
    snapshots: Snapshots | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class SynthesisContext(AttributionContext):
    """What a synthesizer's :meth:`Synthesizer.generate` gets besides model, targets and images.

    Everything of :class:`AttributionContext`, and :meth:`snapshot` for a technique that
    declares :attr:`Synthesizer.snapshots`.
    """

    frames: list[tuple[int, Tensor]] = field(default_factory=list)

    def snapshot(self, step: int, images: Tensor) -> None:
        """Keep ``images`` (``[N, C, H, W]`` in ``[0, 1]``) as they are after ``step``."""
        self.frames.append((step, images.detach().float().cpu()))


class Synthesizer(Technique):
    """Creates images for target classes: ``synthesize(model, target, images=None)``.

    Subclasses implement :meth:`generate`. Budgets and images are in pixel space ``[0, 1]``; the
    handle's ``normalize`` turns them into model inputs. Three class attributes tell the runner
    how to call it (checked on registration):
    """

    kind: ClassVar[str] = "synthesizer"
    #: Needs starting photos (fooling, PGD). ``False``: starts from noise; the runner then calls
    #: it once per run, not once per photo.
    starts_from_images: ClassVar[bool] = True
    #: Makes one image per class of its ``classes`` parameter (a ``list[str]`` field of
    #: ``Params``; empty means the run's target) rather than one per photo for its target.
    per_class: ClassVar[bool] = False
    #: Reports intermediate images through :meth:`SynthesisContext.snapshot`
    #: (:attr:`Synthesis.snapshots`); the runner draws them as a progress figure.
    snapshots: ClassVar[bool] = False

    @classmethod
    def check_class(cls, technique: type, plugin: str) -> None:
        super().check_class(technique, plugin)
        where = f"plugin {plugin!r}: {technique.__qualname__}"
        if "uses_images" in vars(technique):
            raise PluginError(f"{where} sets `uses_images`; it is now `starts_from_images`")
        for flag in ("starts_from_images", "per_class", "snapshots"):
            if not isinstance(getattr(technique, flag), bool):
                raise PluginError(f"{where}.{flag} must be True or False")
        fields = {f.name for f in dataclasses.fields(technique.Params)}
        if technique.per_class and "classes" not in fields:
            raise PluginError(
                f"{where} is per_class but its Params has no `classes: list[str]` field"
            )

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
        :param images: optional starting images ``[N, C, H, W]`` in pixel space ``[0, 1]``.
        :param count: how many images to create when no ``images`` are given (default: one per
            target in ``target``, else 1).
        :raises PluginError: naming the technique and its plugin, when ``generate`` breaks the
            contract (image or record count, shape, dtype, non-finite or out-of-range pixels,
            a hook left on the model).
        """
        handle = as_model_handle(model)
        if isinstance(target, TargetKind):
            raise TargetError(
                f"{self.describe()} makes images of a class; target kind {target.name!r} is for "
                "attributors: give a class index or name"
            )
        self.check_channels(handle.in_chans, f"model {handle.name!r}")
        if images is not None:
            check_inputs(images, handle)
            n = images.shape[0]
        elif count is not None:
            n = count
        elif isinstance(target, Sequence) and not isinstance(target, str):
            n = len(target)
        else:
            n = 1
        start = time.perf_counter()
        module = handle.module
        owner = self.describe()
        with torch.inference_mode(False), model_state(module) as device, HookGuard(module) as guard:
            x = None
            if images is not None:
                x = grad_ready(images.detach().to(device=device, dtype=torch.float32))

            def logits() -> Tensor:
                if x is None:
                    raise InputError("target 'predicted' needs starting images")
                return module(handle.normalize(x))

            targets = resolve_targets(target, n, handle, logits).to(device)
            context = SynthesisContext(handle=handle, hooks=HookRecorder())
            with context.hooks:
                if handle.num_classes is None:
                    # An index past the output: named as such by the generator's first pass.
                    context.hooks.forward(module, output_classes_hook(targets))
                out = self.generate(module, targets, x, context)
        guard.check(owner)
        result = self._checked(out, targets.cpu(), handle, context, owner)
        result.metadata = {"params": dataclasses.asdict(self.params), **context.metadata}
        result.metadata["seconds"] = time.perf_counter() - start
        return result

    def _checked(
        self, out: Any, targets: Tensor, handle: ModelHandle, context: SynthesisContext, owner: str
    ) -> Synthesis:
        """The :class:`Synthesis` of what ``generate`` returned, once it keeps the contract."""
        if not (isinstance(out, tuple) and len(out) == 2):
            raise PluginError(f"{owner}: generate must return (images, records), not "
                              f"{type(out).__name__}")
        images, records = out
        n = len(targets)
        four_d = isinstance(images, Tensor) and images.ndim == 4
        c = handle.in_chans
        shape = (n, c, *images.shape[2:]) if four_d else (n, c, 0, 0)
        images = check_tensor(
            images, "images", owner, shape, f"[N, {c}, H, W] in [0, 1], one per target",
            unit_range=True,
        )
        if not isinstance(records, Sequence) or len(records) != n:
            got = len(records) if isinstance(records, Sequence) else type(records).__name__
            raise PluginError(f"{owner} returned {got} records for {n} targets; the contract is "
                              "one SynthesisRecord per image")
        typed = []
        for i, record in enumerate(records):
            if isinstance(record, Mapping):
                record = SynthesisRecord.from_mapping(record, owner)
            if not isinstance(record, SynthesisRecord):
                raise PluginError(f"{owner} returned a record of type {type(record).__name__}; "
                                  "the contract is a SynthesisRecord (or a dict of its fields)")
            if int(record.target) != int(targets[i]):
                raise PluginError(f"{owner}: record {i} is for class {record.target}, its image "
                                  f"for class {int(targets[i])}; records follow the targets")
            typed.append(dataclasses.replace(
                record,
                target_label=record.target_label or handle.label(int(record.target)),
                predicted_label=record.predicted_label or handle.label(int(record.predicted)),
            ))
        snapshots = None
        if context.frames:
            if not self.snapshots:
                raise PluginError(f"{owner} kept snapshots but does not declare snapshots = True")
            steps = [step for step, _ in context.frames]
            frames = torch.stack([frame for _, frame in context.frames])
            snapshots = Snapshots(steps, frames.clamp(0, 1))
        return Synthesis(
            images=images.detach().float().clamp(0, 1).cpu(),
            targets=targets,
            method=self.name,
            records=typed,
            snapshots=snapshots,
        )

    @abc.abstractmethod
    def generate(
        self,
        model: nn.Module,
        targets: Tensor,
        images: Tensor | None,
        context: SynthesisContext,
    ) -> tuple[Tensor, Sequence[SynthesisRecord]]:
        """Return images ``[N, C, H, W]`` in ``[0, 1]`` and one :class:`SynthesisRecord` each.

        ``N`` is the number of targets; record ``i`` is for ``targets[i]``. Dicts of the record's
        fields are accepted and converted. The model is in eval mode with frozen parameters and
        gradients enabled; register torch hooks with ``context.hooks``.
        """
