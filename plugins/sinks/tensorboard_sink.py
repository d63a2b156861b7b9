"""The ``tensorboard`` sink: a run's metrics and pictures as a TensorBoard event file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xai_core_plugins.sinks.common import config_text, fresh_folder, run_path, safe_key

from xai_core.contracts.sink import Sink, SinkRun

__all__ = ["TensorBoardSink"]


class TensorBoardSink(Sink):
    """Writes ``mean/<method>/<metric>`` (the per-method means, step 0),
    ``items/<method>/<metric>`` (each item's value, step = the item's position among its
    method's items), ``pictures/<image>/<method>`` (each item's figure, else its map on the
    photo, up to ``images``) and the config as text, with
    ``torch.utils.tensorboard.SummaryWriter``. Each logging writes a new subfolder of
    ``log_dir``, so ``tensorboard --logdir <run>/tensorboard`` shows every rerun as a run of its
    own."""

    name = "tensorboard"
    summary = "TensorBoard event file under the run: metric means, per-item metrics, pictures"
    requires = ("tensorboard",)
    install = "pip install 'xai-core[tensorboard]'"

    @dataclass
    class Params:
        #: Folder of the event files (a subfolder per logging); relative to the run's folder.
        log_dir: str = "tensorboard"
        #: Most pictures logged (each item's figure, else its map on the photo); 0: none.
        images: int = field(default=64, metadata={"min": 0})

    def log(self, run: SinkRun) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        folder = fresh_folder(run_path(run, self.params.log_dir))
        writer = SummaryWriter(log_dir=str(folder))
        try:
            for series, means in run.metric_means().items():
                for metric, value in means.items():
                    writer.add_scalar(safe_key("mean", series, metric), value, 0)
            for score in run.item_scores():
                writer.add_scalar(
                    safe_key("items", score.series, score.metric), score.value, score.step
                )
            pictures = 0
            for name, _item, picture in run.pictures(self.params.images):
                writer.add_image(safe_key("pictures", name), picture, 0, dataformats="HWC")
                pictures += 1
            text = config_text(run)
            if text:
                # Indented: TensorBoard's text plugin renders markdown, and this keeps the YAML.
                writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)
        finally:
            writer.close()
        return {"log_dir": str(folder), "pictures": pictures}
