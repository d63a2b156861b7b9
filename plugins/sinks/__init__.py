"""Built-in sinks (plugin ``sinks``): trackers a finished run reports to.

* ``tensorboard``: an event file under the run (``<run>/tensorboard/<time>/``) with the metric
  means, every item's metric values and up to ``images`` pictures
  (:mod:`.tensorboard_sink`);
* ``mlflow``: one MLflow run per xai run, in a local file store by default
  (``<run>/mlruns``), with the config as parameters, the metrics, the pictures, ``results.json``
  and ``config.yaml`` as artifacts (:mod:`.mlflow_sink`);
* ``wandb``: one Weights & Biases run, offline by default (under ``<run>/wandb``), with the
  config, the metrics and the pictures (:mod:`.wandb_sink`).

Each needs its library, an extra of xai-core (``pip install 'xai-core[tensorboard]'``); a config
that selects a sink whose library is missing is refused before anything runs. The contract is
:class:`xai_core.contracts.sink.Sink`.
"""

from __future__ import annotations

from collections.abc import Callable

from xai_core_plugins.sinks.mlflow_sink import MlflowSink
from xai_core_plugins.sinks.tensorboard_sink import TensorBoardSink
from xai_core_plugins.sinks.wandb_sink import WandbSink

from xai_core import hookimpl

__all__ = ["TensorBoardSink", "MlflowSink", "WandbSink"]


@hookimpl
def register_sinks(register: Callable[..., None]) -> None:
    for cls in (TensorBoardSink, MlflowSink, WandbSink):
        register(cls)
