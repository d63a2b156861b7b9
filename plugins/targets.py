"""Built-in target kinds (plugin ``targets``): what a map explains beyond one class of the logits.

* ``multilabel``: a label of a sigmoid head, its logit or probability; ``label: predicted``
  explains every label whose sigmoid is over ``threshold``;
* ``regression``: one output of the model, signed (by index, or by name for a model with
  output names);
* ``logit_difference``: class ``a``'s logit minus class ``b``'s ("why tabby rather than tiger
  cat");
* ``segmentation``: the sum of a class's logits over a region (where the model predicts that
  class, a box, a mask file, or every pixel), for models returning ``[N, classes, H, W]`` or
  torchvision's dict with ``"out"``; the same score as pytorch-grad-cam's
  ``SemanticSegmentationTarget``;
* ``channel`` / ``neuron``: a unit of a named layer (the mean of a channel's activation, or one
  position of it): what Captum's neuron attribution explains;
* ``detection``: a detection of a torchvision detector (``fasterrcnn_*``, ``retinanet_*``,
  ``fcos_*``, ``ssd*``): the model's own detection ``k`` on the image, or the box that best
  matches a given box and class, scored as pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``
  (IoU + score of the best-matching detection, 0 when it no longer matches);
* ``embedding_similarity``: the cosine similarity of the model's embedding (a named layer's
  output or the model's) to a reference: a saved vector (``.npy``, ``.pt``), an image file, or
  on a CLIP model a text (``text:a photo of a cat``).

The contract they implement is :class:`xai_core.contracts.target_kinds.TargetKind`; class
targets (``predicted``, ``top-k``, names) stay in :mod:`xai_core.contracts.targets`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from xai_core import hookimpl
from xai_core.contracts.target_kinds import BoundTarget, TargetCall, TargetKind, dense_output
from xai_core.contracts.targets import class_index, is_predicted
from xai_core.errors import TargetError
from xai_core.nn.hooks import get_module

__all__ = [
    "MultiLabel",
    "Regression",
    "LogitDifference",
    "Segmentation",
    "Channel",
    "Neuron",
    "EmbeddingSimilarity",
    "Detection",
]

#: Scores a sigmoid head's target can be read as.
MULTILABEL_SCORES = ("logit", "probability")


def _logits(output: Any, kind: str) -> Tensor:
    """The model's output as ``[N, outputs]`` (a ``[N]`` output is one column)."""
    if isinstance(output, Tensor) and output.ndim == 1:
        return output[:, None]
    if not isinstance(output, Tensor) or output.ndim != 2:
        shape = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise TargetError(
            f"target kind {kind!r} reads a model output of shape [N, outputs]; this model "
            f"returned {shape}"
        )
    return output


def _check_width(index: int, output: Tensor, kind: str) -> None:
    if index >= output.shape[1]:
        raise TargetError(
            f"target kind {kind!r}: output {index} is out of range for a model with "
            f"{output.shape[1]} outputs (valid: 0..{output.shape[1] - 1})"
        )


def _index(value: Any, call_or_names: Any, what: str) -> int:
    """A class/label/output index from an index or a name of the model's classes."""
    names = getattr(call_or_names, "class_names", call_or_names)
    num = getattr(call_or_names, "num_classes", len(names) if names else None)
    try:
        return class_index(value, names, num)
    except TargetError as exc:
        raise TargetError(f"{what}: {exc}") from None


def _same_for_all(n: int, columns: list[int], labels: list[str]) -> tuple[list, list, list]:
    return [list(columns) for _ in range(n)], [list(columns) for _ in range(n)], [
        list(labels) for _ in range(n)
    ]


class MultiLabel(TargetKind):
    """A label of a multi-label model (one sigmoid per label): its logit (default) or its
    probability. ``label: predicted`` explains every label whose probability is over
    ``threshold``, most probable first (an image with none gets no map)."""

    name = "multilabel"
    summary = "a label of a sigmoid (multi-label) head; predicted: every label over threshold"
    tasks = ("classification",)
    has_probability = True

    @dataclass
    class Params:
        #: A label index or name, a list of them, or ``predicted`` (every label over threshold).
        label: Any = "predicted"
        #: The probability over which a label counts as predicted.
        threshold: float = field(default=0.5, metadata={"min_exclusive": 0, "max_exclusive": 1})
        #: Explain the label's ``logit`` or its sigmoid ``probability``.
        score: str = field(default="logit", metadata={"choices": MULTILABEL_SCORES})

    @property
    def needs_output(self) -> bool:  # type: ignore[override]
        return is_predicted(self.params.label)

    def _fixed(self) -> list[Any]:
        label = self.params.label
        return list(label) if isinstance(label, (list, tuple)) else [label]

    def check_against(self, class_names: Sequence[str] | None, num_classes: int | None) -> None:
        if not is_predicted(self.params.label):
            for label in self._fixed():
                if class_names is not None or not isinstance(label, str):
                    _index(label, _Names(class_names, num_classes), "target label")

    def bind(self, call: TargetCall) -> BoundTarget:
        if call.choices is not None:
            columns = [[int(c) for c in row] for row in call.choices]
        elif is_predicted(self.params.label):
            probs = _logits(call.output, self.name).float().sigmoid()
            columns = []
            for row in probs:
                over = (row > self.params.threshold).nonzero().flatten()
                columns.append(over[row[over].argsort(descending=True)].tolist())
        else:
            fixed = [_index(label, call.handle, "target label") for label in self._fixed()]
            columns = [list(fixed) for _ in range(call.n)]
        logit = self.params.score == "logit"
        kind = self.name

        def score(output: Any) -> Tensor:
            out = _logits(output, kind)
            for row in columns:
                for c in row:
                    _check_width(c, out, kind)
            return out if logit else out.sigmoid()

        return BoundTarget(
            score=score,
            columns=columns,
            choices=[list(row) for row in columns],
            labels=[[_label_name(call.handle, c) for c in row] for row in columns],
            probability=torch.sigmoid if logit else (lambda s: s),
            value="logit" if logit else "sigmoid",
        )


def _label_name(handle: Any, index: int) -> str:
    """``label 'dog'`` (``label 3`` for a model without names)."""
    return f"label {handle.label(index)!r}" if handle.class_names else f"label {index}"


@dataclass(frozen=True)
class _Names:
    """Class names and their number, known before a model loads (config checks)."""

    class_names: Sequence[str] | None
    num_classes: int | None


class Regression(TargetKind):
    """One output of a regression model (or any head), signed: a map shows what raises it
    (positive) and what lowers it (negative)."""

    name = "regression"
    summary = "one output of the model, signed (by index or output name)"
    tasks = ("classification",)

    @dataclass
    class Params:
        #: The output explained: an index, or a name for a model whose outputs have names.
        output: Any = 0

    def check_against(self, class_names: Sequence[str] | None, num_classes: int | None) -> None:
        if class_names is not None or not isinstance(self.params.output, str):
            _index(self.params.output, _Names(class_names, num_classes), "target output")

    def bind(self, call: TargetCall) -> BoundTarget:
        index = _index(self.params.output, call.handle, "target output")
        kind = self.name

        def score(output: Any) -> Tensor:
            out = _logits(output, kind)
            _check_width(index, out, kind)
            return out[:, index : index + 1]

        name = call.handle.label(index) if call.handle.class_names else f"output {index}"
        columns, choices, labels = _same_for_all(call.n, [0], [name])
        choices = [[index] for _ in range(call.n)]
        return BoundTarget(score, columns, choices, labels, value="output")


class LogitDifference(TargetKind):
    """Class ``a``'s logit minus class ``b``'s: what makes the model prefer ``a`` to ``b``."""

    name = "logit_difference"
    summary = "class a's logit minus class b's (why a rather than b)"
    tasks = ("classification",)

    @dataclass
    class Params:
        #: The class the map explains the preference for (index or name).
        a: Any = None
        #: The class it is preferred to (index or name).
        b: Any = None

        def check(self) -> Iterator[tuple[str, str]]:
            for key in ("a", "b"):
                if getattr(self, key) is None:
                    yield key, "is required: a class index or name"
            if self.a is not None and self.a == self.b:
                yield "b", f"is the same class as a ({self.a!r}); the difference would be 0"

        violations = [{"a": None}, {"a": 1, "b": 1}]

    def check_against(self, class_names: Sequence[str] | None, num_classes: int | None) -> None:
        names = _Names(class_names, num_classes)
        for key in ("a", "b"):
            value = getattr(self.params, key)
            if class_names is not None or not isinstance(value, str):
                _index(value, names, f"target {key}")

    def bind(self, call: TargetCall) -> BoundTarget:
        a = _index(self.params.a, call.handle, "target a")
        b = _index(self.params.b, call.handle, "target b")
        if a == b:
            raise TargetError(f"target a and b are the same class ({a}); the difference is 0")
        kind = self.name

        def score(output: Any) -> Tensor:
            out = _logits(output, kind)
            _check_width(max(a, b), out, kind)
            return (out[:, a] - out[:, b])[:, None]

        label = f"{call.handle.label(a)} - {call.handle.label(b)}"
        columns, _, labels = _same_for_all(call.n, [0], [label])
        return BoundTarget(score, columns, [[[a, b]] for _ in range(call.n)], labels,
                           value="logit")


class Segmentation(TargetKind):
    """The sum of a class's logits over a region of a segmentation map ``[N, classes, H, W]``.

    ``region: predicted`` is where the model predicts the class on the unperturbed image (fixed
    for the whole call, so perturbed copies are scored on the same pixels); ``all`` every
    pixel; ``[x0, y0, x1, y1]`` a box in input pixels; a file name a mask image (non-zero pixels;
    resized to the output). ``label: predicted`` is the class predicted on most pixels, other
    than ``background`` (the background when the model predicts nothing else).
    """

    name = "segmentation"
    summary = "sum of a class's logits over a region (predicted pixels, a box or a mask file)"
    tasks = ("segmentation",)

    @dataclass
    class Params:
        #: The class (index or name), or ``predicted``: the class covering most pixels.
        label: Any = "predicted"
        #: ``predicted``, ``all``, a box ``[x0, y0, x1, y1]`` in input pixels, or a mask file.
        region: Any = "predicted"
        #: The class ``label: predicted`` passes over (VOC's background is 0); ``null``: none.
        background: int | None = field(default=0, metadata={"min": 0})

        def check(self) -> Iterator[tuple[str, str]]:
            region = self.region
            if isinstance(region, (list, tuple)):
                if len(region) != 4 or not all(isinstance(v, (int, float)) for v in region):
                    yield "region", f"a box is [x0, y0, x1, y1] in pixels; got {list(region)}"
                elif region[0] >= region[2] or region[1] >= region[3]:
                    yield "region", f"box {list(region)} is empty: x0 < x1 and y0 < y1"
            elif not isinstance(region, str):
                yield "region", "is predicted, all, a box [x0, y0, x1, y1] or a mask file"
            elif region not in ("predicted", "all") and not Path(region).is_file():
                yield "region", f"mask file {region!r} does not exist"

        violations = [{"region": [0, 0, 1]}, {"region": "no_such_mask.png"}]

    @property
    def needs_output(self) -> bool:  # type: ignore[override]
        return is_predicted(self.params.label) or self.params.region == "predicted"

    def check_against(self, class_names: Sequence[str] | None, num_classes: int | None) -> None:
        label = self.params.label
        if not is_predicted(label) and (class_names is not None or not isinstance(label, str)):
            _index(label, _Names(class_names, num_classes), "target label")

    def bind(self, call: TargetCall) -> BoundTarget:
        dense = dense_output(call.output).float() if call.output is not None else None
        classes = self._classes(call, dense)
        masks = torch.stack([self._region(call, dense, i, c) for i, c in enumerate(classes)])
        empty = [i for i in range(call.n) if not masks[i].any()]
        if empty:
            raise TargetError(
                f"segmentation target: the region of class {call.handle.label(classes[empty[0]])!r}"
                f" is empty on input {empty[0]} (the model predicts it nowhere there); give "
                "another label or a region"
            )
        index = torch.tensor(classes, dtype=torch.long)
        weights = masks.float()

        def score(output: Any) -> Tensor:
            out = dense_output(output)
            if out.shape[-2:] != weights.shape[-2:]:
                raise TargetError(
                    f"segmentation target: the output is {list(out.shape[-2:])} pixels, its "
                    f"region {list(weights.shape[-2:])}"
                )
            chosen = out[:, index.to(out.device)]  # [B, n, H, W]
            return (chosen * weights.to(out.device, out.dtype)).sum(dim=(2, 3))

        labels = [[f"{call.handle.label(c)} over {int(m.sum())} px"] for c, m in
                  zip(classes, masks)]
        return BoundTarget(score, [[i] for i in range(call.n)], [[c] for c in classes], labels,
                           value="logit sum", regions=[[m] for m in masks])

    def _classes(self, call: TargetCall, dense: Tensor | None) -> list[int]:
        if call.choices is not None:
            return [int(row[0]) for row in call.choices]
        if not is_predicted(self.params.label):
            return [_index(self.params.label, call.handle, "target label")] * call.n
        assert dense is not None
        predicted = dense.argmax(dim=1)  # [N, H, W]
        counts = torch.stack([torch.bincount(p.flatten(), minlength=dense.shape[1])
                              for p in predicted])
        background = self.params.background
        others = counts.clone()
        if background is not None and background < counts.shape[1]:
            others[:, background] = -1
        # An image predicted as all background is explained for the background.
        return [int(o.argmax()) if o.max() > 0 else int(c.argmax()) for o, c in
                zip(others, counts)]

    def _region(self, call: TargetCall, dense: Tensor | None, i: int, c: int) -> Tensor:
        region = self.params.region
        size = tuple(dense.shape[-2:]) if dense is not None else tuple(call.inputs.shape[-2:])
        if region == "predicted":
            assert dense is not None
            return dense[i].argmax(dim=0) == c
        if region == "all":
            return torch.ones(size, dtype=torch.bool)
        if isinstance(region, (list, tuple)):
            return _box_mask(region, tuple(call.inputs.shape[-2:]), size)
        return _mask_file(Path(region), size)


def _box_mask(box: Sequence[float], input_size: tuple[int, ...], size: tuple[int, ...]) -> Tensor:
    """A box in input pixels as a mask at the output's size."""
    sy, sx = size[0] / input_size[0], size[1] / input_size[1]
    x0, y0, x1, y1 = (int(round(v * s)) for v, s in zip(box, (sx, sy, sx, sy)))
    mask = torch.zeros(size, dtype=torch.bool)
    mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask


def _mask_file(path: Path, size: tuple[int, ...]) -> Tensor:
    from PIL import Image

    try:
        with Image.open(path) as image:
            mask = image.convert("L").resize((size[1], size[0]), Image.NEAREST)
    except OSError as exc:
        raise TargetError(f"segmentation target: cannot read mask {str(path)!r}: {exc}") from None
    return torch.from_numpy(np.asarray(mask) > 0)


def _layer_capture(call: TargetCall, layer: str) -> Callable[[], Tensor]:
    """The output of ``layer`` in the forward pass that just ran (taken once per pass)."""
    module = get_module(call.handle.module, call.handle.check_layer(layer))
    seen: dict[str, Tensor] = {}

    def keep(mod: nn.Module, args: Any, output: Any) -> None:
        del mod, args
        seen["out"] = output[0] if isinstance(output, (tuple, list)) else output

    call.hooks.forward(module, keep)

    def activation() -> Tensor:
        if "out" not in seen:
            raise TargetError(f"layer {layer!r} did not run in the model's forward pass")
        return seen.pop("out")

    return activation


@dataclass
class _UnitParams:
    """The keys of a target on a unit of a layer (``channel``, ``neuron``)."""

    #: The layer (``xai list layers MODEL``).
    layer: str = ""
    #: The channel.
    channel: int = field(default=0, metadata={"min": 0})

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.layer:
            yield "layer", "is required: a module path (`xai list layers MODEL`)"

    violations = [{"layer": ""}]


class _LayerTarget(TargetKind):
    """A target read from a named layer's activation in the same forward pass."""

    tasks = ("any",)

    def _capture(self, call: TargetCall) -> Callable[[], Tensor]:
        return _layer_capture(call, self.params.layer)


def _channel_of(activation: Tensor, channel: int, layer: str) -> Tensor:
    """Channel ``channel`` of an activation ``[B, C, ...]`` (tokens ``[B, T, C]``: the last)."""
    axis = 2 if activation.ndim == 3 else 1
    if channel >= activation.shape[axis]:
        raise TargetError(
            f"channel {channel} is out of range for layer {layer!r}, whose output has "
            f"{activation.shape[axis]} channels (shape {list(activation.shape)})"
        )
    return activation.select(axis, channel)


class Channel(_LayerTarget):
    """The mean (or sum) of one channel of a named layer's activation."""

    name = "channel"
    summary = "the mean activation of one channel of a named layer"

    @dataclass
    class Params(_UnitParams):
        #: How the channel's positions combine: ``mean`` or ``sum``.
        reduction: str = field(default="mean", metadata={"choices": ("mean", "sum")})

    def bind(self, call: TargetCall) -> BoundTarget:
        activation = self._capture(call)
        p = self.params

        def score(output: Any) -> Tensor:
            del output
            values = _channel_of(activation(), p.channel, p.layer).flatten(1)
            return (values.mean(dim=1) if p.reduction == "mean" else values.sum(dim=1))[:, None]

        label = f"{p.layer} channel {p.channel}"
        columns, _, labels = _same_for_all(call.n, [0], [label])
        return BoundTarget(score, columns, [[p.channel] for _ in range(call.n)], labels,
                           value="activation")


class Neuron(_LayerTarget):
    """One unit of a named layer: channel ``channel`` at ``position`` (``[y, x]`` of a spatial
    map, ``[t]`` of tokens, nothing for a vector)."""

    name = "neuron"
    summary = "one unit of a named layer (channel and position)"

    @dataclass
    class Params(_UnitParams):
        #: ``[y, x]`` in the layer's map, ``[t]`` for tokens; ``null`` for a vector output.
        position: list[int] | None = None

        def check(self) -> Iterator[tuple[str, str]]:
            yield from super().check()
            if self.position is not None and any(v < 0 for v in self.position):
                yield "position", f"{list(self.position)} has a negative coordinate"

        violations = [{"layer": ""}, {"layer": "x", "position": [-1, 0]}]

    def bind(self, call: TargetCall) -> BoundTarget:
        activation = self._capture(call)
        p = self.params
        position = tuple(p.position or ())

        def score(output: Any) -> Tensor:
            del output
            values = _channel_of(activation(), p.channel, p.layer)
            if values.ndim - 1 != len(position):
                raise TargetError(
                    f"neuron target: layer {p.layer!r} gives {values.ndim - 1} coordinates per "
                    f"channel, position has {len(position)}: set position to "
                    f"{values.ndim - 1} numbers" + (" (or null)" if values.ndim == 1 else "")
                )
            for axis, (at, size) in enumerate(zip(position, values.shape[1:])):
                if at >= size:
                    raise TargetError(
                        f"neuron target: position {list(position)} is outside layer "
                        f"{p.layer!r}'s map of {list(values.shape[1:])} (axis {axis})"
                    )
            return values[(slice(None), *position)][:, None]

        label = f"{p.layer} unit {p.channel}" + (f" at {list(position)}" if position else "")
        columns, _, labels = _same_for_all(call.n, [0], [label])
        return BoundTarget(score, columns, [[p.channel] for _ in range(call.n)], labels,
                           value="activation")


class EmbeddingSimilarity(TargetKind):
    """The cosine similarity of the model's embedding (a named layer's output, flattened, or
    the model's) to a reference: a vector file (``.npy``, ``.pt``), an image file (its
    embedding by the same model), a text ``text:PROMPT`` (its embedding by a CLIP model's text
    tower), or, from Python, a tensor (a vector ``[D]`` or a normalized image ``[C, H, W]``).

    The model's embedding is its output, unless its module names an ``embedding_layer`` (a
    CLIP model's normalised image embedding). A ``text:`` reference needs a module with
    ``embed_text(texts: list[str]) -> Tensor`` (``[len(texts), D]``), as
    :class:`xai_core.models.clip.CLIPZeroShot` has; its embedding is the model's embedding.
    """

    name = "embedding_similarity"
    summary = "cosine similarity of an embedding (layer or output) to a reference vector/image/text"
    tasks = ("any",)

    @dataclass
    class Params:
        #: A vector file (``.npy``, ``.pt``), an image file, ``sample:NAME``, or on a CLIP model
        #: ``text:PROMPT`` (``text:a photo of a cat``); from Python also a tensor.
        reference: Any = None
        #: The layer whose output is the embedding; ``null``: the model's embedding (its
        #: output, or the layer its module names: a CLIP model's image embedding).
        layer: str | None = None

        def check(self) -> Iterator[tuple[str, str]]:
            ref = self.reference
            if ref is None:
                yield "reference", ("is required: a vector file (.npy, .pt), an image file, or "
                                    "text:PROMPT on a CLIP model")
            elif isinstance(ref, str) and ref.startswith(TEXT_PREFIX):
                if not ref[len(TEXT_PREFIX):].strip():
                    yield "reference", (f"{ref!r} has no text; write text:PROMPT "
                                        "(text:a photo of a cat)")
            elif isinstance(ref, str) and ref.startswith("sample:"):
                from xai_core.runner.inputs import SAMPLES

                if ref[len("sample:"):] not in SAMPLES:
                    yield "reference", f"{ref!r} is not a sample ({', '.join(SAMPLES)})"
            elif isinstance(ref, str) and ref != "tensor" and not Path(ref).is_file():
                yield "reference", f"file {ref!r} does not exist"

        violations = [{"reference": None}, {"reference": "no_such_vector.npy"},
                      {"reference": "text: "}]

    def __init__(self, params: Any = None, **overrides: Any):
        # A tensor reference (Python only) is kept beside the params, which hold config values.
        self.tensor = overrides.pop("reference", None)
        if not isinstance(self.tensor, Tensor):
            if self.tensor is not None:
                overrides["reference"] = self.tensor
            self.tensor = None
        else:
            overrides["reference"] = "tensor"
        super().__init__(params, **overrides)

    def bind(self, call: TargetCall) -> BoundTarget:
        embedding: Callable[[Any], Tensor]
        layer = self.params.layer or getattr(call.handle.module, "embedding_layer", None)
        if layer is not None:
            activation = _layer_capture(call, layer)

            def embedding(output: Any) -> Tensor:
                del output
                return activation().flatten(1)
        else:

            def embedding(output: Any) -> Tensor:
                return _logits(output, "embedding_similarity")

        reference = self._reference(call, embedding).flatten().float()

        def score(output: Any) -> Tensor:
            emb = embedding(output)
            if emb.shape[1] != reference.numel():
                raise TargetError(
                    f"embedding_similarity: the embedding has {emb.shape[1]} values, the "
                    f"reference {reference.numel()}; use a reference from the same layer"
                )
            ref = reference.to(emb.device, emb.dtype)
            return torch.nn.functional.cosine_similarity(emb, ref[None], dim=1)[:, None]

        name = "reference" if self.tensor is not None else str(self.params.reference)
        shown = name if name.startswith(TEXT_PREFIX) else Path(name).name
        label = f"similarity to {shown}"
        columns, _, labels = _same_for_all(call.n, [0], [label])
        return BoundTarget(score, columns, [[name] for _ in range(call.n)], labels,
                           value="cosine")

    def _reference(self, call: TargetCall, embedding: Callable[[Any], Tensor]) -> Tensor:
        ref = self.tensor if self.tensor is not None else self.params.reference
        if isinstance(ref, str) and ref.startswith(TEXT_PREFIX):
            return _text_embedding(call, ref[len(TEXT_PREFIX):].strip(), self.params.layer)
        if isinstance(ref, str) and Path(ref).suffix.lower() in (".npy", ".pt", ".pth"):
            return _vector_file(Path(ref))
        if isinstance(ref, Tensor) and ref.ndim == 1:
            return ref.detach()
        image = _reference_image(ref, call.handle) if isinstance(ref, str) else ref.detach()
        if image.ndim == 3:
            image = image[None]
        device = call.inputs.device if call.inputs is not None else None
        with torch.no_grad():
            output = call.handle.module(image.to(device=device, dtype=torch.float32))
            return embedding(output)[0]


#: The ``reference`` of ``embedding_similarity`` that is a text (on a CLIP model).
TEXT_PREFIX = "text:"


def _text_embedding(call: TargetCall, text: str, layer: str | None) -> Tensor:
    """The embedding of ``text`` by the model's text tower (``module.embed_text``), which is
    comparable with the model's own embedding only."""
    module = call.handle.module
    embed_text = getattr(module, "embed_text", None)
    if not callable(embed_text):
        raise TargetError(
            f"embedding_similarity: reference 'text:{text}' needs a model that embeds text (a "
            f"CLIP model: hf/openai/clip-vit-base-patch32 with labels); {call.handle.name} has "
            "no text encoder, so give a vector file (.npy, .pt) or an image as the reference"
        )
    own = getattr(module, "embedding_layer", None)
    if layer is not None and layer != own:
        raise TargetError(
            f"embedding_similarity: a text reference compares with the model's image "
            f"embedding{f' (layer {own!r})' if own else ''}, not with layer {layer!r}; remove "
            "`layer`"
        )
    return embed_text([text])[0].detach()


def _vector_file(path: Path) -> Tensor:
    try:
        if path.suffix.lower() == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False)).float()
        value = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise TargetError(f"embedding_similarity: cannot read {str(path)!r}: {exc}") from None
    if not isinstance(value, Tensor):
        raise TargetError(f"embedding_similarity: {str(path)!r} holds no tensor")
    return value.float()


def _reference_image(path: str, handle: Any) -> Tensor:
    from PIL import Image

    if path.startswith("sample:"):  # one of the sample photos (`xai list samples`)
        from xai_core.runner.inputs import sample_path

        path = str(sample_path(path[len("sample:"):]))
    try:
        with Image.open(path) as image:
            return handle.preprocessing(image.convert("RGB"))
    except OSError as exc:
        raise TargetError(f"embedding_similarity: cannot read image {path!r}: {exc}") from None


class Detection(TargetKind):
    """A detection of a torchvision detector, whose output is one dict per image (``boxes``
    ``[M, 4]`` in input pixels, ``labels``, ``scores``).

    The reference is the model's own detection ``detection`` on the unperturbed image (sorted
    by score, as torchvision returns them), or ``box`` with ``label``. On any batch (perturbed
    copies included) the score is that of pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``: the
    detection whose box overlaps the reference most, if its IoU is over ``iou`` and its class is
    the reference's, scores its IoU plus its score; else 0.
    """

    name = "detection"
    summary = "a detection: the model's own detection k, or the box best matching a given box"
    tasks = ("detection",)

    @dataclass
    class Params:
        #: The model's own detection explained (0: its most confident), unless ``box`` is given.
        detection: int = field(default=0, metadata={"min": 0})
        #: A reference box ``[x0, y0, x1, y1]`` in input pixels (with ``label``).
        box: list[float] | None = None
        #: The reference box's class (index or name); required with ``box``.
        label: Any = None
        #: The overlap a detection needs to count as the reference box.
        iou: float = field(default=0.5, metadata={"min": 0, "max_exclusive": 1})

        def check(self) -> Iterator[tuple[str, str]]:
            if self.box is not None:
                if len(self.box) != 4 or self.box[0] >= self.box[2] or self.box[1] >= self.box[3]:
                    yield "box", f"a box is [x0, y0, x1, y1] with x0 < x1, y0 < y1; got {self.box}"
                elif self.label is None:
                    yield "label", "is required with box: the class the box should keep"
            elif self.label is not None:
                yield "box", "is required with label (a reference box and its class)"

        violations = [{"box": [0, 0, 1]}, {"box": [0, 0, 8, 8]}, {"label": 1}]

    @property
    def needs_output(self) -> bool:  # type: ignore[override]
        return self.params.box is None

    def check_against(self, class_names: Sequence[str] | None, num_classes: int | None) -> None:
        label = self.params.label
        if label is not None and (class_names is not None or not isinstance(label, str)):
            _index(label, _Names(class_names, num_classes), "target label")

    def bind(self, call: TargetCall) -> BoundTarget:
        refs = self._references(call)
        boxes = torch.tensor([box for box, _ in refs], dtype=torch.float32)
        classes = torch.tensor([c for _, c in refs], dtype=torch.long)
        threshold = self.params.iou

        def score(output: Any) -> Tensor:
            return torch.stack([_box_scores(d, boxes, classes, threshold) for d in
                                _detections(output)])

        labels = [[f"{self._which()} {call.handle.label(c)}"] for _, c in refs]
        choices = [[{"box": box, "label": c}] for box, c in refs]
        return BoundTarget(score, [[i] for i in range(call.n)], choices, labels,
                           value="iou + score", regions=[[box] for box, _ in refs])

    def _which(self) -> str:
        return "box" if self.params.box is not None else f"detection {self.params.detection}"

    def _references(self, call: TargetCall) -> list[tuple[list[float], int]]:
        if call.choices is not None:
            return [(list(row[0]["box"]), int(row[0]["label"])) for row in call.choices]
        if self.params.box is not None:
            label = _index(self.params.label, call.handle, "target label")
            return [(list(map(float, self.params.box)), label)] * call.n
        k, refs = self.params.detection, []
        for i, d in enumerate(_detections(call.output)):
            if k >= len(d["boxes"]):
                raise TargetError(
                    f"detection target: input {i} has {len(d['boxes'])} detection(s), so no "
                    f"detection {k}; lower `detection` (or the detector's score threshold)"
                )
            refs.append((d["boxes"][k].tolist(), int(d["labels"][k])))
        return refs


def _detections(output: Any) -> list[dict[str, Tensor]]:
    """A detector's output: one dict per image with ``boxes``, ``labels`` and ``scores``."""
    if not isinstance(output, (list, tuple)) or not all(
        isinstance(d, dict) and {"boxes", "labels", "scores"} <= set(d) for d in output
    ):
        raise TargetError(
            "a detection target needs a detector's output: one dict per image with boxes, "
            f"labels and scores (torchvision's detection models); got {type(output).__name__}"
        )
    return list(output)


def _box_scores(d: dict[str, Tensor], boxes: Tensor, classes: Tensor, threshold: float) -> Tensor:
    """Each reference box's score in one image's detections ``d``: IoU + score of the detection
    overlapping it most, when over ``threshold`` and of its class; else 0. ``[n]``."""
    from torchvision.ops import box_iou

    found = d["boxes"]
    zero = found.new_zeros(len(boxes))
    if len(found) == 0:
        return zero + 0 * d["scores"].sum()
    refs = boxes.to(found.device, found.dtype)
    with torch.no_grad():  # which detection: no gradient through the others' boxes, whose
        best = box_iou(refs, found).argmax(dim=1)  # degenerate ones would give NaN (0 * inf)
    overlap = _paired_iou(refs, found[best])
    keep = (overlap > threshold) & (d["labels"][best] == classes.to(found.device))
    return torch.where(keep, overlap + d["scores"][best], zero)


def _paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of each box of ``a`` ``[n, 4]`` with the same row of ``b`` (torchvision's formula)."""
    width = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    height = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = width * height

    def area(box: Tensor) -> Tensor:
        return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])

    return inter / (area(a) + area(b) - inter)


@hookimpl
def register_targets(register: Callable[..., None]) -> None:
    for cls in (MultiLabel, Regression, LogitDifference, Segmentation, Channel, Neuron,
                EmbeddingSimilarity, Detection):
        register(cls)
