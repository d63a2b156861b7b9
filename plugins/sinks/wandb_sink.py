"""The ``wandb`` sink: one Weights & Biases run per xai run, offline unless told otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xai_core_plugins.sinks.common import run_path, safe_key

from xai_core.contracts.sink import Sink, SinkRun

__all__ = ["WandbSink"]

#: W&B's modes: ``offline`` writes the run under ``dir`` and touches no network (``wandb sync``
#: uploads it later); ``online`` uploads as it goes (it needs ``wandb login``).
MODES = ("offline", "online", "disabled")


class WandbSink(Sink):
    """Creates one W&B run per logging of an xai run: the config as the run's config, each
    item's metric values as ``items/<method>/<metric>`` (W&B step = the item's position among
    its method's items), the metric means as ``mean/<method>/<metric>`` in the run's summary,
    and up to ``images`` pictures (each item's figure, else its map on the photo) as
    ``pictures/<image>/<method>``. Offline by default: the run is written to
    ``<dir>/wandb/offline-run-*`` and nothing goes over the network (no login needed)."""

    name = "wandb"
    summary = "one Weights & Biases run per xai run (offline by default): config, metrics, pictures"
    requires = ("wandb",)
    install = "pip install 'xai-core[wandb]'"

    @dataclass
    class Params:
        #: ``offline`` (written under ``dir``, no network), ``online`` (needs ``wandb login``)
        #: or ``disabled``.
        mode: str = field(default="offline", metadata={"choices": MODES})
        #: The W&B project.
        project: str = "xai-core"
        #: The W&B entity (user or team); default: the logged-in user's.
        entity: str | None = None
        #: The folder W&B writes its ``wandb/`` folder in; relative to the run's folder.
        dir: str = "."
        #: The W&B run's name (default: the run folder's name).
        run_name: str | None = None
        #: Most pictures logged; 0: none.
        images: int = field(default=64, metadata={"min": 0})

    def log(self, run: SinkRun) -> dict[str, Any]:
        import wandb

        folder = run_path(run, self.params.dir)
        folder.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            mode=self.params.mode, silent=True, console="off", disable_git=True,
            save_code=False, x_disable_stats=True, disable_job_creation=True,
        )
        tracker = wandb.init(
            project=self.params.project, entity=self.params.entity, dir=str(folder),
            name=self.params.run_name or run.name, config=run.config, settings=settings,
            reinit="create_new", tags=["xai-core"],
        )
        try:
            steps: dict[int, dict[str, Any]] = {}
            for score in run.item_scores():
                steps.setdefault(score.step, {})[
                    safe_key("items", score.series, score.metric)] = score.value
            for step in sorted(steps):
                tracker.log(steps[step], step=step)
            pictures = {
                safe_key("pictures", name): wandb.Image(picture, caption=name)
                for name, _item, picture in run.pictures(self.params.images)
            }
            if pictures:
                tracker.log(pictures, step=max(steps, default=0))
            for series, means in run.metric_means().items():
                for metric, value in means.items():
                    tracker.summary[safe_key("mean", series, metric)] = value
            # tracker.dir is the run's `files/` folder; the run is the folder above it.
            logged = {"mode": self.params.mode, "id": tracker.id,
                      "dir": str(Path(tracker.dir).parent), "pictures": len(pictures)}
        except BaseException:
            tracker.finish(exit_code=1)
            raise
        tracker.finish()
        return logged
