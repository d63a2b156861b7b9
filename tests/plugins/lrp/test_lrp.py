"""The ``lrp`` attributor (plugins/lrp) against zennit, its reference: the four named composites on
torchvision VGG (with and without batch norm) and ResNet-18, conservation, per-layer rules from
parameters, errors, and the model left exactly as found.

zennit's batch-norm merge leaves each batch norm dividing by ``sqrt(1 + eps)`` (it sets the
statistics to 0 and 1 but keeps ``eps``), so its canonized network computes a slightly different
function from the model (about ``eps / 2`` per batch norm). ``lrp`` merges exactly, so the
reference here is zennit with that merge made exact (``ExactMergeBatchNorm`` below, which also
sets ``eps`` to 0 for the call); plain zennit is checked to differ by that effect only.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from numerics import float32_atol
from torch import nn
from xai_core_plugins.lrp import COMPOSITES, pixel_bounds
from zennit.attribution import Gradient
from zennit.canonizers import CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import COMPOSITES as ZENNIT_COMPOSITES
from zennit.composites import MixedComposite, NameMapComposite
from zennit.rules import AlphaBeta, Flat, Gamma
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer

import xai_core
from xai_core.contracts.model import Preprocessing
from xai_core.errors import ConfigError
from xai_core.testing.common import hook_count

SIZE = 32
COMPOSITE_NAMES = tuple(COMPOSITES)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: these small passes gain nothing from more on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ExactMergeBatchNorm(SequentialMergeBatchNorm):
    """zennit's merge with the merged batch norm made the identity exactly (``eps = 0``)."""

    def register(self, linears, batch_norm):
        self.eps = batch_norm.eps
        super().register(linears, batch_norm)
        batch_norm.eps = 0.0

    def remove(self):
        super().remove()
        self.batch_norm.eps = self.eps


def resnet_canonizer(exact: bool = True):
    merge = ExactMergeBatchNorm() if exact else SequentialMergeBatchNorm()
    return CompositeCanonizer((merge, ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()))


def randomize_batch_norms(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial statistics and affine parameters, so merging is exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
    return model


def torchvision_model(arch: str, seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batch_norms(getattr(torchvision.models, arch)(weights=None, **options).eval())


class SmallVGG(nn.Module):
    """torchvision's VGG-11-BN feature stack (``make_layers``: convolutions, batch norms, ReLUs,
    max pools) with a small classifier of VGG's form (Linear, ReLU, Dropout, ...): most checks
    run on it, since the full head's 120 M weights only cost time here
    (test_equals_zennit[vgg16-*] has the real one)."""

    def __init__(self):
        super().__init__()
        vgg = torchvision.models.vgg
        self.features = vgg.make_layers(vgg.cfgs["A"], batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 4, 64), nn.ReLU(True), nn.Dropout(),
            nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.fixture(scope="module")
def vgg11_bn():
    torch.manual_seed(0)
    return randomize_batch_norms(SmallVGG().eval())


@pytest.fixture(scope="module")
def vgg16():
    return torchvision_model("vgg16")


@pytest.fixture(scope="module")
def resnet18():
    return torchvision_model("resnet18")


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, SIZE, SIZE, generator=generator), torch.tensor([3, 7])


def zennit_composite(name: str, canonizer):
    kwargs = {"canonizers": [canonizer]}
    if name == "epsilon_gamma_box":
        low, high = pixel_bounds(Preprocessing())
        kwargs.update(low=low, high=high)
    return ZENNIT_COMPOSITES[name](**kwargs)


def zennit_relevance(model, inputs, targets, composite):
    """zennit's attribution started from the target logit, summed over channels."""

    def initial(output):
        one_hot = torch.zeros_like(output)
        one_hot[torch.arange(len(targets)), targets] = 1.0
        return one_hot * output

    with Gradient(model, composite) as attributor:
        _, relevance = attributor(inputs, initial)
    return relevance.sum(1)


def ours(model, inputs, targets, **params):
    return xai_core.get_attributor("lrp", **params).attribute(model, inputs, targets)


def relative_error(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


#: (depth, widest reduction) of each network's relevance pass, for the float32 bound of two
#: computations of it that round differently (tests/numerics.py).
BOUNDS = {"vgg11_bn": (11, 3 * 3 * 512), "vgg16": (16, 3 * 3 * 512), "resnet18": (18, 3 * 3 * 512)}


def float32_bound(arch: str) -> float:
    """The relative error two float32 relevance passes through ``arch`` may differ by."""
    depth, fan_in = BOUNDS[arch]
    return float32_atol(1.0, depth, fan_in)


#: (model fixture, zennit's canonizer for it, images of the batch): the full VGG-16 on one image.
ZENNIT_CASES = [
    ("vgg11_bn", ExactMergeBatchNorm, 2),
    ("vgg16", ExactMergeBatchNorm, 1),
    ("resnet18", resnet_canonizer, 2),
]


@pytest.mark.parametrize("composite", COMPOSITE_NAMES)
@pytest.mark.parametrize(
    ("arch", "canonizer", "images"), ZENNIT_CASES, ids=[c[0] for c in ZENNIT_CASES]
)
def test_equals_zennit(request, batch, arch, canonizer, images, composite):
    model = request.getfixturevalue(arch)
    x, t = batch[0][:images], batch[1][:images]
    reference = zennit_relevance(model, x, t, zennit_composite(composite, canonizer()))
    maps = ours(model, x, t, composite=composite).maps
    assert relative_error(maps, reference) <= float32_bound(arch)


def test_plain_zennit_differs_only_by_its_inexact_merge(vgg11_bn, batch):
    """zennit's own merge keeps ``1 / sqrt(1 + eps)`` per batch norm (8 here): its relevance
    differs by about ``8 * eps / 2``, and not at all once ``eps`` is 0 (the test above)."""
    x, t = batch
    composite = zennit_composite("epsilon_plus", SequentialMergeBatchNorm())
    plain = zennit_relevance(vgg11_bn, x, t, composite)
    maps = ours(vgg11_bn, x, t, composite="epsilon_plus").maps
    error = relative_error(maps, plain)
    assert 1e-6 < error < 8 * 1e-5


def _zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.zero_()
    return model


@pytest.mark.parametrize("composite", COMPOSITE_NAMES)
def test_relevance_sums_to_the_target_logit_without_biases(composite):
    """With no bias anywhere (torchvision's ResNet-18 as initialised: bias-free convolutions,
    batch norms that merge to zero shifts), every composite conserves relevance: the map sums
    to the target logit within 1e-4 (the stabilizers absorb the rest)."""
    torch.manual_seed(0)
    model = _zero_biases(torchvision.models.resnet18(weights=None, num_classes=10).eval())
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([1, 2])
    attribution = ours(model, x, t, composite=composite)
    logits = model(x)[torch.arange(2), t].detach()
    totals = attribution.maps.flatten(1).sum(1)
    # Not float rounding: the rules' stabilizers absorb up to 1e-4 of the logit.
    assert torch.allclose(totals, logits, rtol=1e-4, atol=0)
    assert attribution.metadata["relevance_gap"] < 1e-4


def test_biases_absorb_relevance(vgg11_bn, batch):
    """With biases (the merged batch norms' shifts) the map sums to less than the logit; the gap
    is reported in the metadata."""
    x, t = batch
    attribution = ours(vgg11_bn, x, t, composite="epsilon_plus")
    logits = vgg11_bn(x)[torch.arange(2), t].detach()
    gap = ((attribution.maps.flatten(1).sum(1) - logits).abs() / logits.abs()).max()
    assert gap > 1e-3
    assert attribution.metadata["relevance_gap"] == pytest.approx(float(gap), rel=1e-4)


def test_layer_rules_override_the_composite(vgg11_bn, batch):
    """A rule per module path, as from YAML: equals zennit with the same name map, including the
    general (mixed-sign input) form of gamma on the first layer."""
    x, t = batch
    overrides = {"features.0": "gamma", "features.4": "flat", "classifier.3": "alpha_beta"}
    composite = MixedComposite(
        [
            NameMapComposite(
                [
                    (("features.0",), Gamma(gamma=0.25)),
                    (("features.4",), Flat()),
                    (("classifier.3",), AlphaBeta(alpha=2.0, beta=1.0)),
                ]
            ),
            zennit_composite("epsilon_gamma_box", ExactMergeBatchNorm()),
        ]
    )
    reference = zennit_relevance(vgg11_bn, x, t, composite)
    maps = ours(vgg11_bn, x, t, composite="epsilon_gamma_box", layer_rules=overrides).maps
    assert relative_error(maps, reference) <= float32_bound("vgg11_bn")
    plain = ours(vgg11_bn, x, t, composite="epsilon_gamma_box").maps
    assert relative_error(maps, plain) > 1e-2


def test_layer_rules_errors(vgg11_bn, batch):
    x, t = batch
    typo = r"no module 'classifer\.6'.*did you mean 'classifier\.6'"
    with pytest.raises(ConfigError, match=typo):
        ours(vgg11_bn, x, t, layer_rules={"classifer.6": "epsilon"})
    with pytest.raises(ConfigError, match="unknown rule 'zplsu'.*did you mean 'zplus'"):
        xai_core.get_attributor("lrp", layer_rules={"features.0": "zplsu"})
    with pytest.raises(ConfigError, match="'zplus' is for convolutions.*'features.2' is a ReLU"):
        ours(vgg11_bn, x, t, layer_rules={"features.2": "zplus"})
    with pytest.raises(ConfigError, match="zbox rule .* 'features.4' does not"):
        ours(vgg11_bn, x, t, layer_rules={"features.4": "zbox"})
    with pytest.raises(ConfigError, match="'features.1'.*merged into 'features.0'.*'pass'"):
        ours(vgg11_bn, x, t, layer_rules={"features.0": "pass"})
    with pytest.raises(ConfigError, match="alpha - beta must be 1"):
        xai_core.get_attributor("lrp", alpha=3.0, beta=1.0)
    with pytest.raises(ConfigError, match="stabilizer"):
        xai_core.get_attributor("lrp", stabilizer=0.0)


class _WithLayerNorm(nn.Module):
    def __init__(self, first: nn.Module):
        super().__init__()
        self.first = first
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        x = self.relu(self.norm(self.conv(self.first(x))))
        return self.head(self.pool(x).flatten(1))


class _PaddedConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))


def test_unsupported_layers_are_named_and_left_intact():
    torch.manual_seed(0)
    model = _WithLayerNorm(nn.Identity()).eval()
    x = torch.randn(2, 3, 8, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    message = r"layer 'norm' \(GroupNorm\).*layer_rules: \{'norm': pass\}"
    with pytest.raises(ConfigError, match=message):
        ours(model, x, 0)
    attribution = ours(model, x, 0, layer_rules={"norm": "pass"})
    assert torch.isfinite(attribution.maps).all()
    # A batch norm with no layer before it cannot be merged.
    stray = _WithLayerNorm(nn.BatchNorm2d(3)).eval()
    with pytest.raises(ConfigError, match=r"'first' \(BatchNorm2d\).*has none"):
        ours(stray, x, 0, layer_rules={"norm": "pass"})
    # A convolution whose class computes something else (timm's Conv2dSame pads on its own).
    odd = _WithLayerNorm(_PaddedConv(3, 3, 3)).eval()
    with pytest.raises(ConfigError, match=r"'first' \(_PaddedConv\): .*forward differs"):
        ours(odd, x, 0, layer_rules={"norm": "pass"})
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert hook_count(model) == 0 and hook_count(stray) == 0 and hook_count(odd) == 0


def test_model_left_exactly_as_found(resnet18, batch):
    x, t = batch
    resnet18.layer1.register_forward_hook(lambda *args: None)  # the caller's own hook stays
    before = {k: v.clone() for k, v in resnet18.state_dict().items()}
    hooks, modes = hook_count(resnet18), [m.training for m in resnet18.modules()]
    resnet18.layer2.train()
    modes = [m.training for m in resnet18.modules()]
    flags = [p.requires_grad for p in resnet18.parameters()]
    for composite in ("epsilon_gamma_box", "epsilon_plus_flat"):
        ours(resnet18, x, t, composite=composite)
    after = resnet18.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hook_count(resnet18) == hooks
    assert [m.training for m in resnet18.modules()] == modes
    assert [p.requires_grad for p in resnet18.parameters()] == flags
    assert not any("forward" in vars(m) for m in resnet18.modules())
    resnet18.layer2.eval()
    resnet18.layer1._forward_hooks.clear()


def test_channels_last_and_metadata(vgg11_bn, batch):
    x, t = batch
    first = ours(vgg11_bn, x, t, channels_last=False)
    second = ours(vgg11_bn, x, t, channels_last=True)
    assert relative_error(second.maps, first.maps) <= float32_bound("vgg11_bn")
    assert first.metadata["rules"] == {"flat": 1, "zplus": 7, "epsilon": 3, "pass": 10, "norm": 1}
    assert first.metadata["merged_batch_norms"] == 8
