"""Running an experiment: load the model and inputs, apply every method, write every output.

Every path of the output folder is in :mod:`xai_core.runner.layout`.

Runs scale to whole datasets: images are read and preprocessed in DataLoader workers and
explained batch by batch; every file is written atomically and every finished item recorded, so
running the same config again skips what is done and redoes what is missing or corrupt
(``force`` redoes everything, replacing each record only as its new version lands). An item
is redone when its input's content or path, its settings, the plugin (distribution and
version) that provides its technique, or the checkpoint's content changed, or when one of its
files no longer has the size and sha256 recorded for it.

``results.json`` is written with ``"complete": false`` first, then the grid figure and the
report, then once more with ``"complete": true``: a run killed at any point never looks finished
with figures missing. One unreadable image or one failing technique call fails its
items (``error`` in ``results.json``), never the run. Under ``torchrun`` the inputs are sharded
over ranks and rank 0 merges the results (:mod:`xai_core.runner.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.contracts.targets import check_target
from xai_core.contracts.technique import Technique
from xai_core.errors import ConfigError, XaiError
from xai_core.io import recording_digests, write_array, write_json, write_photo, write_text
from xai_core.models.loading import load_model
from xai_core.nn.layers import check_layer
from xai_core.plugins.factory import build_entries, build_metrics, build_sinks
from xai_core.report.figures import FigureOptions, display_channels
from xai_core.report.html import build_report
from xai_core.runner.attribution import run_attributor
from xai_core.runner.compare import write_comparison
from xai_core.runner.config import (
    FIGURES_AUTO_IMAGES,
    ExperimentConfig,
    auto_workers,
    known_channels,
    model_run_config,
    to_yaml,
)
from xai_core.runner.distributed import DistContext
from xai_core.runner.environment import resolve_device, seed_everything
from xai_core.runner.inputs import (
    ImageDataset,
    InputImage,
    collate_items,
    photo_is_input,
    resolve_inputs,
)
from xai_core.runner.item import ResultItem
from xai_core.runner.ledger import Ledger, fingerprint, remove_stale_temporaries
from xai_core.runner.lock import OutputLock
from xai_core.runner.plan import Plan, Settings, identity, plan_items
from xai_core.runner.progress import Progress
from xai_core.runner.renew import renew_items
from xai_core.runner.results import (
    RUN_KEY,
    finish_results,
    merge_items,
    model_entry,
    per_run,
    write_grid,
    write_results,
)
from xai_core.runner.sinks import failed_sinks, run_sinks
from xai_core.runner.state import ImageItem, RunState, safe_label, to_image
from xai_core.runner.synthesis import run_synthesizer, synthesize_per_run
from xai_core.runner.targets import (
    assign_targets,
    choose_targets,
    one_class_per_image,
    predict,
    predict_kind,
)
from xai_core.runner.writer import Writer
from xai_core.store import TABLE, index_entry, tidy_rows, write_table

#: Writes that may wait for the writer thread before the run waits for it: a few batches'
#: maps, inputs and records (bounds the memory they hold).
WRITES_PENDING = 128

__all__ = ["run_experiment", "RunResult"]


@dataclass
class RunResult:
    """What a run produced: the output folder, the ``results.json`` content and every item of
    the run (what :func:`xai_core.store.load_items` reads back from its records)."""

    output_dir: Path
    results: dict[str, Any]
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [item for item in self.items if item.get("error")]

    @property
    def failed_sinks(self) -> list[dict[str, Any]]:
        """The config's sinks that failed to log the run (``results.json``'s ``sinks``)."""
        return failed_sinks(self.results)


def _loader(
    sources: list[InputImage], handle: ModelHandle, config: ExperimentConfig, device
):
    workers = auto_workers(config.workers, device)
    return DataLoader(
        ImageDataset(sources, handle.preprocessing),
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_items,
        worker_init_fn=_quiet_worker if workers else None,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def _quiet_worker(_worker_id: int) -> None:
    # Workers only decode and resize images; one thread each leaves the cores to the model.
    torch.set_num_threads(1)


def run_experiment(
    config: ExperimentConfig,
    progress: Callable[[str], None] | None = None,
    *,
    force: bool = False,
    restyle: bool = False,
    handle: ModelHandle | torch.nn.Module | None = None,
) -> RunResult:
    """Run ``config`` (validated by :func:`xai_core.runner.config.load_config`).

    Every method runs on every model of the config, one model after the other (each model is
    loaded once and released before the next); with several models each writes under
    ``<output_dir>/<model label>/`` and ``results.json``, the report and ``figures/compare/``
    at the top put them side by side.

    :param force: recompute every item even if a previous run recorded it as done.
    :param restyle: only redraw figures and the report of a finished run (``xai report RUN
        key=value``): a :class:`ConfigError` if anything would need computing, before
        anything is touched.
    :param handle: the model to explain instead of loading ``config.model`` (which then only
        names it, :func:`xai_core.explain`): a :class:`~xai_core.ModelHandle` or a plain
        ``nn.Module`` (:func:`~xai_core.contracts.model.as_model_handle`), for a config of one
        model. Its module is moved to the run's device and put in eval mode, as
        :func:`~xai_core.load_model` does; its records fingerprint its content
        (:func:`~xai_core.runner.plan.handle_sha256`), so a run of the same weights resumes.
    :raises ConfigError: when another run is writing ``output_dir`` (see
        :mod:`xai_core.runner.lock`); nothing in the folder is touched then.

    The config's ``sinks`` get the finished run last (:mod:`xai_core.runner.sinks`); one that
    fails does not raise here: check :attr:`RunResult.failed_sinks` (``xai run`` exits 1).
    """
    invoked = time.time()
    top = RunState(config, progress)
    top.shows_progress = progress is not None
    top.metrics = build_metrics(config.metrics)
    # A restyle only redraws a finished run: it reports to no tracker.
    top.sinks = [] if restyle else build_sinks(config.sinks)
    if handle is not None:
        if config.compares_models:
            raise ConfigError(
                "run_experiment(handle=...) explains one model: the config lists "
                f"{len(config.model_list)} under `models`"
            )
        handle = as_model_handle(handle)
    if not config.inputs:
        raise XaiError(
            "the config lists no inputs; set `inputs` (files, folders, globs, sample:NAME)"
        )
    # A folder's .npy arrays are inputs for a model of channels no image file has.
    arrays = any(known_channels(m) not in (None, 1, 3) for m in config.model_list)
    sources = resolve_inputs(list(config.inputs), arrays=arrays)
    dist = DistContext.from_env(config.device)
    top.rank = dist.rank
    top.item_figures = config.item_figures(len(sources))
    if config.figures == "auto" and not top.item_figures and dist.is_main:
        top.say(
            f"figures: auto draws no per-item figures for {len(sources)} images (more than "
            f"{FIGURES_AUTO_IMAGES}); the grid and the report show the maps "
            "(figures: true draws them all)"
        )
    lock = OutputLock(top.out)
    try:
        if dist.is_main:
            lock.acquire()
        with recording_digests() as written:
            return _run(top, sources, dist, force, lock, written, invoked, restyle, handle)
    finally:
        lock.release()
        dist.close()


@dataclass
class _ModelRun:
    """One model's part of a run: its single-model config, state, ledger and methods, and once
    it ran, what ``results.json`` says of it."""

    config: ExperimentConfig
    state: RunState
    ledger: Ledger
    methods: list[tuple[str, Technique]]
    skipped: int = 0
    started: float = 0.0
    device: torch.device | None = None
    #: name, info and input size of the model (from the loaded model, or ``model.json`` when
    #: nothing needed it loaded).
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: The line that says which model runs (runs of several models).
    announce: str | None = None
    #: The model passed from Python (``run_experiment(handle=...)``), used instead of loading.
    given: ModelHandle | None = None
    #: Set by :func:`_plan_model`: the methods run per image, the fingerprints, the plan and
    #: the per-run synthesizers still to do.
    per_image: list[tuple[str, Technique]] = dataclasses.field(default_factory=list)
    settings: Settings | None = None
    plan: Plan | None = None
    once: list[tuple[str, Technique]] = dataclasses.field(default_factory=list)


class _Folder:
    """The output folder, claimed (``results.json`` marked unfinished and ``config.yaml``
    written) only when the first work that will change it is about to be
    written: every check that can refuse the config runs before, and a run with nothing to do
    rewrites nothing until it finishes."""

    def __init__(self, top: RunState, dist: DistContext):
        self.top, self.dist, self.claimed = top, dist, False

    def claim(self) -> None:
        if self.claimed:
            return
        self.claimed = True
        top = self.top
        if self.dist.is_main:
            if top.layout.results.exists():
                # Until this run finishes, the folder is not the finished run the old file
                # described.
                write_json(top.layout.results, {
                    "complete": False,
                    "note": f"a run (PID {os.getpid()}) is rewriting this folder; results.json "
                            "is written again when it finishes",
                })
            write_text(top.layout.config, to_yaml(top.config))


def _run(
    top: RunState, sources, dist: DistContext, force: bool, lock: OutputLock, written: dict,
    invoked: float, restyle: bool = False, given: ModelHandle | None = None,
) -> RunResult:
    config = top.config
    # Every technique is built (its construction checks what only it can) before the folder is
    # touched: a config error leaves a finished run's results.json as it was.
    built = [
        [(safe_label(label), technique)
         for label, technique in build_entries(model_run_config(config, m).methods, "methods")]
        for m in config.model_list
    ]
    folder = _Folder(top, dist)
    if dist.is_main:
        top.out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(top.out, lock)
    if dist.enabled:
        folder.claim()  # another rank may write before this one has anything to do
    dist.barrier()
    runs = [
        _model_run(top, model, methods, number, written)
        for number, (model, methods) in enumerate(zip(config.model_list, built), 1)
    ]
    for run in runs:
        run.given = given
        _plan_model(run, sources, dist, force)
    if restyle:
        _refuse_unless_restyle(runs, top.out)
    for run in runs:
        _run_model(run, written, folder)
    skipped = dist.sum(sum(run.skipped for run in runs))
    dist.barrier()
    if not dist.is_main:
        failed = sum(1 for run in runs for item in run.state.items if item.error)
        return RunResult(top.out, {"summary": {"failed": failed}},
                         [i.as_record() for r in runs for i in r.state.items])
    folder.claim()
    return _finish(top, runs, sources, dist, skipped, written, invoked)


def _model_run(
    top: RunState, model: Any, methods: list[tuple[str, Technique]], number: int, written: dict
) -> _ModelRun:
    config = top.config
    sub = model_run_config(config, model)
    state = RunState(
        sub, top.say, root=top.out, model_label=model.shown_label, phases=top.phases,
    )
    state.metrics, state.rank, state.item_figures = top.metrics, top.rank, top.item_figures
    state.shows_progress = top.shows_progress
    run = _ModelRun(sub, state, Ledger(top.out, written, records=state.layout.records), methods)
    if len(config.model_list) > 1:
        run.announce = f"model {number}/{len(config.model_list)}: {state.model_label}"
    return run


def _finish(
    top: RunState, runs: list[_ModelRun], sources, dist: DistContext, skipped: int,
    written: dict, invoked: float,
) -> RunResult:
    """Merge every model's records into ``results.json``, draw the grid or the comparison,
    build the report, and mark the run complete, last."""
    config = top.config
    items: list[dict[str, Any]] = []
    index = []
    for run in runs:
        if dist.enabled:
            for source in sources:  # other ranks wrote these records after this rank cached them
                for label, _ in run.methods:
                    run.ledger.forget(source.key, label)
        run.items = merge_items(run.ledger, sources, run.methods)
        items.extend(run.items)
        index.append(index_entry(
            top.layout.rel(run.ledger.records), [source.key for source in sources],
            [label for label, t in run.methods if not per_run(t)],
            [label for label, t in run.methods if per_run(t)],
        ))
    with top.phases("report"):
        results = write_results(
            top, items, runs[0].model, runs[0].device,
            min(run.started for run in runs), skipped, invoked, index,
        )
        write_table(top.out, tidy_rows(items))  # when pyarrow is installed (the table extra)
        if (top.out / TABLE).is_file():
            results["table"] = TABLE
    results["models"] = [run.model for run in runs]
    labels = [label for label, t in runs[0].methods if isinstance(t, Attributor)]
    if config.figures:
        with top.phases("figures"):
            options = FigureOptions.from_config(config.figure)
            if config.compares_models:
                untrained = {run.state.model_label for run in runs
                             if run.model.get("weights") == "random"}
                results["comparisons"] = write_comparison(
                    top.out, items, [run.state.model_label for run in runs], labels, untrained,
                    options,
                )
            else:
                write_grid(top.out, items, labels, options)
    with top.phases("report"):
        build_report(top.out, results=results)  # its models and table, not yet on disk
    results["time_breakdown"] = top.phases.breakdown()
    finish_results(top.out, results, written)
    run_sinks(top.sinks, top.out, results, config.figure, top.say)
    return RunResult(top.out, results, items)


def _plan_model(run: _ModelRun, sources, dist: DistContext, force: bool) -> None:
    """What is left of one model's part (hashes only, nothing decoded): batches only do what
    is missing. --force redoes every item but deletes no record: each is replaced as its new
    version lands, so a run killed midway leaves every finished item either old or new."""
    config, state, ledger = run.config, run.state, run.ledger
    run.device = resolve_device(config.device, dist.local_rank)
    run.per_image = [(label, t) for label, t in run.methods if not per_run(t)]
    once = [(label, t) for label, t in run.methods if per_run(t)]
    run.settings = settings = Settings(
        config, state.metrics, state.scoring_masks, run.given, item_figures=state.item_figures
    )
    run.plan = plan_items(
        ledger, dist.shard(list(enumerate(sources))), run.per_image, settings, force
    )
    run.once = [
        (label, t) for label, t in once
        if dist.is_main and (force or ledger.done(RUN_KEY, label, settings.map(label, t)) is None)
    ]
    run.skipped = run.plan.skipped + (len(once) - len(run.once) if dist.is_main else 0)


def _run_model(run: _ModelRun, written: dict, folder: _Folder) -> None:
    """Explain every input with one model as planned: load the model only if anything needs
    it, compute batch by batch, renew what only lacks scores or figures, then the synthesizers
    that run once per run. Records go to the model's ledger."""
    config, state, ledger, plan, settings = (
        run.config, run.state, run.ledger, run.plan, run.settings
    )
    if run.announce:
        state.say(run.announce)
    known = _known_model(state, settings) if not (plan.needs_model or run.once) else None
    handle = None if known is not None else _load(run)
    if plan.skipped:
        state.say(f"skipped {plan.skipped} item(s) already done (use --force to redo them)")
    if plan.todo or plan.renew or run.once:
        folder.claim()
    if handle is not None:
        _remember_model(state, settings, run.model)
    else:
        run.model = known
    run.started = time.time()
    # Files and records are written in the writer's thread while the next batch computes.
    with Writer(pending=WRITES_PENDING, threads=1, phases=state.phases) as writer:
        state.writer = writer
        if plan.todo:
            _compute(run, handle, written)
        if plan.renew:
            state.say(f"renewing the scores or figures of {len(plan.renew)} item(s)")
            renew_items(state, plan.renew, ledger, settings, handle)
    state.writer = Writer(threads=0, phases=state.phases)
    for label, technique in run.once:
        before = len(state.items)
        seed_everything(config.seed)
        synthesize_per_run(state, label, technique, handle)
        ledger.write(RUN_KEY, label, state.items[before:], settings.map(label, technique))


def _refuse_unless_restyle(runs: list[_ModelRun], out: Path) -> None:
    """``xai report RUN key=value`` restyles a finished run: nothing may need computing."""
    computing = sum(
        sum(len(todo.missing) for todo in run.plan.todo) + len(run.once)
        + sum(1 for r in run.plan.renew if r.metrics)
        for run in runs
    )
    if computing:
        raise ConfigError(
            f"{out}: {computing} item(s) would need computing (an input, a model or a setting "
            "changed since the run, or a file is missing): restyling redraws figures only. "
            f"Run the config again instead: xai run {out / 'config.yaml'}"
        )


def _load(run: _ModelRun) -> ModelHandle:
    """Load the model and check what only the loaded model can tell (layers, the target)."""
    config, state = run.config, run.state
    seed_everything(config.seed)
    if run.given is not None:
        state.say(f"using the given model {run.given.name}")
        handle = dataclasses.replace(run.given)  # a copy: at_size below leaves the caller's
        handle.module.to(run.device).eval()
    else:
        state.say(f"loading model {config.model.factory or config.model.name}")
        with state.phases("model_load"):
            handle = load_model(
                config.model.name, device=run.device, **config.model.loader_options()
            )
    if config.model.input_size is not None:
        handle.preprocessing = handle.preprocessing.at_size(config.model.input_size)
    _check_layers(run.methods, handle, config.model.name)
    _check_loaded_channels(run, handle)
    # Once per model: a target wrong for it fails the run here, not every item (targets chosen
    # inside a technique's call would fail as that call).
    if run.state.target_kind is not None:
        run.state.target_kind.check_against(handle.class_names, handle.num_classes)
    else:
        check_target(config.target, handle.class_names, handle.num_classes)
    if config.channels_last:
        handle.module.to(memory_format=torch.channels_last)
    run.model = model_entry(
        state.model_label, handle, state.rel(state.out) if state.out != state.root else "."
    )
    return handle


def _check_loaded_channels(run: _ModelRun, handle: ModelHandle) -> None:
    """What the config check could not tell before the model loaded: its channel count
    against ``display_channels`` and the techniques that need RGB, each a :class:`ConfigError`
    once rather than a failure of every item."""
    for label, technique in run.methods:
        try:
            technique.check_channels(handle.in_chans, f"model {run.config.model.name!r}")
        except XaiError as exc:
            raise ConfigError(f"methods {label!r}: {exc}") from None
    if run.config.display_channels is not None:
        display_channels(handle.in_chans, run.config.display_channels)


def _model_fingerprint(state: RunState, settings: Settings) -> str:
    return fingerprint(settings.model, settings.weights,
                       state.model_label, state.rel(state.out) if state.out != state.root else ".")


def _remember_model(state: RunState, settings: Settings, model: dict[str, Any]) -> None:
    """Keep ``results.json``'s model entry beside the records (``model.json``), valid while
    the model config and checkpoint are the same, for runs that need not load the model."""
    content = {"fingerprint": _model_fingerprint(state, settings), "model": model}
    path = state.layout.model_file
    if _read_json(path) != content:
        state.writer.submit(write_json, path, content)


def _known_model(state: RunState, settings: Settings) -> dict[str, Any] | None:
    """The model entry a previous run kept, if it describes this model config."""
    content = _read_json(state.layout.model_file)
    if isinstance(content, dict) and content.get("fingerprint") == _model_fingerprint(
        state, settings
    ) and isinstance(content.get("model"), dict):
        return content["model"]
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _compute(run: _ModelRun, handle: ModelHandle, written: dict) -> None:
    """Every input of ``run.plan.todo`` through the methods it misses, batch by batch."""
    config, state, plan, per_image = run.config, run.state, run.plan, run.per_image
    dist_main = state.rank == 0
    totals = {label: sum(1 for todo in plan.todo if label in todo.missing)
              for label, _ in per_image}
    progress = Progress(list(totals), totals, enabled=dist_main and state.shows_progress)
    batches = iter(_loader([todo.source for todo in plan.todo], handle, config, run.device))
    while True:
        with state.phases("inputs"):
            batch = next(batches, None)
        if batch is None:
            break
        images = []
        hashes: dict[str, str | None] = {}
        for local, pixels, inputs, error, sha256 in batch:
            todo = plan.todo[local]
            im = ImageItem(todo.source, index=todo.index, error=error, missing=todo.missing)
            hashes[todo.source.key] = sha256
            im.pixels, im.inputs = pixels, inputs
            images.append(im)
        _explain_batch(
            state, config, per_image, images, handle, run.device, run.ledger, run.settings,
            hashes, progress,
        )
        # Each batch's digests went into its records; keep memory flat on large datasets.
        state.writer.submit(written.clear)
    progress.close()


def _check_layers(methods: list[tuple[str, Technique]], handle: ModelHandle, name: str) -> None:
    """A method's ``layer`` against the loaded model, and the model against the method
    (:meth:`~xai_core.Technique.check_model`: attention methods on a CNN), before any item: a
    misspelt layer or a model the method cannot explain fails the run once, instead of every
    item."""
    for label, technique in methods:
        layer = getattr(technique.params, "layer", None)
        try:
            if isinstance(layer, str):
                check_layer(handle.module, layer, name)
            technique.check_model(handle)
        except XaiError as exc:
            raise ConfigError(f"methods {label!r}: {exc}") from None


def _write_inputs(run: RunState, ok: list[ImageItem]) -> None:
    """Each image's photo, the RGB view of its pixels that figures, the grid and the report show
    (``display_channels``), once per image; and its normalized input when the photo cannot give
    it exactly (:func:`~xai_core.runner.inputs.photo_is_input`)."""
    for im in ok:
        photo = im.pixels
        im.photo_is_input = run.config.display_channels is None and photo_is_input(photo)
        if photo.shape[0] != 3 or run.config.display_channels is not None:
            photo = to_image(photo, run.config.display_channels)
        run.writer.submit(write_photo, run.layout.photo(im.source.key), photo)
        if not im.photo_is_input:
            run.writer.submit(write_array, run.input_path(im), im.inputs.numpy(), "float32")


def _shared_pass(
    run: RunState, config, per_image, images: list[ImageItem], ok, handle, device
):
    """The target chooser that lets the first method's own pass predict, or ``None`` after a
    prediction pass (see :func:`_explain_batch`)."""
    first = per_image[0] if per_image else None
    kind = run.target_kind
    if (
        first is not None
        and isinstance(first[1], Attributor)
        and all(first[0] in im.missing for im in ok)
        and (kind is not None or one_class_per_image(config.target))
    ):
        def chooser(chunk: list[ImageItem], logits: torch.Tensor) -> list[int]:
            # (under a target kind the call's own binding chooses: see _attribute_chunk)
            return choose_targets(chunk, logits, config.target, handle)
        return chooser
    _predict(run, images, config, handle, device)
    return None


def _predict(run: RunState, images: list[ImageItem], config, handle, device) -> None:
    """A prediction pass for ``images`` and their targets (a target kind's, or classes)."""
    with run.phases("model"):
        if run.target_kind is not None:
            predict_kind(images, run.target_kind, handle, device)
            return
        predict(images, handle, device)
    assign_targets(images, config.target, handle)


def _explain_batch(
    run: RunState, config, per_image, images, handle, device, ledger, settings: Settings,
    hashes: dict[str, str | None], progress: Progress,
) -> None:
    """Write the inputs, then apply every method still to do on these images.

    The images' predictions and targets come from the first method's own forward pass when it
    is an attributor to run on all of them and the target is one class per image
    (:func:`~xai_core.runner.targets.one_class_per_image`): one pass per batch serves the
    prediction and the attribution. Otherwise (a synthesizer first, ``top-k``, a list, ``label``,
    a resumed batch where methods differ per image) a prediction pass runs first.
    """
    ok = [im for im in images if im.error is None]
    # What each image's records say about it, once per image.
    identities = {
        im.source.key: identity(im.source, sha256) if sha256 is not None else None
        for im in images
        for sha256 in [hashes.get(im.source.key)]
    }
    _write_inputs(run, ok)
    chooser = _shared_pass(run, config, per_image, images, ok, handle, device)
    for label, technique in per_image:
        pending = [im for im in images if label in im.missing]
        if not pending:
            continue
        progress.start(label)
        seed_everything(config.seed)
        before = len(run.items)
        if isinstance(technique, Attributor):
            run_attributor(run, label, technique, pending, handle, device, chooser)
        elif isinstance(technique, Synthesizer):
            with run.phases("model"):
                run_synthesizer(run, label, technique, pending, handle, device)
        if chooser is not None:
            chooser = None
            _predict_the_rest(run, ok, config, handle, device)
        by_key: dict[str, list[ResultItem]] = {}
        for item in run.items[before:]:
            by_key.setdefault(item.key, []).append(item)
        progress.advance(label, len(pending), failed=Progress.failed_in(by_key.values()))
        for im in pending:
            run.writer.submit(
                ledger.write,
                im.source.key, label, by_key.get(im.source.key, []),
                settings.map(label, technique), identities[im.source.key],
                settings.scores(technique, im.source), settings.figure(technique),
            )


def _predict_the_rest(run: RunState, ok: list[ImageItem], config, handle, device) -> None:
    """Images whose first call failed got no prediction from it: the next methods need one."""
    unpredicted = [im for im in ok if not im.prediction and im.error is None]
    _predict(run, unpredicted, config, handle, device)
