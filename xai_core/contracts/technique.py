"""What every technique shares: :class:`Technique` (a name and validated parameters), the
context ``compute``/``generate`` receive (:class:`AttributionContext`) and input checks.

The kinds of technique have their own modules: :mod:`xai_core.contracts.attributor`,
:mod:`xai_core.contracts.synthesizer`, :mod:`xai_core.contracts.metric`.

A technique is a class with a public ``name``, a ``Params`` dataclass (its config schema) and
one method to implement. The base classes do the bookkeeping every technique needs and none should
repeat: parameter validation, model/device/mode handling (gradients on, also under
``torch.inference_mode()``), target resolution, the removal of every torch hook a technique
registers, also when it raises, and the run-time contract checks of :mod:`.checks` (finite float
results of the right shape and count, no hook left behind), whose errors name the plugin.

What does *not* live here: loading models (:mod:`xai_core.models`), reading images
(:mod:`xai_core.runner.inputs`) and running experiments (:mod:`xai_core.runner.run`).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from xai_core.contracts.model import ModelHandle
from xai_core.contracts.params import build_params, check_params, unknown_metadata
from xai_core.errors import InputError, PluginError
from xai_core.nn.hooks import HookRecorder

__all__ = ["Technique", "AttributionContext", "ForwardPass", "grad_ready", "check_inputs"]


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
    #: Why the technique needs RGB inputs (3 channels), for a technique whose maths does
    #: (a colour space, ImageNet's colour statistics); empty: it works with any channel count.
    #: :meth:`check_channels` reads it, from a config check before any model loads and from
    #: every call.
    requires_rgb: ClassVar[str] = ""
    #: The plugin that registered the class (set on registration; read with :meth:`describe`).
    _plugin: ClassVar[str | None] = None

    @dataclass
    class Params:
        """No parameters."""

    def __init__(self, params: Any = None, **overrides: Any):
        if isinstance(params, self.Params) and not overrides:
            check_params(params, self.name or "method")
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
        unknown = unknown_metadata(params)
        if unknown:
            raise PluginError(
                f"plugin {plugin!r}: {technique.__qualname__}.Params has unknown field metadata "
                f"({', '.join(unknown)}); the vocabulary is in xai_core.contracts.params"
            )
        technique._plugin = plugin

    @classmethod
    def check_channels(cls, channels: int, model: str = "the model") -> None:
        """Raise :class:`InputError` when the technique needs RGB (:attr:`requires_rgb`) and
        ``model`` takes ``channels`` input channels, naming both."""
        if cls.requires_rgb and channels != 3:
            raise InputError(
                f"{cls.kind} {cls.name!r} needs RGB inputs (3 channels): {cls.requires_rgb}; "
                f"{model} takes {channels} channel(s). Use a technique that works with any "
                "channel count (`xai describe <name>` says which need RGB)"
            )

    def check_model(self, handle: Any) -> None:
        """Refuse a model this technique cannot explain at all (attention methods on a CNN, a
        CAM on a model without a spatial layer), raising :class:`~xai_core.errors.XaiError`
        with the reason and the fix. A run calls it once per model, right after the model
        loads and before any item, so such a model fails the run once instead of every item.
        The default accepts every model."""
        del handle

    @classmethod
    def describe(cls) -> str:
        """``attributor 'saliency' (plugin 'saliency')``: who to blame in an error message.

        Read from the class itself, not a parent: a subclass registered by another plugin, or
        not registered at all, is not the parent's plugin's fault.
        """
        plugin = cls.__dict__.get("_plugin")
        origin = f"plugin {plugin!r}" if plugin else f"unregistered, from {cls.__module__}"
        return f"{cls.kind} {cls.name or cls.__qualname__!r} ({origin})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


@dataclass
class ForwardPass:
    """A technique's forward pass on the unperturbed inputs, shared with the caller.

    Returned by :meth:`xai_core.Attributor.forward_pass` (which a technique implements when its
    work starts with such a pass: gradients, CAMs, occlusion's clean scores). The base class
    takes the predictions and the targets that depend on them (``predicted``, ``top-k``) from
    :attr:`logits`, and an experiment takes each image's predicted class and top 5 from them, so
    neither runs a pass of its own; ``compute`` then finds the pass in ``context.forward``.

    :ivar logits: ``[M, classes]`` for the ``M`` inputs the pass ran on, with the autograd graph
        when the technique built one (it may backpropagate from them in ``compute``).
    :ivar inputs: the tensor the pass started from when the technique wants gradients at it (a
        leaf that requires grad, maybe channels-last), else ``None``.
    :ivar saved: anything else ``compute`` needs from the pass (a layer's activations, ...).
    :ivar source: the inputs ``forward_pass`` was given (set by the base class).
    :ivar rows: the rows ``compute`` gets, the same tensor as ``source`` with one target per
        input, ``source`` repeated ``k`` times with ``k`` (set by the base class).
    """

    logits: Tensor
    inputs: Tensor | None = None
    saved: dict[str, Any] = field(default_factory=dict)
    source: Tensor | None = None
    rows: Tensor | None = None

    def serves(self, inputs: Tensor) -> bool:
        """Whether ``inputs`` are the rows this pass was made for: ``compute`` called by the base
        class, not by a wrapper on other inputs (noise tunnel calls it on noisy copies)."""
        return inputs is self.rows or inputs is self.source


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
    :ivar forward: the technique's own :class:`ForwardPass` on these inputs, when it implements
        :meth:`~xai_core.Attributor.forward_pass`; check :meth:`ForwardPass.serves` before
        reusing it (``compute`` may be called on other inputs by a wrapper).
    """

    handle: ModelHandle
    hooks: HookRecorder
    metadata: dict[str, Any] = field(default_factory=dict)
    input_index: Tensor | None = None
    targets_per_input: int = 1
    forward: ForwardPass | None = None

    def shared_pass(self, inputs: Tensor) -> ForwardPass | None:
        """The forward pass made for ``inputs`` by :meth:`~xai_core.Attributor.forward_pass`,
        or ``None`` when there is none for them (run your own pass then)."""
        if self.forward is not None and self.forward.serves(inputs):
            return self.forward
        return None


def grad_ready(tensor: Tensor) -> Tensor:
    """``tensor``, or a copy that autograd accepts when it was made under inference mode.

    Tensors created in ``torch.inference_mode()`` can never require gradients; a copy made
    outside it can, and costs nothing for ordinary tensors (they are returned as they are).
    """
    return tensor.clone() if tensor.is_inference() else tensor


def check_inputs(inputs: Tensor, handle: ModelHandle | None = None) -> None:
    """Raise :class:`InputError` unless ``inputs`` is a floating-point batch ``[N, C, H, W]``
    (any ``C >= 1``) and, with ``handle``, ``C`` is the model's channel count."""
    if not isinstance(inputs, Tensor):
        raise InputError(f"inputs must be a torch.Tensor [N,C,H,W], not {type(inputs).__name__}")
    if inputs.ndim != 4 or inputs.shape[1] < 1:
        raise InputError(
            f"inputs must be a normalized batch of shape [N,C,H,W]; got {tuple(inputs.shape)}"
            + (" (add a batch dimension with inputs[None])" if inputs.ndim == 3 else "")
        )
    if not inputs.is_floating_point():
        raise InputError(f"inputs must be a floating-point tensor, not {inputs.dtype}")
    if handle is not None:
        handle.check_channels(inputs)
