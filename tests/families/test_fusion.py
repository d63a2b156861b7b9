"""Folding batch norms into convolutions: the same function, the model itself untouched."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from numerics import assert_float32_close
from timm.layers import BatchNormAct2d, Conv2dSame, StdConv2d
from torch import nn

from xai_core.nn.fusion import foldable_pairs, folded_batch_norm


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from the identity, so folding is not
    trivially right."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.1)
                module.weight.copy_(torch.randn(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator) * 0.5)
    return model.eval()


def folded_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The folded model's output, ``None`` when it did not fold; checks that the model is its
    old self afterwards."""
    before = copy.deepcopy(model.state_dict())
    modules = dict(model.named_modules())
    with folded_batch_norm(model, x) as folded, torch.no_grad():
        output = model(x) if folded else None
        if folded:
            assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert dict(model.named_modules()) == modules
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    return output


def assert_same_function(model: nn.Module, x: torch.Tensor, depth: int, fan_in: int) -> None:
    output = folded_output(model, x)
    assert output is not None
    with torch.no_grad():
        expected = model(x)
    # Folded and unfolded forward passes round differently: within the network's float32 bound.
    assert_float32_close(output, expected, depth=depth, fan_in=fan_in)


def test_torchvision_resnet_folds_every_batch_norm_and_gets_its_own_back():
    torch.manual_seed(0)
    model = randomize_batch_norms(torchvision.models.resnet18(num_classes=10))
    weight = model.conv1.weight
    assert_same_function(model, torch.randn(2, 3, 64, 64), depth=18, fan_in=3 * 3 * 512)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20
    assert model.conv1.weight is weight and model.conv1.bias is None


def test_the_model_gets_its_own_back_after_an_exception():
    model = randomize_batch_norms(torchvision.models.resnet18(num_classes=10))
    bn = model.bn1
    with pytest.raises(RuntimeError, match="inside"):
        with folded_batch_norm(model, torch.randn(1, 3, 32, 32)) as folded:
            assert folded and model.bn1 is not bn
            raise RuntimeError("inside")
    assert model.bn1 is bn and model.conv1.bias is None


def test_timm_norm_act_and_same_padding_fold_keeping_the_activation(lite0, sample_batch):
    """EfficientNet-Lite0: timm's BatchNormAct2d (batch norm + ReLU6) after Conv2dSame and plain
    convolutions; the activation stays."""
    model = lite0.module.eval()
    pairs, _ = foldable_pairs(model, sample_batch[:1])
    modules = dict(model.named_modules())
    assert len(pairs) == sum(isinstance(m, BatchNormAct2d) for m in model.modules()) == 49
    assert any(isinstance(modules[conv], Conv2dSame) for conv, _ in pairs)
    with folded_batch_norm(model, sample_batch) as folded:
        assert folded
        assert isinstance(model.get_submodule("blocks.2.0.bn1")[1], nn.ReLU6)
    assert isinstance(model.get_submodule("blocks.2.0.bn1"), BatchNormAct2d)
    assert_same_function(model, sample_batch, depth=50, fan_in=1280)  # Lite0


class ConvBn(nn.Module):
    def __init__(self, conv: nn.Module, skip: bool = False, reads_norm: bool = False):
        super().__init__()
        self.conv, self.bn, self.skip, self.reads_norm = conv, nn.BatchNorm2d(4), skip, reads_norm

    def forward(self, x):
        y = self.conv(x)
        out = self.bn(y)
        if self.reads_norm:  # a model that looks into its batch norm: it is gone once folded
            out = out * self.bn.weight.sign()[:, None, None]
        # A skip connection reading the convolution's own output: folding would change it.
        return out + y if self.skip else out


def test_what_does_not_fold_gives_none():
    x = torch.randn(2, 3, 16, 16)
    plain = randomize_batch_norms(ConvBn(nn.Conv2d(3, 4, 3, padding=1)))
    assert folded_output(plain, x) is not None
    # The convolution's output feeds something besides the batch norm: the check catches it.
    skip = randomize_batch_norms(ConvBn(nn.Conv2d(3, 4, 3, padding=1), skip=True))
    assert foldable_pairs(skip, x)[0] == [("conv", "bn")]
    assert folded_output(skip, x) is None
    # Looking into the batch norm fails once it is folded: not folded, the model intact.
    reads = randomize_batch_norms(ConvBn(nn.Conv2d(3, 4, 3, padding=1), reads_norm=True))
    assert folded_output(reads, x) is None
    assert isinstance(reads.bn, nn.BatchNorm2d) and reads.conv.bias is not None
    # Weight standardization transforms the weight in forward: not a convolution to fold into.
    standardized = randomize_batch_norms(ConvBn(StdConv2d(3, 4, 3, padding=1)))
    assert foldable_pairs(standardized, x)[0] == []
    assert folded_output(standardized, x) is None
    # Training mode normalizes with the batch's statistics.
    assert folded_output(plain.train(), x) is None


def test_a_model_without_batch_norm_is_not_even_run():
    calls = []
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    assert folded_output(model, torch.randn(1, 3, 8, 8)) is None
    assert calls == []


@pytest.mark.parametrize("name", ["occlusion", "rise"])
def test_perturbation_methods_fold_and_give_the_same_maps(tiny_resnet, images64, name):
    import xai_core

    randomize_batch_norms(tiny_resnet.module)
    params = {"occlusion": {"window": 32, "stride": 16}, "rise": {"n_masks": 32, "grid": 4}}[name]
    folded = xai_core.get_attributor(name, **params).attribute(tiny_resnet, images64, 3)
    plain = xai_core.get_attributor(name, fold_batch_norm=False, **params).attribute(
        tiny_resnet, images64, 3
    )
    assert folded.metadata["folded_batch_norm"] is True
    assert "folded_batch_norm" not in plain.metadata
    # Score differences of ResNet-10-T's forward passes (12 layers, 3x3x512 wide), folded or not.
    assert_float32_close(folded.maps, plain.maps, depth=12, fan_in=3 * 3 * 512)
