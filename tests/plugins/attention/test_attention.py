"""Attention plugin (plugins/attention/): attention rollout and gradient-weighted attention on
timm ViT and DeiT, against the papers' formulas written here.

The reference runs its own forward pass of the transformer (embedding, then each block by hand
with the attention computed from the block's qkv projection), checked against the model's
logits, so the attention matrices and their gradients do not come from the plugin's capture.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from numerics import assert_float32_close
from torch import Tensor, nn

import xai_core
from xai_core.contracts.model import as_model_handle
from xai_core.errors import XaiError
from xai_core.testing import hook_count

SIZE = 64
#: Fewer blocks than the real models' 12 keep the file fast; the formulas chain over any depth.
DEPTH = 4
#: The float32 depth of these models' forward pass (tests/numerics.py): 6 layers a block
#: (norm, qkv, attention, proj, norm, MLP), whose widest reduction is the MLP's 768.
LAYERS, FAN_IN = 6 * DEPTH, 768
#: Rollout and Chefer's rule add a float64 product per block and the bilinear readout.
ROLLOUT_DEPTH = LAYERS + DEPTH + 1


def _vit() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=SIZE, depth=DEPTH
    ).eval()


def _deit() -> nn.Module:
    torch.manual_seed(1)
    return timm.create_model(
        "deit_tiny_distilled_patch16_224", pretrained=False, img_size=SIZE, depth=DEPTH
    ).eval()


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {"vit": _vit(), "deit": _deit()}


@pytest.fixture(scope="module")
def inputs() -> Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def manual_forward(model: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Logits and each block's attention probabilities ``[N, heads, L, L]``, computed by hand
    from the blocks' qkv projections (in the autograd graph of the logits)."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    attentions = []
    for block in model.blocks:
        attn = block.attn
        h = block.norm1(x)
        n, length, _ = h.shape
        qkv = attn.qkv(h).reshape(n, length, 3, attn.num_heads, attn.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        probs = (q @ k.transpose(-2, -1) * attn.head_dim**-0.5).softmax(dim=-1)
        attentions.append(probs)
        out = attn.proj((probs @ v).transpose(1, 2).reshape(n, length, -1))
        x = x + block.ls1(out)
        x = x + block.ls2(block.mlp(block.norm2(x)))
    return model.forward_head(model.norm(x)), attentions


def _readout(relevance: Tensor, model: nn.Module) -> Tensor:
    """The paper's map: the class token's row over the patches (the mean of the class and
    distillation rows for DeiT, whose logits average both heads), upsampled bilinearly."""
    prefix = model.num_prefix_tokens
    rows = relevance[:, :prefix].mean(dim=1) if prefix == 2 else relevance[:, 0]
    side = int((relevance.shape[-1] - prefix) ** 0.5)
    grid = rows[:, prefix:].reshape(-1, 1, side, side).float()
    return F.interpolate(grid, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]


def reference_rollout(attentions: list[Tensor]) -> Tensor:
    """Abnar and Zuidema: ``R = prod_l rownorm(0.5 mean_heads(A_l) + 0.5 I)``."""
    length = attentions[0].shape[-1]
    eye = torch.eye(length, dtype=torch.float64)
    result = eye.expand(attentions[0].shape[0], length, length)
    for attn in attentions:
        a = 0.5 * attn.detach().double().mean(dim=1) + 0.5 * eye
        result = (a / a.sum(dim=-1, keepdim=True)) @ result
    return result


def reference_chefer(attentions: list[Tensor], logits: Tensor, targets: Tensor) -> Tensor:
    """Chefer et al.: ``R = I; R += mean_heads(relu(dy_t/dA * A)) @ R`` per block."""
    score = logits[torch.arange(len(targets)), targets].sum()
    grads = torch.autograd.grad(score, attentions)
    length = attentions[0].shape[-1]
    result = torch.eye(length, dtype=torch.float64).repeat(len(targets), 1, 1)
    for attn, grad in zip(attentions, grads):
        cam = (grad.double() * attn.detach().double()).clamp(min=0).mean(dim=1)
        result = result + cam @ result
    return result


def _handle(model: nn.Module) -> xai_core.ModelHandle:
    return as_model_handle(model)


@pytest.mark.parametrize("kind", ["vit", "deit"])
def test_rollout_equals_the_papers_formula(models, inputs, kind):
    model = models[kind]
    with torch.no_grad():
        logits, attentions = manual_forward(model, inputs)
        # By hand vs timm's kernels (fused attention): another summation order.
        assert_float32_close(logits, model(inputs), depth=LAYERS, fan_in=FAN_IN)
    expected = _readout(reference_rollout(attentions), model)
    method = xai_core.get_attributor("attention_rollout", normalize="none")
    result = method.attribute(_handle(model), inputs, target=0)
    assert result.maps.shape == (2, SIZE, SIZE)
    assert result.metadata["prefix_tokens"] == model.num_prefix_tokens
    # float32 attentions from timm's blocks vs from the hand-written forward pass.
    assert_float32_close(result.maps, expected, depth=ROLLOUT_DEPTH, fan_in=FAN_IN)
    # Not a constant: the map has structure to compare.
    assert expected.std() > 1e-4


@pytest.mark.parametrize("kind", ["vit", "deit"])
def test_attention_gradients_equal_chefers_formula(models, inputs, kind):
    model = models[kind]
    targets = torch.tensor([3, 7])
    x = inputs.clone().requires_grad_(True)
    logits, attentions = manual_forward(model, x)
    expected = _readout(reference_chefer(attentions, logits, targets), model)
    method = xai_core.get_attributor("attention_gradients", normalize="none")
    result = method.attribute(_handle(model), inputs, target=targets.tolist())
    # float32 attentions and their gradients from timm's blocks vs from the hand-written pass.
    assert_float32_close(result.maps, expected, depth=ROLLOUT_DEPTH, fan_in=FAN_IN)
    assert expected.std() > 1e-5
    # Class-specific: another target gives another map (rollout gives the same one).
    other = method.attribute(_handle(model), inputs, target=[5, 1]).maps
    # 1e-4: how far apart two targets' maps must at least be, not a rounding bound.
    assert not torch.allclose(other, result.maps, atol=1e-4)
    rollout = xai_core.get_attributor("attention_rollout")
    assert torch.equal(
        rollout.attribute(_handle(model), inputs, target=[3, 7]).maps,
        rollout.attribute(_handle(model), inputs, target=[5, 1]).maps,
    )


def test_rollout_head_fusion_and_discard_ratio(models, inputs):
    """``max`` fusion and ``discard_ratio`` as jacobgil/vit-explain define them (with its rows
    renormalised per row and the filter applied to every image, not only the first)."""
    model = models["vit"]
    with torch.no_grad():
        _, attentions = manual_forward(model, inputs)
    length = attentions[0].shape[-1]
    eye = torch.eye(length, dtype=torch.float64)
    result = eye.repeat(2, 1, 1)
    for attn in attentions:
        fused = attn.double().amax(dim=1)
        flat = fused.reshape(2, -1)
        for i in range(2):
            order = [j for j in flat[i].argsort().tolist() if j != 0]
            flat[i, order[: int(length * length * 0.5)]] = 0
        a = 0.5 * flat.view(2, length, length) + 0.5 * eye
        result = (a / a.sum(dim=-1, keepdim=True)) @ result
    method = xai_core.get_attributor(
        "attention_rollout", normalize="none", head_fusion="max", discard_ratio=0.5
    )
    maps = method.attribute(_handle(model), inputs, target=0).maps
    assert_float32_close(maps, _readout(result, model), depth=ROLLOUT_DEPTH, fan_in=FAN_IN)


@pytest.mark.parametrize("name", ["attention_rollout", "attention_gradients"])
@pytest.mark.parametrize(
    "arch", ["timm/vit_tiny_patch16_224", "timm/deit_tiny_distilled_patch16_224"]
)
def test_runs_from_a_model_name_and_restores_the_model(name, arch):
    handle = xai_core.load_model(arch, pretrained=False, img_size=SIZE, depth=DEPTH)
    model = handle.module
    attention = [block.attn for block in model.blocks]
    # A mixed state, to see that each flag comes back as it was, not set to a default.
    for i, attn in enumerate(attention):
        attn.fused_attn = i % 2 == 0
    flags = [attn.fused_attn for attn in attention]
    hooks = hook_count(model)
    x = torch.randn(1, 3, SIZE, SIZE)
    result = xai_core.get_attributor(name).attribute(handle, x)
    assert result.maps.shape == (1, SIZE, SIZE) and torch.isfinite(result.maps).all()
    assert result.maps.min() == 0
    # Normalised to [0, 1], then upsampled bilinearly: a few roundings of the largest value.
    assert_float32_close(result.maps.max(), torch.tensor(1.0), depth=3)
    assert [attn.fused_attn for attn in attention] == flags
    assert hook_count(model) == hooks

    # Also after a failure in the middle of the forward pass.
    def fail(*_args):
        raise RuntimeError("head failed")

    handle_fail = model.head.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="head failed"):
        xai_core.get_attributor(name).attribute(handle, x, target=0)
    handle_fail.remove()
    assert [attn.fused_attn for attn in attention] == flags
    assert hook_count(model) == hooks


@pytest.mark.parametrize("name", ["attention_rollout", "attention_gradients"])
def test_a_cnn_gets_a_clear_error(name):
    handle = xai_core.load_model("timm/resnet10t", pretrained=False)
    with pytest.raises(XaiError) as info:
        xai_core.get_attributor(name).attribute(handle, torch.randn(1, 3, 32, 32), target=0)
    message = str(info.value)
    assert "timm/resnet10t" in message
    assert "vision transformer (timm vit_* or deit_*" in message
    assert "grad_cam" in message


def test_register_tokens_and_token_choices():
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
        reg_tokens=2, num_classes=5,
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        _, attentions = manual_forward(model, x)
    relevance = reference_rollout(attentions)[0]
    maps = {}
    for tokens in ("auto", "class", "prefix_mean", "patch_mean"):
        method = xai_core.get_attributor(
            "attention_rollout", tokens=tokens, normalize="none", upsample="nearest"
        )
        result = method.attribute(_handle(model), x, target=0)
        assert result.metadata["prefix_tokens"] == 3 and result.metadata["grid"] == "4x4"
        maps[tokens] = result.maps[0, ::8, ::8].double()
    expected = {
        "class": relevance[0, 3:],
        "prefix_mean": relevance[:3, 3:].mean(dim=0),
        "patch_mean": relevance[3:, 3:].mean(dim=0),
    }
    for tokens, row in expected.items():
        # Two blocks of 6 layers, +2 for the rollout's products, +1 for the token mean.
        assert_float32_close(maps[tokens].flatten(), row, depth=2 * 6 + 2 + 1, fan_in=FAN_IN)
    # The head reads the class token only: registers are not part of ``auto``.
    assert torch.equal(maps["auto"], maps["class"])


def test_average_pooled_vit_reads_the_patch_tokens():
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
        class_token=False, global_pool="avg", num_classes=5,
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    result = xai_core.get_attributor("attention_gradients").attribute(_handle(model), x)
    assert result.metadata["readout"] == "mean of the patch tokens' rows"
    with pytest.raises(XaiError, match="tokens: class needs prefix tokens"):
        xai_core.get_attributor("attention_rollout", tokens="class").attribute(
            _handle(model), x
        )
