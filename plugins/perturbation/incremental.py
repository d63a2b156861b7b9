"""Incremental occlusion: occluded images' outputs from crops, reusing the unoccluded images'
activations up to an early layer (the idea of Nakandala et al. 2019, "Incremental and Approximate
Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD; here found by measuring).

A window changes only part of an early layer's map. :func:`.reach.local_layers` measures, with one
probe pass, which layers' maps depend on the input only locally and how far;
:class:`IncrementalOcclusion` runs each occluded image's crop up to such a layer, pastes the
changed cells into the unoccluded image's map there and runs the rest of the model from it.
Where a deeper layer qualifies too, the model goes on from a crop of the pasted map up to that
layer and pastes again there (EfficientNet-Lite0: stride 4, then the end of block 2.0 at
stride 8).

Reuse is a rewrite of the model's forward pass, so it is an object with an explicit undo, as
zennit's canonizers: :meth:`IncrementalOcclusion.apply` hooks the chosen layers,
:meth:`~IncrementalOcclusion.remove` (or leaving its ``with`` block) takes the hooks away. It is
checked against full passes before use, and when it cannot be used it says why
(:meth:`~IncrementalOcclusion.metadata`, ``incremental_fallback``); occlusion then runs full passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from xai_core.nn.hooks import HookRecorder

from .reach import (
    MAX_CROP_SHARE,
    MAX_LAYER_TRIES,
    MAX_SECOND_SHARE,
    LocalLayer,
    local_layers,
    may_reuse,
)

__all__ = ["IncrementalOcclusion"]

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


class IncrementalOcclusion:
    """Outputs of occluded images computed from crops, for windows of ``window`` pixels.

    :param model: the model (batch norms already folded, if that was asked for).
    :param window: the occlusion window's side in pixels.
    :param forward: ``(model, batch) -> [B, classes]``, the scoring pass of the technique.
    :param enabled: ``False`` plans nothing: every pass is a full one.

    Use, inside the technique's scoring pass (inference mode)::

        reuse = IncrementalOcclusion(model, window, forward)
        outputs = reuse.clean_outputs(images)        # also records the candidate layers' maps
        reuse.choose(occluded_probe, probe_jobs, scale)
        with reuse:                                  # apply() ... remove()
            for batch, jobs in ...:
                outputs = reuse.outputs(batch, jobs) # a full pass where reuse fell back

    A job is ``(image, top, left)``: row ``image`` of the clean images with the window at
    ``(top, left)``.
    """

    def __init__(
        self,
        model: nn.Module,
        window: int,
        forward: Callable[[nn.Module, Tensor], Tensor],
        enabled: bool = True,
    ) -> None:
        self.model, self.window, self.forward = model, window, forward
        self.chains: list[tuple[LocalLayer, ...]] = []
        #: The layers reused, first to last; empty when running full passes.
        self.chain: tuple[LocalLayer, ...] = ()
        #: Why full passes run, or ``None`` while reuse is possible.
        self.fallback: str | None = None if enabled else "turned off (incremental: false)"
        self._maps: dict[str, Tensor] = {}
        self._hooks: HookRecorder | None = None
        self._rows: list[list[tuple[int, tuple[int, ...]]]] = []

    def clean_outputs(self, images: Tensor) -> Tensor:
        """The unoccluded ``images``' outputs ``[M, classes]``; finds the candidate layers and
        keeps their maps of ``images``, which reuse pastes into."""
        if self.fallback is None:
            if not may_reuse(images.shape, self.window, MAX_CROP_SHARE):
                self.fallback = "the window is too large for the image: no crop would pay off"
            else:
                shape = tuple(images.shape)
                # The probe reads version counters, which inference-mode tensors lack.
                with torch.inference_mode(False):
                    layers = local_layers(self.model, shape, self.window, MAX_SECOND_SHARE)
                self.chains = _chains(layers)
                if not self.chains:
                    self.fallback = "no layer's map depends on the input locally enough"
        with HookRecorder() as hooks:
            for layer in {layer.name: layer for chain in self.chains for layer in chain}.values():
                hooks.forward(layer.module, _keep_output(self._maps, layer.name))
            return self.forward(self.model, images)

    def choose(self, batch: Tensor, jobs: list, scale: float) -> None:
        """Pick the first chain whose reuse gives full passes' outputs on the occluded ``batch``
        of ``jobs`` (to ``1e-5 * scale``); otherwise fall back to full passes."""
        if self.fallback is not None:
            return
        full = self.forward(self.model, batch)
        for candidate in self.chains:
            if self._agrees(candidate, batch, jobs, full, scale):
                self.chain = candidate
                return
        self.fallback = (
            f"none of {len(self.chains)} layer chains reproduced full passes on the probe windows"
        )

    def _agrees(
        self, chain: tuple[LocalLayer, ...], batch: Tensor, jobs: list, full: Tensor, scale: float
    ) -> bool:
        self.chain = chain
        try:
            with self:
                reused = self.outputs(batch, jobs)
        except Exception:  # e.g. a skip connection around a layer carries a crop-sized map
            return False
        finally:
            self.chain = ()
        return reused.shape == full.shape and bool((reused - full).abs().max() <= 1e-5 * scale)

    def apply(self) -> None:
        """Hook the chain's layers: from now on :meth:`outputs` runs crops and pastes."""
        if not self.chain or self._hooks is not None:
            return
        with torch.inference_mode(False):
            # Normal tensors, so that copies of them count versions.
            self._clean = [self._maps[layer.name].clone() for layer in self.chain]
        self._buffers: list[Tensor | None] = [None] * len(self.chain)
        self._pasted: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in self.chain]
        self._versions = [-1] * len(self.chain)
        self._hooks = HookRecorder()
        for level, layer in enumerate(self.chain):
            self._hooks.forward(layer.module, self._hook(level))

    def remove(self) -> None:
        """Undo :meth:`apply`: the hooks go, and with them the buffers."""
        if self._hooks is not None:
            self._hooks.remove_all()
            self._hooks = None
            self._buffers = []

    def __enter__(self) -> IncrementalOcclusion:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def outputs(self, batch: Tensor, jobs: list) -> Tensor:
        """Outputs ``[B, classes]`` of the occluded ``batch`` of ``jobs``: from crops while
        applied, else a full pass."""
        if self._hooks is None:
            return self.forward(self.model, batch)
        size = batch.shape[2:]
        self._rows = [
            [(i, layer.boxes(top, left, self.window, size)) for i, top, left in jobs]
            for layer in self.chain
        ]
        first = self.chain[0]
        crops = _crops(batch, [box[-2:] for _, box in self._rows[0]], first, first.stride)
        # Outside inference mode (gradients still off), so that the buffers have versions.
        with torch.inference_mode(False), torch.no_grad():
            return self.forward(self.model, crops)

    def metadata(self) -> dict[str, Any]:
        """What occlusion reports: the layers reused and the crop, or why there was no reuse."""
        if not self.chain:
            return {"incremental_fallback": self.fallback}
        first = self.chain[0]
        return {
            "reused_layer": first.name,
            "reused_crop": [c * first.stride for c in first.crop],
            "reused_layers": [layer.name for layer in self.chain],
        }

    def _hook(self, level: int) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Tensor) -> Tensor:
            full = self._paste(level, output, self._rows[level])
            if level + 1 == len(self.chain):
                return full
            following = self.chain[level + 1]
            corners = [box[-2:] for _, box in self._rows[level + 1]]
            return _crops(full, corners, following, following.stride // self.chain[level].stride)

        return hook

    def _paste(self, level: int, output: Tensor, rows: list[tuple[int, tuple[int, ...]]]) -> Tensor:
        """The unoccluded maps at chain layer ``level`` with ``output``'s changed cells."""
        clean, full = self._clean[level], self._buffers[level]
        pasted = self._pasted[level]
        if full is None or len(pasted) != len(rows) or full._version != self._versions[level]:
            full = clean[torch.tensor([i for i, _ in rows], device=clean.device)]
        else:
            for row, ((before, (i0, i1, j0, j1, *_)), (now, _)) in enumerate(zip(pasted, rows)):
                if before == now:
                    full[row, :, i0:i1, j0:j1] = clean[now, :, i0:i1, j0:j1]
                else:
                    full[row] = clean[now]
        for row, (_, (i0, i1, j0, j1, k, c)) in enumerate(rows):
            full[row, :, i0:i1, j0:j1] = output[row, :, i0 - k : i1 - k, j0 - c : j1 - c]
        self._buffers[level], self._pasted[level] = full, rows
        self._versions[level] = full._version
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
