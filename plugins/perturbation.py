"""Perturbation attributions: occlusion and RISE. Forward passes only, no gradients.

- **Occlusion** (Zeiler and Fergus 2013, "Visualizing and Understanding Convolutional Networks",
  arXiv:1311.2901, section 4.2): a window slides over the image and is filled with a baseline; a
  pixel's value is the drop of the class score, averaged over the windows that cover it. The window
  positions, the cut-off last window and the averaging are those of Captum's ``Occlusion``, so the
  two agree to float precision. A window changes only part of an early layer's map: by default
  (``incremental``) occlusion runs each occluded image's crop up to such a layer, pastes the
  changed cells into the unoccluded image's map there and runs the rest of the model from it
  (the idea of Nakandala et al. 2019, "Incremental and Approximate Inference for Faster
  Occlusion-based Deep CNN Explanations", SIGMOD; here found by measuring, and checked against
  full passes before use), the same numbers in a fraction of the time. Where a deeper layer
  qualifies too, the model goes on from a crop of the pasted map up to that layer and pastes
  again there (EfficientNet-Lite0: stride 4, then the end of block 2.0 at stride 8).
- **RISE** (Petsiuk, Das, Saenko 2018, "RISE: Randomized Input Sampling for Explanation of
  Black-box Models", BMVC, arXiv:1806.07421, section 3): random low-resolution binary grids,
  bilinearly upsampled and randomly shifted into soft masks; the map is the score-weighted sum of
  the masks divided by ``n_masks * keep`` (the expected keep probability).

Both run their forward passes with the model's batch norms folded into the convolutions before
them (``fold_batch_norm``, on by default; :func:`xai_core.nn.fusion.folded_batch_norm`, in place for
the call and undone after it): the same function to float rounding, checked on the unperturbed
images, and on EfficientNet-Lite0 about a third fewer seconds per full pass.

Both work on the distinct inputs only: with several targets per input the base class repeats each
input, and these methods explain all of its targets from the same perturbed forward passes. The
perturbed inputs of all images are batched together up to ``batch_size`` items per forward pass.

What does not live here: gradient methods (``saliency``, ``gradients``) and CAM methods (``cam``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xai_core import hookimpl
from xai_core.contracts.technique import AttributionContext
from xai_core.errors import ConfigError, InputError
from xai_core.families.perturbation import SCORES, _PerturbationAttributor
from xai_core.nn.gradients import channels_last_layout
from xai_core.nn.hooks import HookRecorder, model_device
from xai_core.nn.images import BASELINES, baseline_inputs
from xai_core.nn.progress import progress_bar

__all__ = [
    "BASELINES",
    "SCORES",
    "LocalLayer",
    "local_layers",
    "Occlusion",
    "Rise",
    "baseline_inputs",
    "occlusion_corners",
    "rise_grids",
    "rise_masks",
]








def occlusion_corners(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of the windows along one image dimension of length ``size``.

    The first window starts at 0 and strides go on until the dimension is covered, so the last
    window may stick out of the image and is then cut off (as in Captum's ``Occlusion``).
    """
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


def rise_grids(
    count: int, grid: int, keep: float, size: tuple[int, int], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The random part of ``count`` RISE masks: binary grids and shifts.

    :return: ``grids`` ``[count, 1, grid, grid]`` (1 keeps a cell, with probability ``keep``)
        and ``shifts`` ``[count, 2]``, each mask's (row, column) crop offset within one cell.
    """
    cell_h, cell_w = (math.ceil(s / grid) for s in size)
    grids = (torch.rand(count, 1, grid, grid, generator=generator) < keep).float()
    shifts = torch.stack(
        [
            torch.randint(0, cell_h, (count,), generator=generator),
            torch.randint(0, cell_w, (count,), generator=generator),
        ],
        dim=1,
    )
    return grids, shifts


def rise_masks(grids: Tensor, shifts: Tensor, size: tuple[int, int]) -> Tensor:
    """Soft masks ``[count, H, W]`` from :func:`rise_grids`.

    Each grid is bilinearly upsampled to ``(grid + 1)`` cells of ``ceil(size / grid)`` pixels,
    one cell more than the image needs, and an ``H x W`` window is cropped at the mask's shift:
    the random shift is what keeps the cell borders from lining up across masks.
    """
    grid = grids.shape[-1]
    height, width = size
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    up = F.interpolate(
        grids, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False
    )[:, 0]
    rows = shifts[:, :1] + torch.arange(height, device=shifts.device)  # [count, H]
    cols = shifts[:, 1:] + torch.arange(width, device=shifts.device)  # [count, W]
    index = torch.arange(len(up), device=shifts.device)[:, None, None]
    return up[index, rows[:, :, None], cols[:, None, :]]


# --- incremental occlusion -----------------------------------------------------------------------

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
    if not strides or not _may_reuse(shape, window, max_share):
        return []
    block = strides[-1]
    top, left = (height // block // 2) * block, (width // block // 2) * block
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(1, channels, height, width, generator=generator).repeat(3, 1, 1, 1)
    probe[1:, :, top : top + block, left : left + block] = torch.randn(
        2, channels, block, block, generator=generator
    )
    probe = channels_last_layout(probe.to(model_device(model)))  # the layout: only faster

    seen: dict[str, int] = {}  # calls per layer
    # (layer, stride, changed cells, tensor key, tensor version)
    events: list[tuple[str, int, Tensor, Any, int]] = []

    def record(name: str) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            seen[name] = seen.get(name, 0) + 1
            if not isinstance(output, Tensor) or output.ndim != 4 or len(output) != len(probe):
                return
            h, w = output.shape[2:]
            s = height // h
            if h * s != height or w * s != width or s not in strides:
                return
            key, version = (output.data_ptr(), output.shape), output._version
            if events and events[-1][3] == key:
                # The same tensor again (an in-place activation, a container's last child): one
                # candidate, the outer module, keeping what either measurement saw.
                _, _, changed, _, before = events.pop()
                if version != before:  # written in place since: measure again
                    changed = changed | _changed_cells(output)
            else:
                changed = _changed_cells(output)
            if changed[0].any() or changed[-1].any() or changed[:, 0].any() or changed[:, -1].any():
                # A reach the probe cannot bound (global pooling, say): neither this layer nor
                # any after it qualifies, so the rest of the pass is not needed.
                raise _ProbeDone
            events.append((name, s, changed, key, version))

        return hook

    modules = dict(model.named_modules())
    with HookRecorder() as hooks:
        for name, module in modules.items():
            if name:
                hooks.forward(module, record(name))
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
    for name, s, changed, *_ in events:
        h, w = changed.shape
        rows = changed.any(dim=1).nonzero().flatten().tolist()
        cols = changed.any(dim=0).nonzero().flatten().tolist()
        if not rows:
            continue  # no dependence on the input
        # Cells beyond the block's own, each way.
        r0, r1, c0, c1 = top // s, (top + block) // s - 1, left // s, (left + block) // s - 1
        measured = (r0 - rows[0], rows[-1] - r1, c0 - cols[0], cols[-1] - c1)
        widest = [max(px, cells * s) for px, cells in zip(widest, measured)]
        if seen[name] != 1 or math.inf in widest:
            continue
        reach = tuple(math.ceil(px / s) for px in widest)
        crop = (
            min(h, (window - 1) // s + 2 + 2 * (reach[0] + reach[1])),
            min(w, (window - 1) // s + 2 + 2 * (reach[2] + reach[3])),
        )
        layer = LocalLayer(name, modules[name], s, (h, w), reach, crop)
        if layer.share <= max_share:
            layers.append(layer)
    return layers[::-1]  # deepest first


def _may_reuse(shape: tuple[int, ...], window: int, share: float) -> bool:
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








class Occlusion(_PerturbationAttributor):
    """Sliding-window occlusion: the drop of the class score when a window is hidden."""

    name = "occlusion"
    summary = "drop of the class score when a sliding window is filled with a baseline"
    paper = "Zeiler, Fergus 2013, arXiv:1311.2901"

    @dataclass
    class Params:
        #: Side of the square window in pixels.
        window: int = 32
        #: Step between windows in pixels (at most ``window``, so every pixel is covered).
        stride: int = 16
        #: What the window is filled with (see ``BASELINES``).
        baseline: str = field(default="zeros", metadata={"choices": BASELINES})
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = 10.0
        #: The score whose drop is measured.
        score: str = field(default="logit", metadata={"choices": SCORES})
        #: Perturbed images per forward pass (bounds memory; all inputs' windows share batches).
        batch_size: int = 16
        #: Run forward passes in NHWC memory layout (faster on CPU with oneDNN).
        channels_last: bool = True
        #: Show a progress bar on long runs (only on a terminal).
        progress: bool = True
        #: Fold each eval-mode batch norm into the convolution before it for the call (the same
        #: function to float rounding, fewer operations; checked on the unperturbed images, not
        #: folded where that check fails; the model is restored after the call).
        fold_batch_norm: bool = True
        #: Reuse the unoccluded image's activations up to an early layer (and a second, deeper
        #: one where that works) and recompute only the crop each window can change (see
        #: ``local_layers``); checked against full passes on three windows, full passes wherever
        #: the check fails.
        incremental: bool = True

    _positive = ("window", "stride", "batch_size")

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        if self.params.stride > self.params.window:
            raise ConfigError(
                f"bad config value at 'occlusion.stride': {self.params.stride} is larger than the "
                f"window ({self.params.window}), which would leave pixels that no window covers"
            )

    def _check_input(self, inputs: Tensor) -> None:
        height, width = inputs.shape[2:]
        if self.params.window > min(height, width):
            raise InputError(
                f"occlusion window {self.params.window} is larger than the image "
                f"({height}x{width}); use a window of at most the image size"
            )

    def _attribute(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        height, width = images.shape[2:]
        count, k = image_targets.shape
        baseline = baseline_inputs(p.baseline, images, context.handle, p.blur_sigma)
        baseline = baseline.expand_as(images)
        corners = [
            (top, left)
            for top in occlusion_corners(height, p.window, p.stride)
            for left in occlusion_corners(width, p.window, p.stride)
        ]
        jobs = [(i, top, left) for i in range(count) for top, left in corners]
        w = p.window

        coverage = torch.zeros(height, width, device=images.device)
        for top, left in corners:
            coverage[top : top + w, left : left + w] += 1
        total = torch.zeros(count, k, height, width, device=images.device)
        layers = []
        if p.incremental and _may_reuse(images.shape, w, MAX_CROP_SHARE):  # a first layer
            layers = local_layers(model, tuple(images.shape), w, MAX_SECOND_SHARE)
        with torch.inference_mode(), progress_bar(len(jobs), self.name, p.progress) as bar:
            chains = _chains(layers)
            clean: dict[str, Tensor] = {}  # each candidate layer's map of the unoccluded images
            with HookRecorder() as hooks:
                for layer in {layer.name: layer for chain in chains for layer in chain}.values():
                    hooks.forward(layer.module, _keep_output(clean, layer.name))
                outputs = self._outputs(model, images)
            original = outputs.gather(1, image_targets)
            chain: tuple[LocalLayer, ...] = ()
            if chains:
                # The first chain whose reuse gives the full passes' outputs on three windows:
                # the first, the middle and the last (top-left and bottom-right corners).
                probe = [jobs[0], jobs[len(jobs) // 2], jobs[-1]]
                batch = self._occluded(images, baseline, probe)
                full = self._outputs(model, batch)
                scale = max(1.0, float(outputs.abs().max()))
                for candidate in chains:
                    if self._agrees(model, candidate, clean, batch, probe, full, scale):
                        chain = candidate
                        break
            reuse = _Reuse(self, chain, clean) if chain else None
            for start in range(0, len(jobs), p.batch_size):
                chunk = jobs[start : start + p.batch_size]
                owner = torch.tensor([i for i, _, _ in chunk], device=images.device)
                batch = self._occluded(images, baseline, chunk)
                if reuse is None:
                    outputs = self._outputs(model, batch)
                else:
                    outputs = reuse(model, batch, chunk)
                drop = original[owner] - outputs.gather(1, image_targets[owner])
                for row, (i, top, left) in enumerate(chunk):
                    total[i, :, top : top + w, left : left + w] += drop[row, :, None, None]
                bar.update(len(chunk))
            maps = total / coverage
        context.metadata["windows"] = len(corners)
        context.metadata["forward_images"] = len(jobs) + count
        if chain:
            context.metadata["reused_layer"] = chain[0].name
            context.metadata["reused_crop"] = [c * chain[0].stride for c in chain[0].crop]
            context.metadata["reused_layers"] = [layer.name for layer in chain]
        return maps.reshape(count * k, height, width).clone()

    def _occluded(self, images: Tensor, baseline: Tensor, jobs: list) -> Tensor:
        """The images of ``jobs`` (``(image, top, left)``) with their window filled."""
        w = self.params.window
        # Copy each image once and overwrite only its window: far cheaper than blending whole
        # images with full-size masks.
        batch = images[torch.tensor([i for i, _, _ in jobs], device=images.device)]
        for row, (i, top, left) in enumerate(jobs):
            batch[row, :, top : top + w, left : left + w] = baseline[
                i, :, top : top + w, left : left + w
            ]
        return batch

    def _agrees(
        self,
        model: nn.Module,
        chain: tuple[LocalLayer, ...],
        clean: dict[str, Tensor],
        batch: Tensor,
        chunk: list,
        outputs: Tensor,
        scale: float,
    ) -> bool:
        """Whether reusing ``chain`` gives the full passes' ``outputs`` on this batch (to rounding:
        ``1e-5`` of the largest unoccluded score, at least ``1e-5``)."""
        try:
            reused = _Reuse(self, chain, clean)(model, batch, chunk)
        except Exception:  # e.g. a skip connection around a layer carries a crop-sized map
            return False
        return reused.shape == outputs.shape and bool(
            (reused - outputs).abs().max() <= 1e-5 * scale
        )


def _chains(layers: list[LocalLayer]) -> list[tuple[LocalLayer, ...]]:
    """What to try reusing, best first, from :func:`local_layers`' candidates (deepest first).

    A chain starts at a layer whose crop is at most :data:`MAX_CROP_SHARE` of its map (the
    :data:`MAX_LAYER_TRIES` deepest) and may go on to one of the deepest candidates below it
    at a coarser stride: that layer's crop is cut from the first layer's pasted map, so the
    layers in between also run on crops. (Not every candidate works as a second layer: a skip
    connection around it would add a crop-sized map to a full one; the check finds out.) The
    two-layer chains come before their first layer alone.
    """
    firsts = [layer for layer in layers if layer.share <= MAX_CROP_SHARE][:MAX_LAYER_TRIES]
    chains: list[tuple[LocalLayer, ...]] = []
    for first in firsts:
        seconds = [
            layer
            for layer in layers
            if layer.stride > first.stride and layer.stride % first.stride == 0
        ]
        chains += [(first, second) for second in seconds[:MAX_LAYER_TRIES]]
        chains.append((first,))
    return chains


class _Reuse:
    """Occluded images' outputs from crops: each image's crop runs up to the chain's first layer,
    whose map is then the unoccluded image's (``clean``) with the cells the window changes
    pasted in. With a second layer, the model goes on from a crop of that pasted map (the region
    the second layer's changed cells depend on) and the same paste happens there; the model
    runs on from the last layer's full map.

    One buffer of maps per layer serves batch after batch: only the cells pasted for the
    previous batch are restored from ``clean`` (a whole map where the row's image changes). Its
    version counter tells when a later layer wrote into it in place; it is then copied afresh.
    """

    def __init__(self, occlusion: Occlusion, chain: tuple[LocalLayer, ...], clean: dict):
        self.occlusion, self.chain = occlusion, chain
        with torch.inference_mode(False):
            # Normal tensors, so that copies of them count versions.
            self.clean = [clean[layer.name].clone() for layer in chain]
        self.buffers: list[Tensor | None] = [None] * len(chain)
        self.pasted: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in chain]
        self.versions = [-1] * len(chain)

    def __call__(self, model: nn.Module, batch: Tensor, chunk: list) -> Tensor:
        window = self.occlusion.params.window
        size = batch.shape[2:]
        rows = [
            [(i, layer.boxes(top, left, window, size)) for i, top, left in chunk]
            for layer in self.chain
        ]
        first = self.chain[0]
        crops = _crops(batch, [box[-2:] for _, box in rows[0]], first, first.stride)
        with HookRecorder() as hooks:
            for level, layer in enumerate(self.chain):
                hooks.forward(layer.module, self._hook(level, rows))
            # Outside inference mode (gradients still off), so that the buffers have versions.
            with torch.inference_mode(False), torch.no_grad():
                return self.occlusion._outputs(model, crops)

    def _hook(self, level: int, rows: list) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Tensor) -> Tensor:
            full = self._paste(level, output, rows[level])
            if level + 1 == len(self.chain):
                return full
            following = self.chain[level + 1]
            corners = [box[-2:] for _, box in rows[level + 1]]
            return _crops(full, corners, following, following.stride // self.chain[level].stride)

        return hook

    def _paste(self, level: int, output: Tensor, rows: list[tuple[int, tuple[int, ...]]]) -> Tensor:
        """The unoccluded maps at chain layer ``level`` with ``output``'s changed cells."""
        clean, full = self.clean[level], self.buffers[level]
        pasted = self.pasted[level]
        if full is None or len(pasted) != len(rows) or full._version != self.versions[level]:
            full = clean[torch.tensor([i for i, _ in rows], device=clean.device)]
        else:
            for row, ((before, (i0, i1, j0, j1, *_)), (now, _)) in enumerate(zip(pasted, rows)):
                if before == now:
                    full[row, :, i0:i1, j0:j1] = clean[now, :, i0:i1, j0:j1]
                else:
                    full[row] = clean[now]
        for row, (_, (i0, i1, j0, j1, k, c)) in enumerate(rows):
            full[row, :, i0:i1, j0:j1] = output[row, :, i0 - k : i1 - k, j0 - c : j1 - c]
        self.buffers[level], self.pasted[level] = full, rows
        self.versions[level] = full._version
        return full


def _crops(maps: Tensor, corners: list[tuple[int, int]], layer: LocalLayer, scale: int) -> Tensor:
    """One crop per row of ``maps``: the region whose cells ``layer``'s crop starting at cell
    ``corners[row]`` covers, ``scale`` cells of ``maps`` per cell of ``layer`` (its stride over
    that of ``maps``), in the memory layout of ``maps``."""
    ch, cw = layer.crop
    layout = (
        torch.channels_last
        if maps.dim() == 4 and maps.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    out = torch.empty(
        (len(corners), maps.shape[1], ch * scale, cw * scale),
        dtype=maps.dtype,
        device=maps.device,
        memory_format=layout,
    )
    for row, (k, c) in enumerate(corners):
        out[row] = maps[row, :, k * scale : (k + ch) * scale, c * scale : (c + cw) * scale]
    return out


def _keep_output(into: dict[str, Tensor], name: str) -> Any:
    """A forward hook that stores its module's output in ``into[name]``."""

    def hook(_module: nn.Module, _args: Any, output: Tensor) -> None:
        into[name] = output

    return hook


class Rise(_PerturbationAttributor):
    """RISE: importance as the score-weighted average of random smooth masks."""

    name = "rise"
    summary = "score-weighted sum of random upsampled binary masks (black-box)"
    paper = "Petsiuk, Das, Saenko 2018, arXiv:1806.07421"

    @dataclass
    class Params:
        #: Number of random masks (the paper uses 4000 for ResNet-50; more is smoother).
        n_masks: int = 1000
        #: Cells per side of the low-resolution binary grid.
        grid: int = 7
        #: Probability that a grid cell keeps the image.
        keep: float = 0.5
        #: Seed of the mask generator; the same seed gives the same maps bit for bit.
        seed: int = 0
        #: What masked-out regions are filled with (``zeros`` multiplies the normalized input by
        #: the mask, as the paper does).
        baseline: str = field(default="zeros", metadata={"choices": BASELINES})
        #: Standard deviation in pixels of the ``blur`` baseline.
        blur_sigma: float = 10.0
        #: The score that weights each mask (the paper uses the class probability).
        score: str = field(default="probability", metadata={"choices": SCORES})
        #: Masked images per forward pass (bounds memory; all inputs share batches).
        batch_size: int = 16
        #: Run forward passes in NHWC memory layout (faster on CPU with oneDNN).
        channels_last: bool = True
        #: Show a progress bar on long runs (only on a terminal).
        progress: bool = True
        #: Fold each eval-mode batch norm into the convolution before it for the call (the same
        #: function to float rounding, fewer operations; checked on the unperturbed images, not
        #: folded where that check fails; the model is restored after the call).
        fold_batch_norm: bool = True

    _positive = ("n_masks", "grid", "batch_size")

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        if not 0.0 < self.params.keep <= 1.0:
            raise ConfigError(
                f"bad config value at 'rise.keep': {self.params.keep} is not a probability "
                "in (0, 1]"
            )

    def _check_input(self, inputs: Tensor) -> None:
        height, width = inputs.shape[2:]
        if self.params.grid > min(height, width):
            raise InputError(
                f"RISE grid {self.params.grid} has more cells than the image ({height}x{width}) "
                "has pixels per side; use a smaller grid"
            )

    def _attribute(
        self, model: nn.Module, images: Tensor, image_targets: Tensor, context: AttributionContext
    ) -> Tensor:
        p = self.params
        size = (images.shape[2], images.shape[3])
        count, k = image_targets.shape
        baseline = baseline_inputs(p.baseline, images, context.handle, p.blur_sigma)
        # All random numbers are drawn up front on the CPU, so the masks depend on the seed only,
        # not on the batch size or the device.
        generator = torch.Generator().manual_seed(p.seed)
        grids, shifts = rise_grids(p.n_masks, p.grid, p.keep, size, generator)
        grids, shifts = grids.to(images.device), shifts.to(images.device)

        total = torch.zeros(count * k, size[0] * size[1], device=images.device)
        per_batch = max(1, p.batch_size // count)
        with torch.inference_mode(), progress_bar(p.n_masks * count, self.name, p.progress) as bar:
            for start in _chunks(p.n_masks, per_batch):
                masks = rise_masks(grids[start], shifts[start], size)  # [B, H, W]
                soft = masks[:, None, None]  # [B, 1, 1, H, W] against images [M, 3, H, W]
                batch = images * soft + baseline * (1 - soft)
                rows = image_targets.repeat(len(masks), 1)
                scores = self._scores(model, batch.flatten(0, 1), rows)  # [B * M, k]
                # One matmul weighs every mask by the score of every (input, target) pair.
                weights = scores.view(len(masks), count * k)
                total += weights.T @ masks.flatten(1)
                bar.update(len(masks) * count)
        maps = total / (p.n_masks * p.keep)
        context.metadata["forward_images"] = p.n_masks * count
        return maps.view(count * k, *size).clone()


def _chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


@hookimpl
def register_attributors(register):
    register(Occlusion)
    register(Rise)
