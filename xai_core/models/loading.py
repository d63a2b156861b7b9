"""The model registry's front door: :func:`load_model`, :func:`list_models`, name and layer checks.

Models come from plugins (``register_models``); a name is either a registered model
(``efficientnet_lite0``, ``factory``) or ``family/arch`` for a registered family (``timm/*``,
``hub/*``). What does not live here: the handle contract (:mod:`xai_core.contracts.model`), the
timm / torchvision adapters (:mod:`xai_core.models.timm`, :mod:`xai_core.models.torchvision`) and
models from a config's own code (:mod:`xai_core.models.sources`).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from xai_core.contracts.model import ModelEntry, ModelHandle
from xai_core.errors import UnknownNameError, XaiError
from xai_core.plugins.manager import get_registries
from xai_core.plugins.registry import QUALIFIER, Registry


def _model_registry() -> Registry[ModelEntry]:
    return get_registries().models


def _resolve(name: str) -> tuple[ModelEntry, str | None]:
    """The registered model or family behind ``name``, and the architecture for a family.

    ``plugin:name`` names the plugin too, also for a family's member (``models:timm/resnet18``).
    """
    registry = _model_registry()
    if name in registry:
        return registry.get(name), None
    for entry in registry:  # first unqualified: ``hub/<owner>/<repo>:<entrypoint>`` has a ':'
        if entry.obj.is_family and name.startswith(entry.obj.prefix):
            return entry.obj, name[len(entry.obj.prefix) :]
    plugin, qualified, member = name.partition(QUALIFIER)
    for entry in registry:
        model = entry.obj
        if qualified and entry.plugin != plugin:
            continue
        wanted = member if qualified else name
        if model.is_family and wanted.startswith(model.prefix):
            return model, wanted[len(model.prefix) :]
    raise UnknownNameError("model", name, list_models(), "models", note=registry.missing_note(name))


def model_entry(name: str) -> ModelEntry:
    """The registered model or family that loads ``name`` (close matches when unknown)."""
    return _resolve(name)[0]


def check_model_name(name: str) -> None:
    """Raise :class:`UnknownNameError` (with close matches) unless ``name`` can be loaded."""
    entry, arch = _resolve(name)
    if arch is not None and entry.lister is not None:
        known = entry.lister()
        if arch not in known:
            raise UnknownNameError(
                "model", name, [entry.prefix + a for a in known], f"models '{entry.prefix}*'"
            )


def check_model_options(name: str, **options: Any) -> None:
    """Check the options of model ``name`` with its entry's ``check`` (if it has one) without
    building anything: a model from code (``factory``, ``hub/*``) checks its files and names."""
    check_model_name(name)
    entry, arch = _resolve(name)
    options.pop("device", None)
    if entry.check is not None and arch is not None:
        entry.check(arch, **options)
    elif entry.check is not None:
        entry.check(**options)


def load_model(name: str, **options: Any) -> ModelHandle:
    """Build a registered model: ``load_model("timm/resnet18", pretrained=False)``.

    :param name: a registered name (``xai list models`` shows them) or ``family/arch``.
    :param options: ``pretrained`` (download hub weights; default ``True``), ``checkpoint`` (a
        local file, loaded with ``weights_only=True``), ``device``, and loader-specific keyword
        arguments (for ``factory`` and ``hub/*``: ``factory``, ``args``, ``input_size``, ``mean``,
        ``std``, ``labels``; see :mod:`xai_core.models.sources`). The entry's ``check`` runs first.
    """
    device = options.pop("device", None)
    check_model_options(name, **options)
    entry, arch = _resolve(name)
    handle = entry.loader(arch, **options) if arch is not None else entry.loader(**options)
    if not isinstance(handle, ModelHandle):
        raise XaiError(
            f"the loader of model {name!r} returned {type(handle).__name__}, not a ModelHandle"
        )
    handle.name = name
    handle.module.eval()
    if device is not None:
        handle.to(device)
    return handle


def list_models(pattern: str | None = None) -> list[str]:
    """Loadable model names, optionally filtered by an fnmatch ``pattern`` (``"timm/res*"``)."""
    names: list[str] = []
    for entry in _model_registry():
        model = entry.obj
        if model.is_family:
            if model.lister is not None:
                names.extend(model.prefix + arch for arch in model.lister())
        else:
            names.append(model.name)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names)


def check_model_layer(name: str, layer: str, **options: Any) -> str:
    """Check a ``layer`` name against model ``name`` before a run loads its weights.

    The architecture is built with random weights (``pretrained=False``, no checkpoint), which
    has the same module paths and costs no download; ``options`` are the other loader options
    (``num_classes`` changes the head). ``"auto"`` always passes.

    :raises UnknownNameError: naming close matches and ``xai list layers NAME`` (see
        :func:`xai_core.nn.layers.check_layer`).
    """
    if layer == "auto":
        return layer
    options = {k: v for k, v in options.items() if k not in ("pretrained", "checkpoint", "device")}
    if not model_entry(name).from_code:  # code makes its own weights: nothing to download
        options["pretrained"] = False
    handle = load_model(name, **options)
    return handle.check_layer(layer)
