"""Benchmark: ``lrp`` against zennit (its reference) on the same model and batch, in one run, for
each named composite. Run by hand.

    .venv/bin/python benchmarks/bench_lrp.py [--threads 2] [--repeats 5] [--batch 8] [--size 64]
                                             [--models vgg16_bn resnet18]

Models: torchvision ``vgg16_bn`` and ``resnet18`` with random weights (``weights=None``; the cost
does not depend on the weights) and batch-norm statistics drawn at random, a random batch, fixed
targets. zennit runs its ``Gradient`` attributor with the composite of the same name and its
canonizer (``SequentialMergeBatchNorm`` for VGG, ``ResNetCanonizer`` for ResNet), started from
the target logit, and sums the relevance over channels, as ``lrp`` does. The composite (and its
canonizers) is registered and removed on every call, as ``lrp`` sets up its hooks on every call.

Ours and zennit alternate within each repeat (after one warm-up of each); the best time of each
is kept and the ratio ``zennit / ours`` printed (above 1: ours is faster). The maps are checked
to agree first (to 1e-4 of the largest value: zennit's merged batch norms still divide by
``sqrt(1 + eps)``, see tests/plugins/lrp/test_lrp.py). The load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("XAI_CORE_OFFLINE", "1")
os.environ.setdefault("XAI_CORE_DISABLE_PLUGIN_AUTOLOAD", "1")

import torch  # noqa: E402
from _common import interleaved_best, parser_with  # noqa: E402
from torch import Tensor, nn  # noqa: E402

COMPOSITES = ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus")


def random_model(arch: str) -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model


def zennit_maps(model: nn.Module, arch: str, composite: str, x: Tensor, targets: Tensor) -> Tensor:
    from xai_core_plugins.lrp import pixel_bounds
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import COMPOSITES as ZENNIT
    from zennit.torchvision import ResNetCanonizer

    from xai_core.contracts.model import Preprocessing

    canonizer = ResNetCanonizer() if arch.startswith("resnet") else SequentialMergeBatchNorm()
    kwargs: dict = {"canonizers": [canonizer]}
    if composite == "epsilon_gamma_box":
        low, high = pixel_bounds(Preprocessing())
        kwargs.update(low=low, high=high)

    def initial(output: Tensor) -> Tensor:
        one_hot = torch.zeros_like(output)
        one_hot[torch.arange(len(targets)), targets] = 1.0
        return one_hot * output

    with Gradient(model, ZENNIT[composite](**kwargs)) as attributor:
        _, relevance = attributor(x, initial)
    return relevance.sum(1)


def bench_model(
    arch: str, x: Tensor, targets: Tensor, repeats: int, channels_last: bool
) -> list[tuple[str, float, float]]:
    """``(composite, ours seconds, zennit seconds)`` for every composite on ``arch``."""
    import xai_core

    model = random_model(arch)
    rows = []
    for composite in COMPOSITES:
        lrp = xai_core.get_attributor("lrp", composite=composite, channels_last=channels_last)

        def ours(lrp=lrp) -> Tensor:
            return lrp.attribute(model, x, targets).maps

        def reference(composite=composite) -> Tensor:
            return zennit_maps(model, arch, composite, x, targets)

        expected = reference()
        gap = float((ours() - expected).abs().max() / expected.abs().max())
        assert gap < 1e-4, f"{arch} {composite}: maps differ from zennit's by {gap:.3g}"
        best = interleaved_best({"ours": ours, "zennit": reference}, repeats)
        rows.append((composite, best["ours"], best["zennit"]))
    return rows


def main() -> None:
    parser = parser_with(__doc__, threads=2, repeats=5, batch=8, size=64)
    parser.add_argument("--models", nargs="+", default=["vgg16_bn", "resnet18"])
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=True,
        help="lrp's channels_last parameter (its default); zennit runs on the NCHW batch",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator)
    targets = torch.tensor([(17 * i + 3) % 1000 for i in range(args.batch)])
    print(
        f"threads {args.threads}, batch {args.batch} at {args.size} px, best of {args.repeats}, "
        f"channels_last {args.channels_last}"
    )
    print(f"{'model':10} {'composite':22} {'ours s':>8} {'zennit s':>9} {'zennit/ours':>12}")
    for arch in args.models:
        for composite, ours_s, ref_s in bench_model(
            arch, x, targets, args.repeats, args.channels_last
        ):
            print(f"{arch:10} {composite:22} {ours_s:8.3f} {ref_s:9.3f} {ref_s / ours_s:12.2f}")
    print("load average (1, 5, 15 min):", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
