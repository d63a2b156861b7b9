"""Hook specifications: the whole contract between xai-core and its plugins.

A plugin is a module (or object) with functions decorated with ``xai_core.hookimpl`` whose names
match the specs below. xai-core finds plugins through the ``xai_core`` entry-point group, the
built-in techniques included, so a third-party package is loaded exactly like ``saliency``::

    [project.entry-points.xai_core]
    my_plugin = "my_package.plugin"

Every hook here is a *registration callback*: xai-core calls it once per plugin, with a
``register`` function, and the plugin calls ``register`` for each thing it provides. The core owns
the registries, so it reports duplicate names (naming both plugins), wrong types and unknown names
in one place. A plugin implements only the hooks it needs, and its implementation may omit the
``register`` argument only if it registers nothing.

Names: the first plugin to register a name keeps it (xai-core's built-in plugins load first, then
installed plugins by entry-point name). Everything a plugin registers is also reachable as
``plugin:name``, where ``plugin`` is the entry-point name (``saliency:saliency``), wherever a name
is accepted: ``get_attributor``, ``load_model``, config ``methods`` and ``metrics``,
``xai explain --method``, ``xai describe``; a model family's members too
(``models:timm/resnet18``).

A broken installed plugin (it fails to import, implements a hook that is not listed here, such as a
misspelt ``register_atributors``, raises in a hook, or registers an invalid or already taken name)
is skipped as a whole, with one warning on stderr that says how to fix or disable it; ``xai list
plugins`` shows it as broken. See :mod:`xai_core.plugins.manager` for the details.

This module is the plugin author's reference: ``docs/plugins.md`` explains the same hooks with a
worked example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "xai_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def register_attributors(register: Callable[..., None]) -> None:
    """Register attribution techniques (things that explain a prediction with a map).

    Called once per plugin when the registries are first used.

    :param register: call ``register(cls)`` for each :class:`xai_core.Attributor` subclass the
        plugin provides. ``cls.name`` is the name users select it by (in YAML ``methods``, in
        ``xai explain --method``); ``cls.Params`` is a dataclass of its parameters, which becomes
        its config schema. ``register(cls, name="other")`` registers it under another name.
        Names are shared with synthesizers and must be unique across all plugins.
    :return: nothing; return values are ignored.
    """


@hookspec
def register_synthesizers(register: Callable[..., None]) -> None:
    """Register synthesis techniques (things that create images by optimising the input).

    Called once per plugin when the registries are first used.

    :param register: call ``register(cls)`` for each :class:`xai_core.Synthesizer` subclass the
        plugin provides, with the same rules as :func:`register_attributors`: ``cls.name`` is its
        public name, ``cls.Params`` its parameter dataclass; names are unique across attributors
        and synthesizers of all plugins.
    :return: nothing; return values are ignored.
    """


@hookspec
def register_presets(register: Callable[..., None]) -> None:
    """Register named presets: a technique with settings of its own, selected like a technique.

    Called once per plugin when the registries are first used. ``smoothgrad`` is a preset of
    ``noise_tunnel``; users write ``methods: [smoothgrad]`` or ``xai explain --method smoothgrad``
    and get ``noise_tunnel`` with the preset's parameters, under the label ``smoothgrad``.
    Parameters the user gives override the preset's.

    :param register: call ``register(name, technique, params, *, description="")``:

        - ``name`` (``str``): what users select; it may not be a technique's name (techniques
          win, and ``xai list presets`` shows the clash).
        - ``technique`` (``str``): the registered attributor or synthesizer it runs, possibly
          one of another plugin.
        - ``params`` (``Mapping[str, Any]``): its parameters, checked against the technique's
          ``Params`` when the preset is used (a wrong key fails there, naming the preset).
        - ``description`` (``str``): one line for ``xai list presets`` and ``xai describe``.
    :return: nothing; return values are ignored.
    """


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register models (or whole families of models) that ``xai_core.load_model`` can build.

    Called once per plugin when the model registry is first used.

    :param register: call ``register(name, loader, description="", lister=None,
        classes=None, task=None, from_code=False, check=None)``.

        - For a single model, ``name`` is its public name (``"efficientnet_lite0"``) and
          ``loader(**options)`` returns an :class:`xai_core.ModelHandle`.
        - For a family, ``name`` ends in ``"/*"`` (``"timm/*"``): then ``"timm/resnet18"`` calls
          ``loader("resnet18", **options)``, and ``lister()`` returns the architecture names the
          family offers (for ``xai list models`` and close-match suggestions).

        ``classes="imagenet"`` says the model predicts the ImageNet-1k classes (unless the config
        sets ``num_classes``), so that a misspelt class name in a config fails before the model
        loads. ``task`` (``"classification"``, ``"segmentation"``, ``"detection"``) says what the
        model computes, so that a target kind made for another task is refused before it loads.

        ``from_code=True`` marks a model built by code the config names (the built-in
        ``factory`` and ``hub/*``): it cannot describe its own input, so its loader also gets
        the config's ``input_size``, ``mean``, ``std``, ``labels`` and ``args`` (those keys are
        refused for other models). ``check``, with the loader's signature, checks the options
        without building anything (files exist, names resolve); ``load_model`` and the config
        check call it before the loader.

        ``options`` are the model options of the config (``pretrained``, ``checkpoint`` and any
        family-specific keyword arguments). A loader raises :class:`xai_core.errors.XaiError`
        subclasses for problems the user can fix (no network, bad checkpoint).
    :return: nothing; return values are ignored.
    """


@hookspec
def register_metrics(register: Callable[..., None]) -> None:
    """Register metrics (things that score attribution maps with one number per map).

    Called once per plugin when the registries are first used.

    :param register: call ``register(cls)`` for each :class:`xai_core.Metric` subclass
        the plugin provides. ``cls.name`` is the name users select it by (in YAML ``metrics``,
        ``xai list metrics``); ``cls.Params`` is a dataclass of its parameters, which becomes its
        config schema; ``cls.higher_is_better`` gives the score's direction and ``cls.requires``
        what it needs besides the maps (``"mask"``: a ground-truth object mask; ``"attributor"``:
        the technique that made the maps). ``register(cls, name="other")`` registers it under
        another name. Metric names are unique across all plugins (they have their own namespace,
        separate from techniques).
    :return: nothing; return values are ignored.
    """

@hookspec
def register_targets(register: Callable[..., None]) -> None:
    """Register target kinds (what a map explains when it is not one class of the logits).

    Called once per plugin when the registries are first used.

    :param register: call ``register(cls)`` for each :class:`xai_core.TargetKind` subclass the
        plugin provides. ``cls.name`` is the name users select it by (``target: {kind: NAME,
        ...}`` in YAML, ``--target NAME:key=value`` on the command line, ``xai list targets``);
        ``cls.Params`` is a dataclass of its keys, which becomes its config schema; ``cls.tasks``
        says which models it applies to (a config pairing it with another is refused before the
        model loads). Target kinds have their own namespace.
    :return: nothing; return values are ignored.
    """


@hookspec
def register_sinks(register: Callable[..., None]) -> None:
    """Register sinks (trackers a finished run reports to: TensorBoard, MLflow, ...).

    Called once per plugin when the registries are first used.

    :param register: call ``register(cls)`` for each :class:`xai_core.Sink` subclass the plugin
        provides. ``cls.name`` is the name users select it by (``sinks: [NAME]`` in YAML,
        ``xai list sinks``); ``cls.Params`` is a dataclass of its options, which becomes its
        config schema; ``cls.requires`` names the modules it imports (a config selecting it is
        refused while one is missing, with ``cls.install`` as the fix). Its ``log(run)`` is
        called once at the end of every run that finishes (:class:`xai_core.SinkRun`). Sinks
        have their own namespace.
    :return: nothing; return values are ignored.
    """


@hookspec
def register_commands(register: Callable[..., None]) -> None:
    """Register subcommands of the ``xai`` command line.

    Called once per plugin when the registries are first used, which for ``xai`` is before it
    parses its arguments, so a plugin's commands appear in ``xai --help`` beside the built-in ones.

    :param register: call ``register(name, handler, *, help, configure=None)`` for each command:

        - ``name`` (``str``): what users type after ``xai`` (``"benchmark"``). It may not be one of
          the built-in commands (:data:`BUILTIN_COMMANDS`) nor a command another plugin has
          registered first.
        - ``handler`` (``Callable[[argparse.Namespace], int]``): runs the command with the parsed
          arguments and returns the exit status (``0`` on success; ``None`` counts as ``0``). It
          raises :class:`xai_core.errors.XaiError` subclasses for problems the user can fix: the
          CLI prints those as one ``error:`` line and exits with status 2 (``xai --debug`` shows
          the traceback), as for every built-in command.
        - ``help`` (``str``, keyword-only, required): the one-line summary ``xai --help`` shows.
        - ``configure`` (``Callable[[argparse.ArgumentParser], None] | None``, keyword-only):
          adds the command's arguments to its parser (``parser.add_argument(...)``). It is called
          once at registration, on a scratch parser, so that a broken one counts against the
          plugin, and again on the real parser.

        Import what the handler needs inside it when that is expensive (a plotting library, a
        dataset): every ``xai`` invocation loads every plugin, but runs one handler.
    :return: nothing; return values are ignored.
    """


BUILTIN_COMMANDS: tuple[str, ...] = (
    "list",
    "describe",
    "run",
    "explain",
    "config",
    "report",
    "verify",
    "table",
    "new-plugin",
)
"""The commands ``xai`` itself provides; :func:`register_commands` cannot take these names."""


def _spec_names() -> list[str]:
    return [name for name, value in globals().items() if hasattr(value, f"{PROJECT_NAME}_spec")]


HOOK_NAMES: tuple[str, ...] = tuple(_spec_names())

Register = Callable[..., Any]
