"""Which layer gets which LRP rule: the named composites (as in zennit's
``zennit.composites``), per-layer overrides from ``layer_rules``, and the check that every layer
of the model is one LRP can propagate through.

A composite names a rule for convolutions, one for linear (fully connected) layers and possibly
one for the *first* layer, the first module in registration order (``model.named_modules()``)
of the given types, which is the input layer of torchvision and timm CNNs. As in zennit, the
first layer is found before overrides apply, so overriding it does not move the special rule on
to the next layer. Every composite shares zennit's base: activations pass relevance through
(``pass``), average pooling and residual sums share it in proportion to their inputs (``norm``),
batch norms are merged into the layer before them (:mod:`.canonize`).

What does not live here: the rules' formulas (:mod:`.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from xai_core.errors import ConfigError, did_you_mean

from .canonize import batch_norm_pairs
from .rules import AFFINE_RULES

__all__ = ["COMPOSITES", "Composite", "LayerPlan", "plan_layers"]


@dataclass(frozen=True)
class Composite:
    """Rules by layer type: ``conv`` for convolutions, ``dense`` for linear layers, ``first``
    for the first layer of type ``first_types``."""

    conv: str
    dense: str
    first: str | None = None
    first_types: tuple[type, ...] = ()
    summary: str = ""


#: The named composites, with zennit's names and rules.
COMPOSITES: dict[str, Composite] = {
    "epsilon_plus_flat": Composite(
        "zplus", "epsilon", "flat", (nn.Conv2d, nn.Linear),
        "flat on the first layer, z-plus on convolutions, epsilon on linear layers",
    ),
    "epsilon_gamma_box": Composite(
        "gamma", "epsilon", "zbox", (nn.Conv2d,),
        "z-box on the first convolution, gamma on the others, epsilon on linear layers",
    ),
    "epsilon_alpha2_beta1": Composite(
        "alpha_beta", "epsilon", summary="alpha-beta on convolutions, epsilon on linear layers"
    ),
    "epsilon_plus": Composite(
        "zplus", "epsilon", summary="z-plus on convolutions, epsilon on linear layers"
    ),
}

#: Layers that pass relevance through unchanged (zennit's ``Activation`` types).
ACTIVATIONS: tuple[type, ...] = (
    nn.ELU, nn.Hardshrink, nn.Hardsigmoid, nn.Hardtanh, nn.Hardswish, nn.LeakyReLU,
    nn.LogSigmoid, nn.PReLU, nn.ReLU, nn.ReLU6, nn.RReLU, nn.SELU, nn.CELU, nn.GELU,
    nn.Sigmoid, nn.SiLU, nn.Softplus, nn.Softshrink, nn.Softsign, nn.Tanh, nn.Tanhshrink,
    nn.Threshold,
)
#: Layers whose relevance is shared in proportion to their inputs (zennit's ``Norm`` rule).
AVERAGE_POOLS: tuple[type, ...] = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
#: Layers whose gradient is their relevance rule: max pooling hands each output's relevance to
#: the input it took (winner takes all, as in zennit); the others are the identity at eval time
#: or only reshape.
GRADIENT_LAYERS: tuple[type, ...] = (
    nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d, nn.AlphaDropout,
    nn.Identity, nn.Flatten, nn.Unflatten,
)
AFFINE_TYPES: tuple[type, ...] = (nn.Conv2d, nn.Linear)
BATCH_NORMS: tuple[type, ...] = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class LayerPlan:
    """What happens at each layer: ``rules`` maps module paths to a rule name (an affine rule,
    ``pass`` or ``norm``), ``merged`` maps each batch norm's path to the affine layer it is
    merged into; every other module keeps its gradient."""

    rules: dict[str, str]
    merged: dict[str, str]


def _own_forward(module: nn.Module, bases: tuple[type, ...]) -> bool:
    """Whether ``module``'s class replaces the ``forward`` of the base it derives from (timm's
    ``Conv2dSame`` pads on its own, ``BatchNormAct2d`` adds an activation): the rules would
    describe a different computation."""
    base = next(b for b in bases if isinstance(module, b))
    return type(module).forward is not base.forward


def _first_layer(model: nn.Module, types: tuple[type, ...]) -> str | None:
    return next((name for name, m in model.named_modules() if isinstance(m, types)), None)


def check_layer_paths(model: nn.Module, layer_rules: dict[str, str]) -> None:
    """Every key of ``layer_rules`` names a module of ``model``, or a clear error."""
    names = [name for name, _ in model.named_modules() if name]
    for path in layer_rules:
        if path not in names:
            hint = did_you_mean(path, names) or "."
            raise ConfigError(
                f"lrp layer_rules: the model has no module {path!r}{hint} Keys are module paths "
                f"as in model.named_modules() (e.g. {', '.join(repr(n) for n in names[:3])})"
            )


def _unsupported(name: str, module: nn.Module, why: str) -> ConfigError:
    label = repr(name) if name else "the model itself"
    return ConfigError(
        f"lrp cannot propagate relevance through layer {label} ({type(module).__name__}): {why}. "
        f"If relevance should pass through it unchanged, say so with the parameter "
        f"layer_rules: {{{name or 'name'!r}: pass}}; otherwise use a method without layer rules "
        "(e.g. integrated_gradients or gradient_x_input) for this model"
    )


def _check_own_forward(name: str, module: nn.Module, override: str | None) -> None:
    """A convolution, linear layer or batch norm whose class computes something else than its
    base is refused, unless ``layer_rules`` passes relevance through it."""
    if override == "pass":
        return
    for bases in (AFFINE_TYPES, BATCH_NORMS):
        if isinstance(module, bases) and _own_forward(module, bases):
            raise _unsupported(
                name, module,
                f"it is a {type(module).__name__} whose forward differs from "
                f"{module.__class__.__mro__[1].__name__}'s, so the rules would describe another "
                "computation",
            )


def _affine_rule(
    name: str, module: nn.Module, override: str | None, chosen: Composite, first: str | None
) -> str:
    """The rule of a convolution or linear layer: the override, else the composite's."""
    if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
        raise _unsupported(name, module, f"padding_mode {module.padding_mode!r}")
    default = chosen.conv if isinstance(module, nn.Conv2d) else chosen.dense
    rule = override or (chosen.first if name == first else default)
    # The image's convolution: an RGB one, or the first layer (a model of other channels).
    takes_pixels = isinstance(module, nn.Conv2d) and (module.in_channels == 3 or name == first)
    if rule == "zbox" and not takes_pixels:
        raise ConfigError(
            f"lrp: the zbox rule bounds a layer's inputs by the model's pixel range, so "
            f"it fits a convolution that takes the image (3 channels, or the first "
            f"convolution); {name!r} does not"
        )
    return rule


def _merge_target(
    name: str, module: nn.Module, pairs: dict[str, str], rules: dict[str, str]
) -> str:
    """The affine layer a batch norm is merged into (its rule already planned)."""
    if name not in pairs:
        raise _unsupported(
            name, module,
            "a batch norm is merged into the convolution or linear layer right before "
            "it, and this one has none (zennit would pass relevance through it, which "
            "is not what the network computes)",
        )
    if rules.get(pairs[name]) not in AFFINE_RULES:
        raise _unsupported(
            name, module,
            f"it would be merged into {pairs[name]!r}, whose layer_rules entry "
            f"{rules.get(pairs[name])!r} is not a rule for an affine layer",
        )
    return pairs[name]


def _layer_rule(name: str, module: nn.Module) -> str | None:
    """The rule of a layer that is neither affine nor a batch norm and has no override:
    ``pass``, ``norm``, or ``None`` (its gradient); refused where LRP has no rule."""
    if isinstance(module, ACTIVATIONS):
        return "pass"
    if isinstance(module, AVERAGE_POOLS):
        return "norm"
    leaf = next(module.children(), None) is None
    if leaf and not isinstance(module, GRADIENT_LAYERS):
        raise _unsupported(name, module, "LRP has no rule for this layer type")
    if not leaf and any(True for _ in module.parameters(recurse=False)):
        raise _unsupported(
            name, module, "it has parameters of its own, used in a computation LRP cannot see"
        )
    return None


def plan_layers(model: nn.Module, composite: str, layer_rules: dict[str, str]) -> LayerPlan:
    """The rule of every layer of ``model`` under ``composite`` and ``layer_rules`` overrides.

    Raises :class:`~xai_core.errors.ConfigError` for a module path that does not exist (with
    close matches), a rule that does not fit its layer, and a layer LRP has no rule for (naming
    it and what to do).
    """
    check_layer_paths(model, layer_rules)
    chosen = COMPOSITES[composite]
    first = _first_layer(model, chosen.first_types) if chosen.first else None
    pairs = batch_norm_pairs(model)
    rules: dict[str, str] = {}
    merged: dict[str, str] = {}
    for name, module in model.named_modules():
        override = layer_rules.get(name)
        _check_own_forward(name, module, override)
        if isinstance(module, AFFINE_TYPES):
            rules[name] = _affine_rule(name, module, override, chosen, first)
        elif override is not None and override in AFFINE_RULES:
            raise ConfigError(
                f"lrp layer_rules: rule {override!r} is for convolutions and linear layers, but "
                f"{name!r} is a {type(module).__name__}; use 'pass' or remove the entry"
            )
        elif override == "pass":
            rules[name] = "pass"
        elif isinstance(module, BATCH_NORMS):
            merged[name] = _merge_target(name, module, pairs, rules)
        else:
            rule = _layer_rule(name, module)
            if rule is not None:
                rules[name] = rule
    return LayerPlan(rules=rules, merged=merged)
