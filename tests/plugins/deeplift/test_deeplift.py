"""The ``deeplift`` plugin: ``deeplift``, ``deeplift_shap`` and ``gradient_shap`` against Captum's
``DeepLift``, ``DeepLiftShap`` and ``GradientShap`` on three architectures, DeepLIFT's
summation-to-delta where the rescale rule makes it exact, a direct computation of the rule on
ReLU6, and the shared baseline API's errors."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import torch
import torchvision
from captum._utils import common as captum_common
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import DeepLiftShap as CaptumDeepLiftShap
from captum.attr import GradientShap as CaptumGradientShap
from captum.attr._core import deep_lift as captum_deep_lift
from captum.attr._core import gradient_shap as captum_gradient_shap
from captum.attr._core.noise_tunnel import NoiseTunnel
from numerics import assert_float32_close, float32_atol
from torch import nn

import xai_core
from xai_core import AttributionContext
from xai_core.contracts.model import as_model_handle
from xai_core.errors import ConfigError
from xai_core.nn.hooks import HookRecorder, model_state
from xai_core.nn.images import Baseline, baseline_set

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: (depth, widest reduction) of each model, for the float32 bound of ours vs Captum's
#: multipliers back through it (tests/numerics.py).
DEPTH = {
    "efficientnet_lite0": (50, 1280),
    "resnet18": (18, 3 * 3 * 512),
    "mobilenet_v3_small": (52, 1024),
}


def _eval(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _resnet18() -> nn.Module:
    torch.manual_seed(0)
    return _eval(torchvision.models.resnet18(weights=None))


def _mobilenet() -> nn.Module:
    torch.manual_seed(0)
    return _eval(torchvision.models.mobilenet_v3_small(weights=None))


def _two_relus(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``BasicBlock.forward`` with its second ReLU a module of its own."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    return block.relu2(block.bn2(block.conv2(out)) + identity)


def _captum_copy(name: str, model: nn.Module) -> nn.Module:
    """The model Captum can run: torchvision's ResNet calls each block's ReLU module twice,
    which Captum's DeepLift refuses, so its copy gets a second ReLU per block (same function)."""
    if name != "resnet18":
        return model
    import copy

    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, torchvision.models.resnet.BasicBlock):
            module.relu2 = nn.ReLU(inplace=True)
            module.forward = types.MethodType(_two_relus, module)
    return twin


@pytest.fixture(scope="module")
def models():
    lite = xai_core.load_model("efficientnet_lite0")
    return {
        "efficientnet_lite0": (lite, 64),
        "resnet18": (as_model_handle(_resnet18()), 48),
        "mobilenet_v3_small": (as_model_handle(_mobilenet()), 48),
    }


def _inputs(size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _references(size: int, count: int = 3) -> torch.Tensor:
    return 0.5 * torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(7))


def per_channel(method, handle, inputs, targets):
    """``method.input_attributions`` as ``attribute`` runs it (eval mode, frozen parameters)."""
    context = AttributionContext(handle=handle, hooks=HookRecorder())
    with model_state(handle.module), context.hooks:
        out = method.input_attributions(handle.module, inputs, torch.tensor(targets), context)
    return out, context.metadata


# Captum's DeepLift with the rule on the activations it leaves out: what ``rules: all`` does on
# networks without chained rule modules or overlapping max pools.
EXTENDED = {
    nn.ReLU6: captum_deep_lift.nonlinear,
    nn.Hardswish: captum_deep_lift.nonlinear,
    nn.Hardsigmoid: captum_deep_lift.nonlinear,
}

CASES = [
    ("efficientnet_lite0", "captum"),
    ("efficientnet_lite0", "all"),
    ("resnet18", "captum"),
    ("mobilenet_v3_small", "captum"),
    ("mobilenet_v3_small", "all"),
]


@pytest.mark.parametrize("name, rules", CASES)
def test_deeplift_equals_captum(models, name, rules, monkeypatch, tmp_path):
    handle, size = models[name]
    inputs, targets = _inputs(size), [1, 5]
    baseline = _references(size, 1)[0]
    path = tmp_path / "baseline.npy"
    np.save(path, baseline.numpy())
    method = xai_core.get_attributor("deeplift", baseline=str(path), rules=rules)
    ours, metadata = per_channel(method, handle, inputs, targets)
    if rules == "all":
        monkeypatch.setattr(
            captum_deep_lift,
            "SUPPORTED_NON_LINEAR",
            {**captum_deep_lift.SUPPORTED_NON_LINEAR, **EXTENDED},
        )
    reference, delta = CaptumDeepLift(_captum_copy(name, handle.module)).attribute(
        inputs.clone(), baseline[None], target=targets, return_convergence_delta=True
    )
    depth, fan_in = DEPTH[name]
    assert_float32_close(ours, reference, depth=depth, fan_in=fan_in)
    # Captum's convergence delta is the same summation check as the metadata's: a sum of
    # 3 x size x size attributions (rounding on the scale of the summands) minus the score
    # difference (the network's float32 bound).
    atol = float32_atol(ours.abs().sum(dim=(1, 2, 3)), depth=depth + 1, fan_in=3 * size * size)
    np.testing.assert_allclose(metadata["summation_gap"], delta.tolist(), rtol=0, atol=atol)


def test_deeplift_map_is_the_channel_sum(models):
    handle, size = models["resnet18"]
    inputs = _inputs(size)
    method = xai_core.get_attributor("deeplift", rules="captum")
    baseline = method.baseline.per_input(inputs, handle)
    reference = CaptumDeepLift(_captum_copy("resnet18", handle.module)).attribute(
        inputs.clone(), baseline, target=[3, 4]
    )
    result = method.attribute(handle, inputs, [3, 4])
    # Captum's multipliers back through ResNet-18, summed over 3 channels.
    assert_float32_close(result.maps, reference.sum(dim=1), depth=18 + 1, fan_in=3 * 3 * 512)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "mobilenet_v3_small"])
def test_deeplift_shap_equals_captum(models, name):
    handle, size = models[name]
    inputs, targets = _inputs(size, seed=1), [2, 0]
    references = _references(size)
    method = xai_core.get_attributor(
        "deeplift_shap", baselines=references, rules="captum", batch_size=4
    )
    ours, _ = per_channel(method, handle, inputs, targets)
    reference = CaptumDeepLiftShap(_captum_copy(name, handle.module)).attribute(
        inputs.clone(), references, target=targets
    )
    depth, fan_in = DEPTH[name]
    assert_float32_close(ours, reference, depth=depth, fan_in=fan_in)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "mobilenet_v3_small"])
def test_gradient_shap_equals_captum_with_the_same_draws(models, name, monkeypatch):
    handle, size = models[name]
    inputs, targets = _inputs(size, seed=2), [7, 9]
    references = _references(size)
    method = xai_core.get_attributor(
        "gradient_shap", baselines=references, samples=5, stdev=0.2, seed=3, batch_size=4
    )
    ours, _ = per_channel(method, handle, inputs, targets)

    # Captum draws the references, the noise and the path points itself; feed it ours.
    indices, alphas, noise = method.draws(len(references), tuple(inputs.shape[1:]))
    n = len(inputs)
    monkeypatch.setattr(
        captum_common.np.random, "choice", lambda count, size: np.tile(indices.numpy(), n)
    )
    monkeypatch.setattr(
        captum_gradient_shap.np.random,
        "uniform",
        lambda low, high, size: np.tile(alphas.numpy(), n),
    )
    monkeypatch.setattr(
        NoiseTunnel,
        "_add_noise_to_input",
        staticmethod(
            lambda x, stdev, k: x.repeat_interleave(k, dim=0) + (noise * stdev).repeat(n, 1, 1, 1)
        ),
    )
    reference = CaptumGradientShap(handle.module).attribute(
        inputs.clone(), references, n_samples=5, stdevs=0.2, target=targets
    )
    # 5 gradients back through the network, averaged: depth x 5 (tests/numerics.py).
    depth, fan_in = DEPTH[name]
    assert_float32_close(ours, reference, depth=depth * 5, fan_in=fan_in)


class ReluNet(nn.Module):
    """ReLUs as reused module, in place, functional and clipped (ReLU6), batch norm, an
    overlapping max pool and a residual sum: everything the rescale rule is exact on."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.act6 = nn.ReLU6()
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv1(x))))
        x = self.relu(self.conv2(x)) + x
        x = self.act6(torch.relu(self.conv3(x)) * 3)
        return self.head(x.mean(dim=(2, 3)))


def _relu_net() -> nn.Module:
    torch.manual_seed(0)
    net = ReluNet()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return _eval(net)


def test_summation_to_delta_on_a_relu_network():
    handle = as_model_handle(_relu_net())
    inputs = _inputs(20, n=3)
    method = xai_core.get_attributor("deeplift", baseline="uniform")
    result = method.attribute(handle, inputs, [0, 1, 3])
    baselines = method.baseline.per_input(inputs, handle)
    with torch.no_grad():
        logits, reference_logits = handle.module(inputs), handle.module(baselines)
    rows = torch.arange(3)
    difference = logits[rows, [0, 1, 3]] - reference_logits[rows, [0, 1, 3]]
    # Summation to delta holds exactly in reals; in float32 the sum of 3x20x20 attributions
    # rounds on the scale of its summands, and the two forwards through ReluNet (5 layers,
    # 3x3x8 reductions) on the scale of the scores.
    atol = (float32_atol(result.maps.abs().sum(dim=(1, 2)), depth=5 + 1, fan_in=3 * 20 * 20)
            + float32_atol(logits, depth=5, fan_in=3 * 3 * 8))
    np.testing.assert_allclose(result.maps.sum(dim=(1, 2)), difference, rtol=0, atol=atol)
    # The relative gap is the gap over |difference|: scaled back, within the same bound.
    relative = np.array(result.metadata["summation_gap_relative"])
    assert (relative * np.abs(result.metadata["score_difference"])).max() <= atol
    # Captum's rules leave ReLU6 and the functional ReLU linear and drop the pool's rule after
    # the ReLU: the sum is then off, which is why ``all`` is the default.
    captum_rules = xai_core.get_attributor("deeplift", baseline="uniform", rules="captum")
    gaps = captum_rules.attribute(handle, inputs, [0, 1, 3]).metadata["summation_gap_relative"]
    # Not rounding: those rules miss the sum by more than 1%.
    assert max(abs(g) for g in gaps) > 1e-2


def test_rescale_rule_by_hand_on_relu6_and_gelu():
    """One hidden layer, ``w2 . f(W1 x)``: DeepLIFT's multiplier of hidden unit ``j`` is
    ``w2_j (f(z_j) - f(z'_j)) / (z_j - z'_j)``, the attribution ``(x - x') * W1^T m``."""
    torch.manual_seed(0)
    for act in (nn.ReLU6(), nn.GELU(), nn.SiLU()):
        net = _eval(nn.Sequential(nn.Flatten(), nn.Linear(12, 16), act, nn.Linear(16, 2)))
        x, x_ref = 2 * torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
        method = xai_core.get_attributor("deeplift", baseline=x_ref)
        ours, _ = per_channel(method, as_model_handle(net), x, [1])
        w1, w2 = net[1].weight, net[3].weight[1]
        z, z_ref = net[1](x.flatten(1)), net[1](x_ref.flatten(1))
        m = w2 * (act(z) - act(z_ref)) / (z - z_ref)
        expected = ((x - x_ref).flatten(1) * (m @ w1)).view_as(x)
        # Two layers and the multiplier's quotient, 16 wide at most.
        assert_float32_close(ours, expected, depth=3, fan_in=16)


def test_reference_set_and_sum_of_deeplift_shap():
    handle = as_model_handle(_relu_net())
    inputs = _inputs(20, n=2)
    method = xai_core.get_attributor(
        "deeplift_shap", baselines=["black", "blur", "uniform"], uniform_count=2, batch_size=3
    )
    references = method.reference_set(inputs, AttributionContext(handle, HookRecorder()))
    assert references.shape == (2, 4, 3, 20, 20)  # blur depends on the input
    result = method.attribute(handle, inputs, [1, 2])
    with torch.no_grad():
        scores = handle.module(inputs)[[0, 1], [1, 2]]
        ref_scores = handle.module(references.flatten(0, 1)).view(2, 4, -1)[[0, 1], :, [1, 2]]
    expected = scores - ref_scores.mean(dim=1)
    # As for DeepLIFT above: the summands' rounding plus the forwards' (mean of 4 references).
    atol = (float32_atol(result.maps.abs().sum(dim=(1, 2)), depth=5 + 2, fan_in=3 * 20 * 20)
            + float32_atol(ref_scores, depth=5 + 1, fan_in=3 * 3 * 8))
    np.testing.assert_allclose(result.maps.sum(dim=(1, 2)), expected, rtol=0, atol=atol)
    # The set without blur is shared by all inputs.
    shared = baseline_set([Baseline.parse("black"), Baseline.parse("uniform")], inputs, handle)
    assert shared.shape == (1, 2, 3, 20, 20)


def test_gradient_shap_is_seeded_and_approaches_the_score_difference():
    handle = as_model_handle(_relu_net())
    inputs = _inputs(20, n=1)
    kwargs = {"baselines": ["black"], "samples": 64, "batch_size": 64}
    first = xai_core.get_attributor("gradient_shap", **kwargs).attribute(handle, inputs, [2])
    again = xai_core.get_attributor("gradient_shap", **kwargs).attribute(handle, inputs, [2])
    other = xai_core.get_attributor("gradient_shap", seed=1, **kwargs).attribute(
        handle, inputs, [2]
    )
    assert torch.equal(first.maps, again.maps) and not torch.equal(first.maps, other.maps)
    black = xai_core.get_attributor("deeplift").baseline.per_input(inputs, handle)
    with torch.no_grad():
        difference = (handle.module(inputs) - handle.module(black))[0, 2]
    # A Monte Carlo estimate of integrated gradients from black: close, not equal.
    assert abs(first.maps.sum() - difference) < 0.1 * abs(difference)


def test_module_reuse_and_functional_activations_follow_the_rule():
    """torchvision's ResNet calls one ReLU module twice per block: the rule applies per call
    (Captum refuses such models), equal to Captum on a copy with a ReLU per call."""
    model = _resnet18()
    inputs = _inputs(32)
    ours, _ = per_channel(
        xai_core.get_attributor("deeplift", baseline="zeros", rules="captum"),
        as_model_handle(model),
        inputs,
        [0, 1],
    )
    with pytest.raises(RuntimeError, match="used more than once"):
        CaptumDeepLift(model).attribute(inputs.clone(), target=[0, 1])
    reference = CaptumDeepLift(_captum_copy("resnet18", model)).attribute(
        inputs.clone(), target=[0, 1]
    )
    assert_float32_close(ours, reference, *DEPTH["resnet18"])


def test_bad_baselines_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown baseline 'blak'; did you mean 'black'.*zeros"):
        xai_core.get_attributor("deeplift", baseline="blak")
    with pytest.raises(ConfigError, match="does not exist"):
        xai_core.get_attributor("deeplift", baseline=str(tmp_path / "missing.npy"))
    with pytest.raises(ConfigError, match="is now called 'zeros'"):
        xai_core.get_attributor("deeplift", baseline="zero")
    with pytest.raises(ConfigError, match=r"baselines\[1\]: unknown baseline 'unifrom'.*'uniform'"):
        xai_core.get_attributor("gradient_shap", baselines=["black", "unifrom"])
    with pytest.raises(ConfigError, match="empty"):
        xai_core.get_attributor("deeplift_shap", baselines=[])
    with pytest.raises(ConfigError, match="stands for a tensor given from Python"):
        xai_core.get_attributor("deeplift", baseline="tensor")
    with pytest.raises(ConfigError, match="float tensor"):
        xai_core.get_attributor("deeplift", baseline=torch.zeros(3, 8))
    np.save(tmp_path / "small.npy", np.zeros((3, 8, 8), dtype=np.float32))
    handle = as_model_handle(_relu_net())
    method = xai_core.get_attributor("deeplift", baseline=str(tmp_path / "small.npy"))
    with pytest.raises(ConfigError, match=r"shape \(3, 8, 8\) does not fit inputs of shape"):
        method.attribute(handle, _inputs(20), [0, 1])
    method = xai_core.get_attributor("gradient_shap", baselines=torch.zeros(2, 3, 8, 8))
    with pytest.raises(ConfigError, match=r"a set \[B x 3x20x20\]"):
        method.attribute(handle, _inputs(20), [0, 1])


def test_a_baseline_per_input_follows_repeated_targets():
    handle = as_model_handle(_relu_net())
    inputs = _inputs(20)
    per_input = torch.stack([torch.zeros(3, 20, 20), torch.ones(3, 20, 20)])
    method = xai_core.get_attributor("deeplift", baseline=per_input)
    several = method.attribute(handle, inputs, [[0, 1], [2, 3]]).maps
    single = xai_core.get_attributor("deeplift", baseline=per_input[1]).attribute(
        handle, inputs[1:], [3]
    )
    # Batched otherwise: multipliers back through ReluNet (5 layers, 3x3x8 reductions).
    assert_float32_close(several[3], single.maps[0], depth=5, fan_in=3 * 3 * 8)


def test_rules_leave_no_trace(models):
    handle, size = models["mobilenet_v3_small"]
    inputs = _inputs(size, n=1)
    with torch.no_grad():
        before = handle.module(inputs)
    for rules in ("all", "captum"):
        xai_core.get_attributor("deeplift", rules=rules).attribute(handle, inputs, [0])
    with torch.no_grad():
        assert torch.equal(handle.module(inputs), before)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xai_core.get_attributor("deeplift").attribute(handle, inputs, [0])
