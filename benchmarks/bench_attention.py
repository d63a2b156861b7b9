"""Benchmark: ``attention_rollout`` and ``attention_gradients`` against straightforward reference
implementations, on the same model and batch, in one run. Run by hand.

    .venv/bin/python benchmarks/bench_attention.py [--threads 2] [--repeats 5] [--batch 8]
        [--models ARCH ...]

Models: timm ``vit_tiny_patch16_224`` and ``deit_tiny_distilled_patch16_224`` at 224 px with
random weights (``pretrained=False``; the cost does not depend on the weights), a random batch,
fixed targets. References (written here, in the manner of the widely used code):

* rollout: jacobgil/vit-explain's ``VITAttentionRollout``: forward hooks on each block's
  ``attn_drop`` with fused attention off, then a loop over the blocks (heads fused by their
  mean, identity added, rows renormalised, matrix product), the class token's row per image.
* gradients: Chefer et al.'s ``generate_relevance`` (hila-chefer/Transformer-MM-Explainability):
  hooks that save each block's attention and, through a tensor hook, its gradient; a
  ``backward`` of the target logits with the parameters requiring gradients (their models are
  not frozen); then per image a loop over the blocks, ``R += relu(grad * A).mean(heads) @ R``.

Ours and the reference alternate within each repeat (after one warm-up of each); the best time
of each is kept and the ratio ``reference / ours`` printed (above 1: ours is faster). Maps are
checked to agree (``normalize: none``) before timing. The load average is printed beside them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

os.environ.setdefault("XAI_CORE_OFFLINE", "1")
os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import interleaved_best, parser_with  # noqa: E402
from torch import Tensor, nn  # noqa: E402

MODELS = ("vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224")


def _upsampled(rows: Tensor, prefix: int, size: int) -> Tensor:
    side = int((rows.shape[-1] - prefix) ** 0.5)
    grid = rows[:, prefix:].reshape(-1, 1, side, side).float()
    return F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def _readout(relevance: Tensor, prefix: int) -> Tensor:
    """The class token's row; for DeiT the mean of the class and distillation rows (what the
    plugin's ``tokens: auto`` reads)."""
    return relevance[:prefix].mean(dim=0) if prefix == 2 else relevance[0]


@contextmanager
def attention_hooks(model: nn.Module, hook: Callable[[int], Callable]) -> Iterator[None]:
    """Fused attention off and the forward hook ``hook(index)`` on each block's ``attn_drop``
    (whose output is the block's attention), as the references read it; all undone after."""
    handles = []
    flags = []
    for index, block in enumerate(model.blocks):
        flags.append(block.attn.fused_attn)
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(hook(index)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for block, flag in zip(model.blocks, flags):
            block.attn.fused_attn = flag


def reference_rollout(model: nn.Module, x: Tensor) -> Tensor:
    attentions: list[Tensor] = []

    def save(_index: int) -> Callable:
        return lambda _m, _i, out: attentions.append(out.cpu())

    with attention_hooks(model, save), torch.no_grad():
        model(x)
    prefix = model.num_prefix_tokens
    rows = []
    for i in range(len(x)):
        result = torch.eye(attentions[0].shape[-1])
        for attn in attentions:
            fused = attn[i].mean(dim=0)
            a = (fused + torch.eye(fused.shape[-1])) / 2
            a = a / a.sum(dim=-1, keepdim=True)
            result = a @ result
        rows.append(_readout(result, prefix))
    return _upsampled(torch.stack(rows), prefix, x.shape[-1])


def reference_chefer(model: nn.Module, x: Tensor, targets: list[int]) -> Tensor:
    attentions: list[Tensor] = []
    gradients: dict[int, Tensor] = {}

    def save(index: int) -> Callable:
        def hook(_module: nn.Module, _inputs: object, out: Tensor) -> None:
            attentions.append(out)
            out.register_hook(lambda grad: gradients.__setitem__(index, grad))

        return hook

    with attention_hooks(model, save), torch.enable_grad():
        logits = model(x)
        one_hot = torch.zeros_like(logits)
        one_hot[torch.arange(len(x)), targets] = 1
        model.zero_grad()
        (one_hot * logits).sum().backward()
    model.zero_grad(set_to_none=True)
    prefix = model.num_prefix_tokens
    rows = []
    for i in range(len(x)):
        tokens = attentions[0].shape[-1]
        result = torch.eye(tokens)
        for index, attn in enumerate(attentions):
            cam = (gradients[index][i] * attn[i].detach()).clamp(min=0).mean(dim=0)
            result = result + cam @ result
        rows.append(_readout(result, prefix))
    return _upsampled(torch.stack(rows), prefix, x.shape[-1])


def bench_model(
    arch: str, x: Tensor, targets: list[int], repeats: int
) -> list[tuple[str, float, float]]:
    """``(method, ours seconds, reference seconds)`` for both methods on ``arch``."""
    import timm

    import xai_core
    from xai_core.contracts.model import as_model_handle

    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False).eval()
    handle = as_model_handle(model)
    rollout = xai_core.get_attributor("attention_rollout", normalize="none")
    gradients = xai_core.get_attributor("attention_gradients", normalize="none")
    cases = {
        "attention_rollout": (
            lambda: rollout.attribute(handle, x, targets).maps,
            lambda: reference_rollout(model, x),
        ),
        "attention_gradients": (
            lambda: gradients.attribute(handle, x, targets).maps,
            lambda: reference_chefer(model, x, targets),
        ),
    }
    rows = []
    for method, (ours, reference) in cases.items():
        gap = (ours() - reference()).abs().max().item()
        assert gap < 1e-5, f"{arch} {method}: maps differ from the reference by {gap:.3g}"
        best = interleaved_best({"ours": ours, "ref": reference}, repeats)
        rows.append((method, best["ours"], best["ref"]))
    return rows


def main() -> None:
    parser = parser_with(__doc__, threads=2, repeats=5, batch=8)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224, generator=generator)
    targets = [(17 * i + 3) % 1000 for i in range(args.batch)]
    print(f"threads {args.threads}, batch {args.batch} at 224 px, best of {args.repeats}")
    print(f"{'model':34} {'method':20} {'ours s':>8} {'ref s':>8} {'ref/ours':>9}")
    for arch in args.models:
        for method, ours_s, ref_s in bench_model(arch, x, targets, args.repeats):
            ratio = ref_s / ours_s
            print(f"{arch:34} {method:20} {ours_s:8.3f} {ref_s:8.3f} {ratio:9.2f}")
    print("load average (1, 5, 15 min):", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
