"""Which layers of a model compute each cell of their map from a small neighbourhood of the input
(their *reach*), measured with one probe pass: the candidates of incremental occlusion
(:mod:`.incremental`).

What does not live here: using those layers (:class:`.incremental.IncrementalOcclusion`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.nn.gradients import channels_last_layout
from xai_core.nn.hooks import HookRecorder, model_device

__all__ = ["LocalLayer", "local_layers", "may_reuse"]

#: The largest share of a layer's map that the crop recomputed per window may cover for that layer
#: to be worth reusing (the rest of the map is copied from the unoccluded image).
MAX_CROP_SHARE = 0.25
#: The same for a second, deeper layer, whose crop is cut from the first layer's (pasted) map
#: rather than run from the input: it may cover more, as its crop costs no early layers.
MAX_SECOND_SHARE = 0.5
#: First layers tried (deepest first) before occlusion gives up reusing activations and runs full
#: passes; also the second layers tried after each first one.
MAX_LAYER_TRIES = 4


@dataclass
class LocalLayer:
    """A layer whose output map at ``stride`` depends on the input only near each cell.

    Input pixels in cell ``c`` (a ``stride x stride`` block) change the output cells
    ``c - reach[0] .. c + reach[1]`` down the rows and ``c - reach[2] .. c + reach[3]`` across
    (the widest reach measured at the layer or before it, see :func:`local_layers`). ``crop`` is
    the size in cells of the input crop that recomputes every cell a window can change.
    """

    name: str
    module: nn.Module
    stride: int
    cells: tuple[int, int]
    reach: tuple[int, int, int, int]
    crop: tuple[int, int]

    @property
    def share(self) -> float:
        """The crop's share of the layer's map."""
        return self.crop[0] * self.crop[1] / (self.cells[0] * self.cells[1])

    def boxes(self, top: int, left: int, window: int, size: tuple[int, int]) -> tuple[int, ...]:
        """``(i0, i1, j0, j1, k, l)`` for a window at ``(top, left)``: the output cells
        ``[i0, i1) x [j0, j1)`` it can change and the crop's first cell ``(k, l)``."""
        s, (h, w), (up, down, left_, right) = self.stride, self.cells, self.reach
        u0, u1 = top // s, (min(top + window, size[0]) - 1) // s
        v0, v1 = left // s, (min(left + window, size[1]) - 1) // s
        i0, i1 = max(0, u0 - up), min(h, u1 + down + 1)
        j0, j1 = max(0, v0 - left_), min(w, v1 + right + 1)
        # The changed cells need the input cells that reach them: [i0 - down, i1 - 1 + up].
        k = min(max(0, i0 - down), h - self.crop[0])
        l_ = min(max(0, j0 - right), w - self.crop[1])
        return i0, i1, j0, j1, k, l_


def local_layers(
    model: nn.Module, shape: tuple[int, ...], window: int, max_share: float = MAX_CROP_SHARE
) -> list[LocalLayer]:
    """The layers of ``model`` worth reusing for occlusion windows of ``window`` pixels on
    inputs of ``shape`` ``[N, C, H, W]``, deepest first.

    A layer qualifies when it runs once per forward pass, returns one ``[N, C', H/s, W/s]`` map
    for a power-of-two stride ``2 <= s <= 32``, a block of input noise changes only cells near
    the block's own, and the crop per window is at most ``max_share`` of its map.

    The reach is measured with one forward pass of three random images: one, and two copies
    with a different noise block at its centre (aligned to every stride; the union of the two
    copies' changes, so that a unit clipped in one copy does not hide a cell). A layer's reach is
    the widest measured at it or before it. The pass stops at the first layer whose changes
    reach the border of its map: no layer after it can qualify. Qualifying is necessary, not
    sufficient (a skip connection around the layer escapes this test, and so does a layer that
    runs again after that point): occlusion checks the result against full passes before
    relying on a layer.
    """
    _, channels, height, width = shape
    strides = [2**e for e in range(1, 6) if height % 2**e == 0 and width % 2**e == 0]
    if not strides or not may_reuse(shape, window, max_share):
        return []
    block = strides[-1]
    top, left = (height // block // 2) * block, (width // block // 2) * block
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(1, channels, height, width, generator=generator).repeat(3, 1, 1, 1)
    probe[1:, :, top : top + block, left : left + block] = torch.randn(
        2, channels, block, block, generator=generator
    )
    probe = channels_last_layout(probe.to(model_device(model)))  # the layout: only faster
    recorder = _ReachRecorder(len(probe), (height, width), strides)
    modules = dict(model.named_modules())
    with HookRecorder() as hooks:
        for name, module in modules.items():
            if name:
                hooks.forward(module, recorder.hook(name))
        try:
            # No gradients; not inference mode, whose tensors have no version counter.
            with torch.no_grad():
                model(probe)
        except _ProbeDone:
            pass
        except Exception:  # a model that does not take this shape gains nothing here
            return []

    # Reach in pixels (up, down, left, right), the widest seen so far in completion order: a
    # unit that the probe left unchanged (a clipped ReLU, say) can hide part of a layer's reach,
    # never the reach of the layers before it, which a layer after them inherits.
    widest = [0.0] * 4
    layers = []
    for name, s, changed, *_ in recorder.events:
        rows = changed.any(dim=1).nonzero().flatten().tolist()
        cols = changed.any(dim=0).nonzero().flatten().tolist()
        if not rows:
            continue  # no dependence on the input
        # Cells beyond the block's own, each way.
        r0, r1, c0, c1 = top // s, (top + block) // s - 1, left // s, (left + block) // s - 1
        measured = (r0 - rows[0], rows[-1] - r1, c0 - cols[0], cols[-1] - c1)
        widest = [max(px, cells * s) for px, cells in zip(widest, measured)]
        if recorder.seen[name] != 1 or math.inf in widest:
            continue
        layer = _local_layer(name, modules[name], s, tuple(changed.shape), widest, window)
        if layer.share <= max_share:
            layers.append(layer)
    return layers[::-1]  # deepest first


def _local_layer(
    name: str,
    module: nn.Module,
    s: int,
    cells: tuple[int, ...],
    widest: list[float],
    window: int,
) -> LocalLayer:
    """The layer at stride ``s`` with map ``cells`` and reach ``widest`` (pixels each way), its
    crop sized for windows of ``window`` pixels."""
    h, w = cells
    reach = tuple(math.ceil(px / s) for px in widest)
    crop = (
        min(h, (window - 1) // s + 2 + 2 * (reach[0] + reach[1])),
        min(w, (window - 1) // s + 2 + 2 * (reach[2] + reach[3])),
    )
    return LocalLayer(name, module, s, (h, w), reach, crop)


class _ReachRecorder:
    """The forward hooks of the probe pass of :func:`local_layers`: per layer, its calls
    (``seen``) and, in completion order, the cells of its map that the noise block changed
    (``events``: layer, stride, changed cells, tensor key, tensor version)."""

    def __init__(self, batch: int, size: tuple[int, int], strides: list[int]):
        self.batch, self.size, self.strides = batch, size, strides
        self.seen: dict[str, int] = {}
        self.events: list[tuple[str, int, Tensor, Any, int]] = []

    def hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            self.record(name, output)

        return hook

    def record(self, name: str, output: Any) -> None:
        self.seen[name] = self.seen.get(name, 0) + 1
        if not isinstance(output, Tensor) or output.ndim != 4 or len(output) != self.batch:
            return
        (height, width), (h, w) = self.size, output.shape[2:]
        s = height // h
        if h * s != height or w * s != width or s not in self.strides:
            return
        key, version = (output.data_ptr(), output.shape), output._version
        if self.events and self.events[-1][3] == key:
            # The same tensor again (an in-place activation, a container's last child): one
            # candidate, the outer module, keeping what either measurement saw.
            _, _, changed, _, before = self.events.pop()
            if version != before:  # written in place since: measure again
                changed = changed | _changed_cells(output)
        else:
            changed = _changed_cells(output)
        if changed[0].any() or changed[-1].any() or changed[:, 0].any() or changed[:, -1].any():
            # A reach the probe cannot bound (global pooling, say): neither this layer nor
            # any after it qualifies, so the rest of the pass is not needed.
            raise _ProbeDone
        self.events.append((name, s, changed, key, version))


def may_reuse(shape: tuple[int, ...], window: int, share: float) -> bool:
    """Whether the smallest crop there can be (stride 2, a reach of one cell each way) is at
    most ``share`` of inputs of ``shape``: if not, no layer's is."""
    smallest = 2 * ((window - 1) // 2 + 2 + 2)
    return smallest**2 <= share * shape[2] * shape[3]


class _ProbeDone(Exception):
    """Ends the reach probe's forward pass early (see :func:`local_layers`)."""


def _changed_cells(output: Tensor) -> Tensor:
    """``[h, w]``: the cells where a perturbed copy in ``output`` (``[3, C, h, w]``, see
    :func:`local_layers`) differs from the first image beyond rounding."""
    difference = (output[1:] - output[:1]).abs_().amax(dim=(0, 1))
    return difference > 1e-6 * float(output[0].abs().max())
