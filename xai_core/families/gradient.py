"""The gradient family: attributions computed per input channel at input resolution.

:class:`GradientAttributor` is the base of saliency-like methods whose result is a signed tensor
``[N, C, H, W]`` shaped like the input (Captum's ``GradientAttribution`` returns the same). A
subclass implements :meth:`GradientAttributor.input_attributions`; the base turns it into a map
with the shared ``abs`` and ``reduction`` parameters (:meth:`GradientAttributor.finish`). Keeping
the two steps apart is what lets ``noise_tunnel`` average per-channel attributions over noisy
copies and reduce once, as Captum's ``NoiseTunnel`` does. A new method:

>>> import torch
>>> from xai_core import GradientAttributor, load_model
>>> from xai_core.nn.gradients import input_gradients
>>> class GradientSquared(GradientAttributor):
...     name = "gradient_squared"
...
...     def input_attributions(self, model, inputs, targets, context):
...         return input_gradients(model, inputs, targets) ** 2
>>> model = load_model("timm/resnet10t", pretrained=False)
>>> GradientSquared().attribute(model, torch.randn(1, 3, 32, 32), target=3).maps.shape
torch.Size([1, 32, 32])

Reference-based methods explain an input against a baseline (:mod:`xai_core.nn.images`):
:class:`ReferenceAttributor` (integrated gradients, DeepLIFT) declares the ``baseline``,
``blur_sigma`` and ``seed`` parameters once and gives one baseline per input
(:meth:`ReferenceAttributor.baselines`); :class:`ReferenceSetAttributor` (DeepLIFT-SHAP, gradient
SHAP) declares ``baselines``, ``uniform_count``, ``blur_sigma`` and ``seed`` and gives a set of
references per input (:meth:`ReferenceSetAttributor.reference_set`). Both take a tensor from Python
in place of the name (``DeepLift(baseline=tensor)``).

What does not live here: the gradient building blocks (:mod:`xai_core.nn.gradients`: class
scores, input gradients, channel reductions; :mod:`xai_core.nn.relu_rules`: guided backprop and
deconvnet rules) and the built-in methods (the ``gradients`` and ``saliency`` plugins).
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.params import setting
from xai_core.contracts.technique import AttributionContext, ForwardPass
from xai_core.nn.gradients import (
    REDUCTIONS,
    gradients_at,
    input_gradients,
    model_input,
    reduce_channels,
)
from xai_core.nn.images import (
    REFERENCE_BASELINES,
    Baseline,
    baseline_set,
    check_baseline_list,
    check_baseline_value,
    pop_baseline_tensor,
)

__all__ = [
    "GradientAttributor",
    "InputGradientPass",
    "ReferenceAttributor",
    "ReferenceSetAttributor",
    "input_forward_pass",
    "pass_input_gradients",
    "reduction_param",
]


def reduction_param(default: str) -> Any:
    """A ``reduction`` dataclass field with default ``default``, restricted to
    :data:`~xai_core.nn.gradients.REDUCTIONS`: for a subclass's ``Params`` that changes the
    default."""
    return field(default=default, metadata={"choices": REDUCTIONS})


class GradientAttributor(Attributor):
    """An attributor built on a per-channel attribution ``[N, C, H, W]`` at input resolution.

    Subclasses implement :meth:`input_attributions` (what Captum's counterpart returns, signed and
    per channel) and keep the ``abs`` and ``reduction`` parameters, which :meth:`finish` applies:
    absolute values or not, then one of :data:`xai_core.nn.gradients.REDUCTIONS` over channels. Each
    method documents its default; ``sum`` is the one under which attributions add up to the score
    (integrated gradients' completeness). A subclass's ``Params`` derives from
    ``GradientAttributor.Params`` and may change defaults (``reduction: str =
    reduction_param("max")``).
    """

    @dataclass
    class Params:
        #: Absolute values before the reduction; ``false`` (default) keeps the sign.
        abs: bool = False
        #: Reduction over colour channels: ``sum`` (default) keeps what the attributions add up
        #: to (IG's completeness, DeepLIFT's summation-to-delta, LRP's conservation); ``max``
        #: keeps the largest-magnitude value, signed.
        reduction: str = reduction_param("sum")
        #: Run the passes on NHWC inputs (faster convolutions on CPU; same values up to rounding).
        channels_last: bool = setting(True)

    @abc.abstractmethod
    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Per-channel attributions ``[N, C, H, W]`` for ``inputs`` and ``targets`` (the arguments
        of :meth:`~xai_core.Attributor.compute`)."""

    def finish(self, attributions: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> the map ``[N, H, W]``: ``abs`` (if set), then ``reduction``."""
        if self.params.abs:
            attributions = attributions.abs()
        return reduce_channels(attributions, self.params.reduction)

    def compute(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        return self.finish(self.input_attributions(model, inputs, targets, context))


class ReferenceAttributor(GradientAttributor):
    """A gradient attributor that explains each input against one baseline (integrated gradients,
    DeepLIFT): the ``baseline`` parameter resolved once (:class:`~xai_core.nn.images.Baseline`),
    a tensor given from Python included, and :meth:`baselines` per call."""

    @dataclass
    class Params(GradientAttributor.Params):
        #: ``black``, ``zeros``, ``blur``, ``uniform``, or a .npy/.pt file (see the class doc).
        baseline: str = "black"
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = field(default=10.0, metadata={"min_exclusive": 0})
        #: Seed of the ``uniform`` baseline.
        seed: int = 0

        def __post_init__(self) -> None:
            check_baseline_value(self.baseline, REFERENCE_BASELINES)

    def __init__(self, params: Any = None, **overrides: Any):
        params, overrides, tensor = pop_baseline_tensor(params, overrides)
        super().__init__(params, **overrides)
        self.baseline = Baseline.parse(
            self.params.baseline, REFERENCE_BASELINES, tensor=tensor, key=f"{self.name}.baseline"
        )

    def baselines(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        """The baseline of each row of ``inputs``, ``[N, C, H, W]``."""
        p = self.params
        return self.baseline.per_input(
            inputs,
            context.handle,
            input_index=context.input_index,
            blur_sigma=p.blur_sigma,
            seed=p.seed,
        )


class ReferenceSetAttributor(GradientAttributor):
    """A gradient attributor that explains each input against a set of references (DeepLIFT-SHAP,
    gradient SHAP): the ``baselines`` parameter resolved once, a tensor ``[B, C, H, W]`` given
    from Python as the whole set included, and :meth:`reference_set` per call."""

    @dataclass
    class Params(GradientAttributor.Params):
        #: The reference set: names (``black``, ``zeros``, ``blur``, ``uniform``) and .npy/.pt
        #: files holding ``[B, C, H, W]`` or ``[C, H, W]`` (see ``deeplift_shap``).
        baselines: list[str] = field(default_factory=lambda: ["black", "uniform"])
        #: Noise images the name ``uniform`` stands for in the set.
        uniform_count: int = field(default=4, metadata={"min": 1})
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = field(default=10.0, metadata={"min_exclusive": 0})
        #: Seed of the first ``uniform`` image.
        seed: int = 0

        def __post_init__(self) -> None:
            check_baseline_list(self.baselines)

    def __init__(self, params: Any = None, **overrides: Any):
        params, overrides, tensor = pop_baseline_tensor(
            params, overrides, "baselines", as_list=True
        )
        super().__init__(params, **overrides)
        self.references = [
            Baseline.parse(value, REFERENCE_BASELINES, tensor=tensor, key=f"{self.name}.baselines")
            for value in self.params.baselines
        ]

    def reference_set(self, inputs: Tensor, context: AttributionContext) -> Tensor:
        """The references of each row of ``inputs``, ``[N or 1, B, C, H, W]``
        (:func:`~xai_core.nn.images.baseline_set`)."""
        p = self.params
        return baseline_set(
            self.references,
            inputs,
            context.handle,
            blur_sigma=p.blur_sigma,
            seed=p.seed,
            uniform_count=p.uniform_count,
        )


def input_forward_pass(
    model: nn.Module,
    inputs: Tensor,
    channels_last: bool = True,
    mode: contextlib.AbstractContextManager | None = None,
) -> ForwardPass:
    """The forward pass of an input-gradient method, for its
    :meth:`~xai_core.Attributor.forward_pass`: logits with their graph from a leaf made of
    ``inputs`` (:func:`~xai_core.nn.gradients.model_input`), under ``mode`` when given (a ReLU
    rule: :func:`xai_core.nn.relu_rules.guided_relu`)."""
    x = model_input(inputs, channels_last)
    with mode if mode is not None else contextlib.nullcontext():
        logits = model(x)
    return ForwardPass(logits=logits, inputs=x)


def pass_input_gradients(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    context: AttributionContext,
    channels_last: bool = True,
) -> Tensor:
    """Gradients ``[N, C, H, W]`` of each row's target score at ``inputs``: from the technique's
    :func:`input_forward_pass` when it was made for these rows (one backward pass, no second
    forward), else :func:`~xai_core.nn.gradients.input_gradients` (a pass of its own)."""
    forward = context.shared_pass(inputs)
    if forward is None or forward.inputs is None:
        return input_gradients(model, inputs, targets, channels_last)
    return gradients_at(forward.logits, forward.inputs, targets)


class InputGradientPass:
    """For an attributor built on the plain input gradient (saliency, gradient x input): its
    :meth:`~xai_core.Attributor.forward_pass` is :func:`input_forward_pass` and
    :meth:`pass_gradients` reads the gradients from it (:func:`pass_input_gradients`), both in the
    layout of its ``channels_last`` parameter. Listed before the attributor base:
    ``class Saliency(InputGradientPass, Attributor)``."""

    params: Any

    def forward_pass(
        self, model: nn.Module, inputs: Tensor, context: AttributionContext
    ) -> ForwardPass:
        return input_forward_pass(model, inputs, self.params.channels_last)

    def pass_gradients(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        """Gradients ``[N, C, H, W]`` of each row's target score at ``inputs``."""
        return pass_input_gradients(model, inputs, targets, context, self.params.channels_last)
