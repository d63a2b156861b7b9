"""Models built by code a config names: your own factory callable, and torch.hub entrypoints.

- ``model: {factory: "nets.py:build", args: {...}, input_size: 64, labels: labels.txt}``: a
  callable in a ``.py`` file (or an importable module) that returns an ``nn.Module``, called with
  ``args`` as keyword arguments; the registered model ``factory`` (:func:`load_factory`).
- ``hub/<owner>/<repo>:<entrypoint>``: ``torch.hub.load`` from GitHub (from torch.hub's cache when
  the repo is there; offline and not cached, it fails at once), or ``hub/<directory>:<entrypoint>``
  with ``options: {source: local}``, a folder with a ``hubconf.py``; the registered family
  ``hub/*`` (:func:`load_hub`).

Such a model does not know its own input, so the config says it, with the same keys for both
forms: ``input_size`` (required), ``mean`` and ``std`` (ImageNet's by default) and ``labels`` (its
class names: a text file with one a line, or a list), all turned into the handle by
:func:`described_handle`. :func:`check_factory` and :func:`check_hub` check every file and name
at config time without running the code (they read the source's top level). What does not live
here: the registry's front door (:mod:`xai_core.models.loading`), the handle contract and
checkpoint loading (:mod:`xai_core.contracts.model`); ``plugins/models.py`` registers both forms.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.error import URLError

import torch
from torch import nn

from xai_core.contracts.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelHandle,
    Preprocessing,
    load_checkpoint,
)
from xai_core.errors import ConfigError, ModelLoadError, XaiError, did_you_mean
from xai_core.models.huggingface import HF_PREFIX, hf_label
from xai_core.models.labels import read_labels
from xai_core.models.network import reachable

__all__ = [
    "FACTORY_MODEL",
    "HUB_PREFIX",
    "anchored",
    "check_factory",
    "check_hub",
    "default_label",
    "described_handle",
    "load_factory",
    "load_hub",
    "read_labels",
    "split_factory",
]

#: The registered name of a model a config builds with ``factory:`` (``name`` may be left out).
FACTORY_MODEL = "factory"
#: The prefix of the torch.hub family: ``hub/<owner>/<repo>:<entrypoint>``.
HUB_PREFIX = "hub/"
#: ``options`` a hub model takes (the entrypoint's own keyword arguments go in ``args``).
HUB_OPTIONS = ("source", "trust_repo")
HUB_SOURCES = ("github", "local")
FACTORY_FORM = "FILE.py:CALLABLE (or package.module:CALLABLE)"
HUB_FORM = "hub/<owner>/<repo>:<entrypoint>, or hub/<directory>:<entrypoint> with options: " \
    "{source: local}"


# --- the description a config gives: input size, mean/std, labels ---------------------------


def _check_stats(key: str, value: Sequence[float] | None) -> None:
    if value is None:
        return
    if len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ConfigError(
            f"bad config value at 'model.{key}': {list(value)!r}; give three numbers, one per "
            "RGB channel (e.g. [0.5, 0.5, 0.5])"
        )
    if key == "std" and min(value) <= 0:
        raise ConfigError(
            f"bad config value at 'model.std': {list(value)!r}; every std must be > 0"
        )


def check_description(
    what: str,
    input_size: int | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    labels: Any,
) -> None:
    """The keys that describe a model from code: ``input_size`` given, three numbers each for
    ``mean`` and ``std``, ``labels`` readable."""
    if input_size is None:
        raise ConfigError(
            f"{what} needs `input_size`: the side in pixels of the square images it takes (e.g. "
            "input_size: 224); a model built from code cannot say it itself"
        )
    _check_stats("mean", mean)
    _check_stats("std", std)
    read_labels(labels)


def described_handle(
    module: nn.Module,
    *,
    input_size: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    labels: Any,
    weights: str,
    info: dict[str, Any],
    checkpoint: str | None = None,
) -> ModelHandle:
    """The handle of a module that code built: ``checkpoint`` loaded (``weights_only=True``),
    the preprocessing the config describes (ImageNet's mean/std unless given), the class names
    of ``labels``, and one forward pass at ``input_size`` that checks it returns logits
    ``[1, classes]`` (as many as ``labels`` names)."""
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
        weights = "checkpoint"
    names = read_labels(labels)
    preprocessing = Preprocessing(
        mean=tuple(mean) if mean is not None else IMAGENET_MEAN,
        std=tuple(std) if std is not None else IMAGENET_STD,
    ).at_size(input_size)
    module.eval()
    _check_logits(module, input_size, names, info["source"])
    return ModelHandle(
        name=info["source"], module=module, preprocessing=preprocessing, class_names=names,
        info={"weights": weights, "checkpoint": checkpoint, **info},
    )


def _check_logits(module: nn.Module, size: int, names: list[str] | None, source: str) -> None:
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, size, size))
    except Exception as exc:
        raise ModelLoadError(
            f"the model of {source} fails on a 1x3x{size}x{size} input ({type(exc).__name__}: "
            f"{exc}); check `input_size` (the images it takes)"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        got = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else \
            type(out).__name__
        raise ModelLoadError(
            f"the model of {source} returns {got}; a classifier returns logits [N, classes] "
            "(wrap it so that forward returns them)"
        )
    if names is not None and out.shape[1] != len(names):
        raise ModelLoadError(
            f"the model of {source} returns {out.shape[1]} logits but `labels` names "
            f"{len(names)} classes; give one label per output"
        )


# --- config paths ------------------------------------------------------------------------------


def _is_file(target: str) -> bool:
    return target.endswith(".py")


def anchored(
    name: str, factory: str | None, labels: Any, options: dict[str, Any], folder: Path
) -> tuple[str, str | None, Any]:
    """``name``, ``factory`` and ``labels`` with their relative files made absolute against the
    config file's ``folder``: the factory's ``.py`` file, a labels file, a local hub directory
    (so that the config the run saves beside its outputs still finds them)."""
    def absolute(path: str) -> str:
        return str((folder / Path(path).expanduser()).resolve())

    if factory is not None:
        target, sep, attr = factory.rpartition(":")
        if sep and _is_file(target) and not Path(target).expanduser().is_absolute():
            factory = f"{absolute(target)}:{attr}"
    if isinstance(labels, str) and not Path(labels).expanduser().is_absolute():
        labels = absolute(labels)
    if name.startswith(HUB_PREFIX) and options.get("source") == "local":
        directory, sep, entry = name[len(HUB_PREFIX):].rpartition(":")
        if sep and directory and not Path(directory).expanduser().is_absolute():
            name = f"{HUB_PREFIX}{absolute(directory)}:{entry}"
    return name, factory, labels


def default_label(name: str, factory: str | None) -> str:
    """A model's label when the config gives none: the factory's callable, a hub model's
    entrypoint, ``hf/<folder name>`` for a Hugging Face directory, else the registered name."""
    if name.startswith(HF_PREFIX):
        return hf_label(name)
    if factory is not None and ":" in factory:
        return factory.rpartition(":")[2].rpartition(".")[2]
    if name.startswith(HUB_PREFIX) and ":" in name:
        return name.rpartition(":")[2]
    return name


# --- reading a source without running it -------------------------------------------------------


def _bound_names(body: list[ast.stmt]) -> tuple[set[str], set[str]] | None:
    """Names a module's top level binds, and which of them are functions or classes; ``None``
    when it cannot be told (``from x import *``, a module ``__getattr__``)."""
    names: set[str] = set()
    defined: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        else:
            inner = _bound_names(_nested_bodies(node))
            if inner is None:
                return None
            names |= inner[0]
            defined |= inner[1]
    return names, defined


def _nested_bodies(node: ast.stmt) -> list[ast.stmt]:
    """The statements an ``if``, ``try``, ``with`` or ``for`` at the top level runs."""
    found: list[ast.stmt] = []
    for key in ("body", "orelse", "finalbody"):
        found.extend(getattr(node, key, None) or [])
    for handler in getattr(node, "handlers", None) or []:
        found.extend(handler.body)
    return found


def _check_defines(path: Path, attr: str, what: str, fix: str) -> None:
    """``attr`` is bound at the top level of the Python file ``path`` (read, not run)."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except SyntaxError as exc:
        raise ConfigError(f"{what}: {str(path)!r} line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: {str(path)!r} cannot be read: {exc}") from None
    bound = _bound_names(tree.body)
    head = attr.partition(".")[0]
    if bound is not None and head not in bound[0]:
        public = sorted(n for n in bound[1] if not n.startswith("_"))
        raise ConfigError(
            f"{what}: {str(path)!r} defines no {head!r}"
            f"{did_you_mean(head, public, otherwise='.')} {fix}"
            + (f" Functions and classes there: {', '.join(public)}." if public else "")
        )


# --- factory ---------------------------------------------------------------------------------


def split_factory(factory: str | None) -> tuple[str, str]:
    """``"nets.py:build"`` as ``("nets.py", "build")``; a :class:`ConfigError` else."""
    if not isinstance(factory, str) or not factory.strip():
        raise ConfigError(
            f"model {FACTORY_MODEL!r} needs `factory: {FACTORY_FORM}`: the file or module and the "
            "callable that returns your nn.Module"
        )
    target, sep, attr = factory.rpartition(":")
    if not sep or not target or not all(part.isidentifier() for part in attr.split(".")):
        raise ConfigError(
            f"bad config value at 'model.factory': {factory!r}; write it as {FACTORY_FORM}, "
            "e.g. nets.py:build"
        )
    if not _is_file(target) and not all(part.isidentifier() for part in target.split(".")):
        raise ConfigError(
            f"bad config value at 'model.factory': {target!r} is neither a .py file nor a "
            f"module name; write it as {FACTORY_FORM}"
        )
    return target, attr


def _factory_file(factory: str) -> Path | None:
    """The Python file a factory names: its ``.py`` file, or an importable module's source
    (``None`` when the module has no source file to read)."""
    target, attr = split_factory(factory)
    what = f"model.factory {factory!r}"
    if _is_file(target):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{what}: the file {str(path)!r} does not exist; a relative path is relative to "
                "the config file's folder"
            )
        return path
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError) as exc:
        spec = None
        reason = f" ({type(exc).__name__}: {exc})"
    else:
        reason = ""
    if spec is None:
        raise ConfigError(
            f"{what}: no module {target!r} can be imported{reason}; install it, or name a file "
            f"instead ({FACTORY_FORM})"
        )
    origin = spec.origin
    return Path(origin) if origin and origin.endswith(".py") else None


def check_factory(
    factory: str | None = None,
    args: dict[str, Any] | None = None,
    labels: Any = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    pretrained: bool = True,
    checkpoint: str | None = None,
    **options: Any,
) -> None:
    """Check what :func:`load_factory` is given without running any of the code: the file or
    module exists and defines the callable, the description is complete, labels are readable."""
    path = _factory_file(factory or "")
    _not_for_code(options, pretrained, f"factory {factory!r}", "factory callable")
    if path is not None:
        _check_defines(path, split_factory(factory)[1], f"model.factory {factory!r}",
                       "Name the function that returns your nn.Module after the ':'.")
    check_description(f"factory model {factory!r}", input_size, mean, std, labels)


def _not_for_code(options: dict[str, Any], pretrained: bool, what: str, kind: str) -> None:
    if options:
        raise ConfigError(
            f"model options {', '.join(sorted(options))} do not apply to {what}; give the "
            f"{kind}'s keyword arguments as `args`"
        )
    if not pretrained:
        raise ConfigError(
            f"`pretrained: false` does not apply to {what}: its code makes the weights; pass "
            f"what it takes in `args` (e.g. args: {{pretrained: false}}), or leave it out"
        )


def _module_name(path: Path) -> str:
    """A module name of its own for each factory file (two ``nets.py`` never collide)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"xai_factory_{digest}_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while its code runs (it may import its neighbours)."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _import_factory(target: str, factory: str) -> ModuleType:
    if not _is_file(target):
        try:
            return importlib.import_module(target)
        except Exception as exc:
            raise ModelLoadError(
                f"importing {target!r} for model.factory {factory!r} raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    path = Path(target).expanduser().resolve()
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"model.factory {factory!r}: {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        with _on_path(path.parent):
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelLoadError(
            f"running {str(path)!r} for model.factory {factory!r} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return module


def _attribute(module: ModuleType, attr: str, factory: str) -> Any:
    """The callable ``attr`` (``build``, ``Net.small``) of the imported factory ``module``."""
    value: Any = module
    walked: list[str] = []
    for part in attr.split("."):
        if not hasattr(value, part):
            owner = value if walked else module
            callables = sorted(
                n for n, v in vars(owner).items() if callable(v) and not n.startswith("_")
            )
            where = f"{'.'.join(walked)!r}" if walked else "the module"
            raise ModelLoadError(
                f"model.factory {factory!r}: {where} has no {part!r}"
                f"{did_you_mean(part, callables, otherwise='.')} Callables there: "
                f"{', '.join(callables) or '(none)'}."
            )
        value = getattr(value, part)
        walked.append(part)
    if not callable(value):
        raise ModelLoadError(
            f"model.factory {factory!r}: {attr!r} is a {type(value).__name__}, not a callable; "
            "name the function that returns your nn.Module"
        )
    return value


def _built(build: Any, args: dict[str, Any], what: str) -> nn.Module:
    """``build(**args)``, which must return an ``nn.Module``; its errors say what was called."""
    try:
        module = build(**args)
    except XaiError:
        raise
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ModelLoadError(
            f"{what}({shown}) raised {type(exc).__name__}: {exc}; fix the callable or its `args`"
        ) from exc
    if not isinstance(module, nn.Module):
        raise ModelLoadError(
            f"{what} returned {type(module).__name__}, not a torch.nn.Module; it must return the "
            "model itself"
        )
    return module


def load_factory(
    factory: str | None = None,
    args: dict[str, Any] | None = None,
    labels: Any = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    pretrained: bool = True,
    checkpoint: str | None = None,
) -> ModelHandle:
    """Your own model: ``factory`` (``"nets.py:build"``: a ``.py`` file, or an importable
    module, and a callable in it) called with ``args`` as keyword arguments; ``checkpoint``
    loads a state dict into it (``weights_only=True``). ``input_size`` (required), ``mean`` and
    ``std`` (ImageNet's unless given) describe its input, ``labels`` its classes (a text file,
    one name a line, or a list). ``pretrained`` does not apply: the callable makes the weights."""
    check_factory(factory, args, labels, mean, std, input_size, pretrained, checkpoint)
    assert factory is not None and input_size is not None
    target, attr = split_factory(factory)
    build = _attribute(_import_factory(target, factory), attr, factory)
    module = _built(build, dict(args or {}), f"factory {factory}")
    return described_handle(
        module, input_size=input_size, mean=mean, std=std, labels=labels, weights="factory",
        info={"source": f"factory {factory}", "factory": factory}, checkpoint=checkpoint,
    )


# --- torch.hub -------------------------------------------------------------------------------


def _split_hub(arch: str) -> tuple[str, str]:
    """``"owner/repo[:ref]:entrypoint"`` (or ``"directory:entrypoint"``) as (repo, entrypoint)."""
    repo, sep, entry = arch.rpartition(":")
    if not sep or not repo or not entry.isidentifier():
        raise ConfigError(
            f"model {HUB_PREFIX}{arch!r} names no entrypoint; write {HUB_FORM}"
        )
    return repo, entry


def _github_repo(repo: str) -> tuple[str, str, str | None]:
    """``"owner/name[:ref]"`` as (owner, name, ref)."""
    path, sep, ref = repo.partition(":")
    parts = path.split("/")
    if len(parts) != 2 or not all(parts) or (sep and not ref):
        raise ConfigError(
            f"model {HUB_PREFIX}{repo}: {path!r} is not <owner>/<repo>; write {HUB_FORM}"
        )
    return parts[0], parts[1], ref or None


def _hub_options(source: str, trust_repo: Any, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(
            f"model options {', '.join(sorted(options))} do not apply to a hub model (it takes "
            f"{', '.join(HUB_OPTIONS)}); give the entrypoint's keyword arguments as `args`"
        )
    if source not in HUB_SOURCES:
        raise ConfigError(
            f"bad config value at 'model.options.source': {source!r}"
            f"{did_you_mean(str(source), HUB_SOURCES, 1, otherwise='.')} Use github (the default) "
            "or local (a directory with a hubconf.py)"
        )
    if trust_repo not in (None, True, False):
        raise ConfigError(
            f"bad config value at 'model.options.trust_repo': {trust_repo!r}; use true to trust "
            "the repo's code (torch.hub adds it to its trusted list)"
        )


def check_hub(
    arch: str,
    source: str = "github",
    trust_repo: bool | None = None,
    args: dict[str, Any] | None = None,
    labels: Any = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    pretrained: bool = True,
    checkpoint: str | None = None,
    **options: Any,
) -> None:
    """Check what :func:`load_hub` is given without fetching or running anything: the name's
    form, the options, a local directory's ``hubconf.py`` and its entrypoint, the description."""
    repo, entry = _split_hub(arch)
    _hub_options(source, trust_repo, options)
    _not_for_code({}, pretrained, f"hub model {HUB_PREFIX}{arch}", "entrypoint")
    if source == "local":
        hubconf = Path(repo).expanduser() / "hubconf.py"
        if not hubconf.is_file():
            raise ConfigError(
                f"model {HUB_PREFIX}{arch}: {str(hubconf)!r} does not exist; with options: "
                "{source: local} the name is hub/<directory>:<entrypoint>, a directory (relative "
                "to the config file's folder) with a hubconf.py"
            )
        _check_defines(hubconf, entry, f"model {HUB_PREFIX}{arch}",
                       "Name one of its entrypoints after the ':'.")
    else:
        _github_repo(repo)
    check_description(f"hub model {HUB_PREFIX}{arch}", input_size, mean, std, labels)


def _cached_repo(owner: str, name: str, ref: str | None) -> str | None:
    """``owner/name:ref`` as torch.hub's cache holds it (``ref`` main or master when not given),
    or ``None`` when the repo is not in the cache."""
    hub_dir = Path(torch.hub.get_dir())
    for candidate in ([ref] if ref else ["main", "master"]):
        if (hub_dir / f"{owner}_{name}_{candidate.replace('/', '_')}").is_dir():
            return f"{owner}/{name}:{candidate}"
    return None


def _trusted(owner: str, name: str) -> bool:
    """Whether torch.hub trusts ``owner/name`` already (its trusted list or owners)."""
    listed = Path(torch.hub.get_dir()) / "trusted_list"
    lines = listed.read_text().split() if listed.is_file() else []
    return f"{owner}_{name}" in lines or owner in getattr(torch.hub, "_TRUSTED_REPO_OWNERS", ())


def _github_source(repo: str, trust_repo: bool | None) -> str:
    """The ``repo_or_dir`` to give ``torch.hub.load``: the cached copy's name when there is one
    (no network then); else a fast failure offline, or for a repo nobody said to trust."""
    owner, name, ref = _github_repo(repo)
    cached = _cached_repo(owner, name, ref)
    if cached is not None:
        return cached
    if not reachable("github.com"):
        raise ModelLoadError(
            f"torch.hub could not fetch {owner}/{name} (offline?); it is not in torch.hub's "
            f"cache ({torch.hub.get_dir()}): clone it and use source: local (model: "
            f"{{name: 'hub/<clone>:<entrypoint>', options: {{source: local}}}})"
        )
    if not trust_repo and not _trusted(owner, name):
        raise ModelLoadError(
            f"torch.hub repo {owner}/{name} is not trusted yet and its hubconf.py runs as code; "
            "if you trust it, set options: {trust_repo: true}"
        )
    return repo


def load_hub(
    arch: str,
    source: str = "github",
    trust_repo: bool | None = None,
    args: dict[str, Any] | None = None,
    labels: Any = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    pretrained: bool = True,
    checkpoint: str | None = None,
) -> ModelHandle:
    """A torch.hub entrypoint: ``hub/<owner>/<repo>[:<ref>]:<entrypoint>`` (from torch.hub's
    cache when there; offline otherwise it fails at once, naming the fix), or with ``source:
    local`` ``hub/<directory>:<entrypoint>``. ``args`` are the entrypoint's keyword arguments;
    ``trust_repo: true`` trusts a repo torch.hub does not yet. ``input_size``, ``mean``, ``std``,
    ``labels`` and ``checkpoint`` as for ``factory``."""
    check_hub(arch, source, trust_repo, args, labels, mean, std, input_size, pretrained,
              checkpoint)
    assert input_size is not None
    repo, entry = _split_hub(arch)
    where = repo if source == "local" else _github_source(repo, trust_repo)

    def build(**kwargs: Any) -> Any:
        trust: bool | str = True if source == "local" or trust_repo else "check"
        try:
            return torch.hub.load(where, entry, source=source, trust_repo=trust, verbose=False,
                                  **kwargs)
        except URLError as exc:  # HTTPError too: a missing repo, branch or rate limit
            raise ModelLoadError(
                f"torch.hub could not fetch {repo} ({exc}); check the name, or clone it and use "
                "source: local"
            ) from exc

    module = _built(build, dict(args or {}), f"torch.hub entrypoint {HUB_PREFIX}{arch}")
    return described_handle(
        module, input_size=input_size, mean=mean, std=std, labels=labels, weights="torch.hub",
        info={"source": f"{HUB_PREFIX}{arch}", "hub": repo, "entrypoint": entry},
        checkpoint=checkpoint,
    )
