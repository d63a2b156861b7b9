"""Turning a user's target into class indices, with errors that say what the valid targets are.

A target is ``"predicted"``, ``"top-k"`` (the ``k`` most probable classes), a class index, or a
class name. For ImageNet models a name is any WordNet synonym of the class, case-insensitive
(``"lighthouse"`` is class 437, ``"beacon, lighthouse, beacon light, pharos"``), or its WordNet
id (``"n02123159"`` is ``"tiger cat"``); a name shared by several classes (``"crane"``: the bird
and the machine) is refused with the candidates listed, an unknown one with its close matches.

* :class:`ClassVocabulary` holds the names each class answers to; :func:`class_vocabulary` builds
  it for a model's class names (with WordNet synonyms and ids when they are ImageNet's).
* :func:`resolve_targets` is what :meth:`xai_core.Attributor.attribute` and
  :meth:`xai_core.Synthesizer.synthesize` use.
* :func:`check_target` checks a config's target without a model (names, ids, ``top-k``,
  lists), so a misspelt class fails before any model loads; :func:`list_classes` is behind
  ``xai list classes [MODEL] [PATTERN]``.

The WordNet synonyms and ids come from the text files timm ships (read directly: importing timm
takes about two seconds, which a name check should not pay).
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import Tensor

from xai_core.errors import TargetError, did_you_mean

if TYPE_CHECKING:
    from xai_core.contracts.model import ModelHandle

__all__ = [
    "TargetSpec",
    "PREDICTED",
    "ClassInfo",
    "ClassVocabulary",
    "class_vocabulary",
    "resolve_targets",
    "class_index",
    "top_k",
    "is_predicted",
    "check_target",
    "check_output_classes",
    "output_classes_hook",
    "list_classes",
]

TargetSpec = Union[str, int, Sequence[str | int], Tensor, Callable[[Tensor], Any], None]

PREDICTED = "predicted"

_TOP_K = re.compile(r"^top-?(\d+)$", re.IGNORECASE)
_WNID = re.compile(r"^n\d{8}$")
#: Candidates shown for an ambiguous name, at most.
_SHOWN = 6


def top_k(value: Any) -> int | None:
    """``k`` for a ``"top-k"`` target (``"top-3"``, also ``"top3"``), else ``None``.

    :raises TargetError: for ``"top-0"``.
    """
    if not isinstance(value, str):
        return None
    match = _TOP_K.match(value.strip())
    if match is None:
        return None
    k = int(match.group(1))
    if k < 1:
        raise TargetError(f"target {value!r} asks for no class; use top-1 or more")
    return k


def is_predicted(value: Any) -> bool:
    """Whether ``value`` asks for the predicted class (``"predicted"``, any case, or ``None``)."""
    return value is None or (isinstance(value, str) and value.strip().lower() == PREDICTED)


@dataclass(frozen=True)
class ClassInfo:
    """One class of a model, as ``xai list classes`` shows it.

    :ivar index: the class index (the model's output position).
    :ivar name: the display name (``handle.label(index)``).
    :ivar synonyms: every name the class answers to, the display name first.
    :ivar wnid: the WordNet id of an ImageNet class, else ``None``.
    """

    index: int
    name: str
    synonyms: tuple[str, ...]
    wnid: str | None = None


class ClassVocabulary:
    """The names a model's classes answer to, and the lookup from a name to a class index.

    A name is looked up case-insensitively among each class's *head* names first (its display
    name and its first WordNet synonym), then among all its synonyms: ``"missile"`` is class 657
    (``"missile"``) although class 744 is ``"projectile, missile"``. Several classes at the same
    level make the name ambiguous.
    """

    def __init__(
        self,
        names: Sequence[str],
        synonyms: Sequence[Sequence[str]] | None = None,
        wnids: Sequence[str] | None = None,
    ):
        self.classes = [
            ClassInfo(
                i,
                name,
                tuple(dict.fromkeys([name, *(synonyms[i] if synonyms else ())])),
                wnids[i] if wnids else None,
            )
            for i, name in enumerate(names)
        ]
        self._head: dict[str, list[int]] = {}
        self._any: dict[str, list[int]] = {}
        self._wnid = {c.wnid: c.index for c in self.classes if c.wnid}
        for c in self.classes:
            first = synonyms[c.index][:1] if synonyms else ()
            head = {c.name.lower(), *(s.lower() for s in first)}
            for text in head:
                self._head.setdefault(text, []).append(c.index)
            for text in {s.lower() for s in c.synonyms}:
                self._any.setdefault(text, []).append(c.index)

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        """The class ``name`` means: a display name, a synonym or a WordNet id.

        :raises TargetError: naming close matches for an unknown name, the candidate classes
            for an ambiguous one.
        """
        text = name.strip()
        if _WNID.match(text.lower()) and self._wnid:
            if text.lower() in self._wnid:
                return self._wnid[text.lower()]
            raise TargetError(f"WordNet id {name!r} is not one of this model's classes")
        for table in (self._head, self._any):
            # `tiger_cat` is `tiger cat` (config keys and command lines avoid spaces).
            found = table.get(text.lower()) or table.get(text.lower().replace("_", " "))
            if found and len(found) == 1:
                return found[0]
            if found:
                shown = "; ".join(self._describe(i) for i in found[:_SHOWN])
                raise TargetError(
                    f"class name {name!r} is ambiguous: {len(found)} classes answer to it "
                    f"({shown}). Give the class index, a longer name or the WordNet id."
                )
        every = list(dict.fromkeys(s for c in self.classes for s in c.synonyms))
        hint = did_you_mean(text, every, otherwise=".")
        raise TargetError(
            f"unknown class name {name!r}{hint} Give a class index or a class name "
            "(`xai list classes MODEL PATTERN` searches them)."
        )

    def _describe(self, index: int) -> str:
        c = self.classes[index]
        wnid = f" {c.wnid}" if c.wnid else ""
        return f"{index}{wnid}: {', '.join(c.synonyms)}"

    def search(self, pattern: str | None = None) -> list[ClassInfo]:
        """Classes whose index, WordNet id or any name matches ``pattern``, case-insensitive:
        a glob when it has ``*``, ``?`` or ``[``, else a substring (``None``: every class)."""
        if not pattern:
            return list(self.classes)
        wanted = pattern.strip().lower()
        if any(ch in wanted for ch in "*?["):

            def hit(text: str) -> bool:
                return fnmatch.fnmatchcase(text.lower(), wanted)
        else:

            def hit(text: str) -> bool:
                return wanted in text.lower()

        return [
            c
            for c in self.classes
            if hit(str(c.index)) or (c.wnid and hit(c.wnid)) or any(hit(s) for s in c.synonyms)
        ]


@functools.lru_cache(maxsize=1)
def _imagenet_wordnet() -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(WordNet ids, synonyms per class) of ImageNet-1k in index order, from timm's files."""
    spec = importlib.util.find_spec("timm")
    folder = Path(spec.origin).parent / "data" / "_info" if spec and spec.origin else None
    if folder is not None and (folder / "imagenet_synsets.txt").is_file():
        wnids = (folder / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
        with open(folder / "imagenet_synset_to_lemma.txt", encoding="utf-8") as lemmas:
            lemma = dict(csv.reader(lemmas, delimiter="\t"))
    else:  # a timm that keeps its files elsewhere: its public (slower to import) API
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        wnids = list(info.label_names())
        lemma = dict(zip(wnids, info.label_descriptions()))
    synonyms = tuple(tuple(s.strip() for s in lemma[w].split(",") if s.strip()) for w in wnids)
    return tuple(wnids), synonyms


@functools.lru_cache(maxsize=8)
def _vocabulary(names: tuple[str, ...]) -> ClassVocabulary:
    from xai_core.contracts.model import imagenet_class_names

    if len(names) == 1000 and list(names) == imagenet_class_names():
        try:
            wnids, synonyms = _imagenet_wordnet()
        except (ImportError, OSError, KeyError):
            return ClassVocabulary(names)  # without timm: the display names still work
        return ClassVocabulary(names, synonyms, wnids)
    return ClassVocabulary(names)


def class_vocabulary(class_names: Sequence[str] | None) -> ClassVocabulary | None:
    """The :class:`ClassVocabulary` of a model's class names (``None`` for a model without
    names); ImageNet-1k's names get their WordNet synonyms and ids."""
    if not class_names:
        return None
    return _vocabulary(tuple(class_names))


def _check_in_range(index: int, num_classes: int) -> None:
    if index >= num_classes:
        raise TargetError(
            f"target class {index} is out of range for a model with {num_classes} classes "
            f"(valid: 0..{num_classes - 1})"
        )


def check_output_classes(targets: Tensor, logits: Tensor) -> None:
    """Check class indices ``targets`` against the width of the model's ``logits``
    ``[N, classes]``, for a model that knows its number of classes only from its output.

    :raises TargetError: naming the valid range, for an index past the output.
    """
    if targets.numel() and logits.ndim == 2:
        _check_in_range(int(targets.max()), logits.shape[1])


def output_classes_hook(targets: Tensor) -> Callable[..., None]:
    """A forward hook for the model itself that checks ``targets`` (see
    :func:`check_output_classes`) against each output of the model that is ``[N, classes]``:
    the check costs no forward pass of its own, it reads the logits the technique computes."""
    highest = int(targets.max()) if targets.numel() else -1

    def hook(module: Any, inputs: Any, output: Any) -> None:
        del module, inputs
        if isinstance(output, Tensor) and output.ndim == 2:
            _check_in_range(highest, output.shape[1])

    return hook


def class_index(value: Any, class_names: Sequence[str] | None, num_classes: int | None) -> int:
    """One target value (index, numeric string, class name or WordNet id) as a class index."""
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, bool):
        raise TargetError(f"target {value!r} is a boolean; give a class index or name")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise TargetError(f"target class {value} is negative; class indices start at 0")
        if num_classes is not None:
            _check_in_range(value, num_classes)
        return value
    if isinstance(value, str):
        if top_k(value) is not None or is_predicted(value):
            raise TargetError(
                f"target {value!r} stands for the whole target of an input, not one class of a "
                "list; give it alone"
            )
        vocabulary = class_vocabulary(class_names)
        if vocabulary is None:
            raise TargetError(
                f"target {value!r} is a class name, but this model has no class names; "
                "give a class index"
            )
        return vocabulary.index(value)
    raise TargetError(
        f"target {value!r} of type {type(value).__name__} is not a class index, class name or "
        f"'{PREDICTED}'"
    )


def resolve_targets(
    target: TargetSpec,
    n: int,
    handle: ModelHandle,
    logits: Callable[[], Tensor] | None = None,
) -> Tensor:
    """Class indices ``[n]`` (or ``[n, k]``) for ``target``.

    :param target: ``"predicted"`` (or ``None``), ``"top-k"`` (the ``k`` most probable classes
        of each item, most probable first: ``[n, k]``), a class index, name or WordNet id for
        every item, a sequence/tensor with one per item, or one equal-length list per item
        (several targets per input: the result is then ``[n, k]``).
        A callable is given the logits ``[n, classes]`` and returns one of these (an
        experiment picks its images' targets from the same pass that explains them this way).
    :param n: batch size.
    :param handle: gives class names and the number of classes.
    :param logits: called (under ``no_grad``) only when the predicted classes are needed.
    """
    scores = _Scores(logits)
    if callable(target) and not isinstance(target, Tensor):
        chosen = target(scores())
        if callable(chosen) and not isinstance(chosen, Tensor):
            raise TargetError("a target callable must return targets, not another callable")
        return resolve_targets(chosen, n, handle, logits)
    chosen = _from_output(target, scores)
    if chosen is not None:
        return chosen
    return _given(target, n, handle, scores)


class _Scores:
    """The model's logits on the batch, asked for only when a target needs them."""

    def __init__(self, logits: Callable[[], Tensor] | None):
        self.logits = logits

    def __call__(self) -> Tensor:
        if self.logits is None:
            raise TargetError(f"target '{PREDICTED}' or 'top-k' needs the model's output")
        with torch.no_grad():
            return self.logits()


def _from_output(target: Any, scores: _Scores) -> Tensor | None:
    """The classes of ``"predicted"`` and ``"top-k"`` targets, else ``None``."""
    if is_predicted(target):
        return scores().argmax(dim=1).long().cpu()
    k = top_k(target)
    if k is None:
        return None
    out = scores()
    if k > out.shape[1]:
        raise TargetError(f"target {target!r} asks for {k} classes of a model with {out.shape[1]}")
    return out.topk(k, dim=1).indices.long().cpu()


def _given(target: Any, n: int, handle: ModelHandle, scores: _Scores) -> Tensor:
    """The classes of a target that names them: one for all, one per item or several each."""
    names, num_classes = handle.class_names, handle.num_classes
    if isinstance(target, Tensor):
        target = target.tolist() if target.ndim else target.item()
    if isinstance(target, (str, int)):
        return torch.full((n,), class_index(target, names, num_classes), dtype=torch.long)
    if not isinstance(target, Sequence):
        raise TargetError(
            f"target {target!r} is not '{PREDICTED}', 'top-k', a class index, a class name or a "
            "list of them"
        )
    if len(target) != n:
        raise TargetError(
            f"{len(target)} targets given for {n} inputs; give one target per input, or a "
            "single target for all"
        )
    if all(isinstance(t, Sequence) and not isinstance(t, str) for t in target):
        return _several_per_item(target, n, handle)
    wants_prediction = [isinstance(t, str) and is_predicted(t) for t in target]
    pred = scores().argmax(dim=1).long().cpu() if any(wants_prediction) else None
    out = [
        int(pred[i]) if pred is not None and wants_prediction[i]
        else class_index(t, names, num_classes)
        for i, t in enumerate(target)
    ]
    return torch.tensor(out, dtype=torch.long)


def _several_per_item(target: Sequence[Any], n: int, handle: ModelHandle) -> Tensor:
    sizes = {len(t) for t in target}
    if len(sizes) != 1 or 0 in sizes:
        raise TargetError(
            "several targets per input must be the same non-zero number for every input; got "
            f"{sorted(sizes)}"
        )
    return torch.tensor(
        [[class_index(t, handle.class_names, handle.num_classes) for t in row] for row in target],
        dtype=torch.long,
    )


#: Target words that need more than the model: the image's folder label (runs only).
_RUN_WORDS = ("label",)


def check_target(
    target: Any,
    class_names: Sequence[str] | None,
    num_classes: int | None = None,
    *,
    several: bool = True,
) -> None:
    """Check a config's ``target`` against a model's classes without loading the model.

    Accepts ``"predicted"``, ``"top-k"``, ``"label"`` (the ImageFolder label, known only at
    run time), a class index, name or WordNet id, and (``several``) a list of those, meaning
    every image gets each of them: at most one ``top-k`` in a list and no ``"predicted"`` beside
    it (the top-1 class is the prediction), no class twice.

    :param class_names: the model's class names (``imagenet_class_names()`` for ImageNet
        models), or ``None`` when unknown (names cannot be checked then; indices are checked
        against ``num_classes``).
    :raises TargetError: naming the bad entry and the fix.
    """
    num_classes = num_classes if num_classes is not None else (
        len(class_names) if class_names else None
    )
    if isinstance(target, (list, tuple)):
        if not several:
            raise TargetError(f"target {list(target)!r}: give a single target here")
        _check_target_list(list(target), class_names, num_classes)
        return
    if is_predicted(target) or (isinstance(target, str) and target.strip() in _RUN_WORDS):
        return
    k = top_k(target)
    if k is not None:
        if num_classes is not None and k > num_classes:
            raise TargetError(
                f"target {target!r} asks for {k} classes of a model with {num_classes}"
            )
        return
    if isinstance(target, str) and not target.strip().lstrip("-").isdigit() and not class_names:
        return  # a name for a model whose names are known only once it loads
    class_index(target, class_names, num_classes)


def _check_target_list(
    target: list[Any], class_names: Sequence[str] | None, num_classes: int | None
) -> None:
    """A list of targets every image gets (see :func:`check_target`)."""
    if not target:
        raise TargetError("target is an empty list; give 'predicted', 'top-k' or classes")
    ks = [t for t in target if top_k(t) is not None]
    if len(ks) > 1:
        raise TargetError(
            f"target list {target!r} has several top-k entries ({', '.join(ks)}); keep the "
            "largest"
        )
    if ks and any(is_predicted(t) for t in target):
        raise TargetError(
            f"target list {target!r} has both 'predicted' and {ks[0]!r}, whose first class is "
            "the prediction; drop 'predicted'"
        )
    seen: dict[Any, Any] = {}
    for entry in target:
        if isinstance(entry, (list, tuple, dict)):
            raise TargetError(
                f"target list entry {entry!r} is not a single target; a list in `target` "
                "means every image gets each of its entries"
            )
        check_target(entry, class_names, num_classes, several=False)
        key = _class_key(entry, class_names, num_classes)
        if key in seen:
            raise TargetError(
                f"target list {target!r} names the same class twice ({seen[key]!r} and "
                f"{entry!r})"
            )
        seen[key] = entry


def _class_key(entry: Any, class_names: Sequence[str] | None, num_classes: int | None) -> Any:
    """What makes two entries of a target list the same class (as far as is known)."""
    if is_predicted(entry) or top_k(entry) is not None or entry in _RUN_WORDS:
        return str(entry).strip().lower()
    if class_names is not None or not isinstance(entry, str):
        return class_index(entry, class_names, num_classes)
    return entry


def list_classes(class_names: Sequence[str] | None, pattern: str | None = None) -> list[ClassInfo]:
    """The rows of ``xai list classes [MODEL] [PATTERN]``: index, WordNet id (ImageNet) and
    every synonym of each class matching ``pattern`` (see :meth:`ClassVocabulary.search`)."""
    vocabulary = class_vocabulary(class_names)
    return vocabulary.search(pattern) if vocabulary is not None else []
