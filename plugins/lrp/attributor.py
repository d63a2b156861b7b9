"""The ``lrp`` attributor: layer-wise relevance propagation with zennit's named composites.

It is a :class:`xai_core.GradientAttributor`: LRP is a modified gradient (each layer's backward
replaced by its rule, :mod:`.propagation`), its result is a signed relevance per input channel
``[N, C, H, W]``, and the family's ``reduction`` (``sum`` by default) and ``abs`` turn it into a
map whose pixels add up to the relevance that reached the input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xai_core import AttributionContext, GradientAttributor
from xai_core.contracts.model import Preprocessing
from xai_core.errors import close_matches
from xai_core.nn.gradients import class_scores, model_input

from .composites import COMPOSITES, plan_layers
from .propagation import attach_rules
from .rules import RULES, RuleSettings

__all__ = ["LRP", "pixel_bounds"]


def pixel_bounds(preprocessing: Preprocessing) -> tuple[Tensor, Tensor]:
    """The lowest and highest normalized input per channel, ``[1, 3, 1, 1]`` each: where pixels
    in ``[0, 1]`` land after the model's normalization (the ``zbox`` rule's box)."""
    mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (0.0 - mean) / std, (1.0 - mean) / std


class LRP(GradientAttributor):
    """Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) with the named
    composites of zennit.

    The target logit is the relevance at the output; each layer hands its outputs' relevance to
    its inputs by its rule, down to the pixels. ``composite`` picks the rules by layer type:

    * ``epsilon_plus_flat`` (default): flat on the first layer, z-plus on convolutions, epsilon
      on linear layers;
    * ``epsilon_gamma_box``: z-box on the first convolution (the box is the range of normalized
      pixels, from the model's mean and std), gamma on the other convolutions, epsilon on
      linear layers;
    * ``epsilon_alpha2_beta1``: alpha-beta (``alpha``, ``beta``) on convolutions, epsilon on
      linear layers;
    * ``epsilon_plus``: z-plus on convolutions, epsilon on linear layers.

    In every composite activations pass relevance through, average pooling and residual sums
    (torchvision's ResNet blocks, any sum of two activations) share it in proportion to their
    inputs, max pooling gives it to the input it took, and batch norms are merged into the
    convolution or linear layer before them for the call. The model is not modified: its own
    forward pass runs, with hooks that are removed afterwards. A layer LRP has no rule for
    (layer norm, attention, a batch norm with no layer before it, a module computing with
    parameters of its own) is an error that names it.

    **Setting a rule for a layer.** ``layer_rules`` maps module paths (as in
    ``model.named_modules()``) to rule names and wins over the composite, e.g. in YAML::

        methods:
          - name: lrp
            params:
              composite: epsilon_plus
              layer_rules: {"features.0": zbox, "classifier.6": epsilon}

    Rules: ``epsilon``, ``zplus``, ``alpha_beta``, ``gamma``, ``flat``, ``zbox`` (convolutions
    and linear layers) and ``pass`` (any shape-preserving layer: relevance passes unchanged, as
    zennit does for activations). An unknown path is an error listing close matches.

    **Conservation.** The input relevance adds up to the target logit except for what the rules
    absorb: the ``epsilon`` rule's ``epsilon`` (about ``epsilon / |z|`` of each output's
    relevance), the stabilizer (the same at ``1e-6``), and biases: z-plus, alpha-beta, gamma and
    epsilon give bias terms their share, which is lost to the input (flat and z-box do not; the
    merged batch norms' shifts are biases too). With zero biases every composite conserves to
    within ``1e-4`` of the logit (measured: 1e-5 to 2e-5 on ResNet-18, about 5e-5 on VGG-11, at
    32 px; tests/plugins/lrp/test_lrp.py checks 1e-4); with biases the gap is their share, often
    several percent to tens of percent of the logit for random weights.
    The attribution's metadata reports the largest relative gap of the batch as
    ``relevance_gap``. Outputs whose denominator is zero (dead units) lose their relevance.

    Equals zennit's ``Gradient`` attributor with the composite of the same name (and
    ``SequentialMergeBatchNorm`` / ``ResNetCanonizer``) started from the target logit
    (``attr_output = one_hot * logits``) to float rounding.
    """

    name = "lrp"
    summary = "layer-wise relevance propagation with zennit's composites (sum of relevance)"
    paper = (
        "Bach et al. 2015, doi:10.1371/journal.pone.0130140; "
        "Montavon et al. 2019, doi:10.1007/978-3-030-28954-6_10"
    )

    @dataclass
    class Params(GradientAttributor.Params):
        #: Rules by layer type: ``epsilon_plus_flat``, ``epsilon_gamma_box``,
        #: ``epsilon_alpha2_beta1`` or ``epsilon_plus`` (zennit's composites).
        composite: str = field(
            default="epsilon_plus_flat", metadata={"choices": tuple(COMPOSITES)}
        )
        #: The epsilon rule's stabilizer (linear layers): relevance absorbed in exchange for
        #: sparser, less noisy maps; 0 is LRP-0.
        epsilon: float = field(default=1e-6, metadata={"min": 0.0})
        #: The gamma rule's boost of positive contributions (``epsilon_gamma_box``); 0 is LRP-0.
        gamma: float = field(default=0.25, metadata={"min": 0.0})
        #: The alpha-beta rule's weight of positive contributions (``epsilon_alpha2_beta1``).
        alpha: float = field(
            default=2.0, metadata={"min": 1.0, "reason": "alpha - beta = 1 conserves relevance"}
        )
        #: The alpha-beta rule's weight of negative contributions; ``alpha - beta`` must be 1.
        beta: float = field(default=1.0, metadata={"min": 0.0})
        #: Added to every other rule's denominator (with its sign) so that it is never zero.
        stabilizer: float = field(default=1e-6, metadata={"min_exclusive": 0.0})
        #: Rules for named layers, over the composite: ``{module path: rule}`` with rules
        #: ``epsilon``, ``zplus``, ``alpha_beta``, ``gamma``, ``flat``, ``zbox`` or ``pass``.
        layer_rules: dict[str, str] = field(default_factory=dict)

        def __post_init__(self) -> None:
            if abs(self.alpha - self.beta - 1.0) > 1e-9:
                raise ValueError(
                    f"alpha - beta must be 1 (relevance is conserved only then); got alpha="
                    f"{self.alpha:g}, beta={self.beta:g}"
                )
            for path, rule in self.layer_rules.items():
                if rule not in RULES:
                    matches = close_matches(str(rule), RULES)
                    hint = f"; did you mean {', '.join(map(repr, matches))}?" if matches else ""
                    raise ValueError(
                        f"layer_rules[{path!r}]: unknown rule {rule!r}{hint} "
                        f"Rules: {', '.join(RULES)}"
                    )

    def settings(self, preprocessing: Preprocessing) -> RuleSettings:
        """The rules' numbers for a model with ``preprocessing`` (its pixel bounds)."""
        p = self.params
        low, high = pixel_bounds(preprocessing)
        return RuleSettings(
            epsilon=p.epsilon, stabilizer=p.stabilizer, gamma=p.gamma, alpha=p.alpha,
            beta=p.beta, low=low, high=high,
        )

    def input_attributions(
        self, model: nn.Module, inputs: Tensor, targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        plan = plan_layers(model, p.composite, dict(p.layer_rules))
        settings = self.settings(context.handle.preprocessing)
        attach_rules(model, plan, settings, context.hooks)
        x = model_input(inputs, p.channels_last)
        logits = class_scores(model(x), targets)
        (relevance,) = torch.autograd.grad(logits, x, logits.detach())
        context.hooks.remove_all()
        total = relevance.flatten(1).sum(1)
        gap = (total - logits.detach()).abs() / logits.detach().abs().clamp(min=1e-12)
        context.metadata["relevance_gap"] = float(gap.max())
        context.metadata["rules"] = dict(Counter(plan.rules.values()))
        context.metadata["merged_batch_norms"] = len(plan.merged)
        return relevance.contiguous()
