"""The ``mlflow`` sink: one MLflow run per xai run, with its config, metrics and pictures."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xai_core_plugins.sinks.common import run_path, safe_key

from xai_core.contracts.sink import Sink, SinkRun, flat_config

__all__ = ["MlflowSink"]

#: A tracking URI rather than a folder: ``file:``, ``http://``, ``sqlite:///``, ``databricks``.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
#: MLflow's limits: characters of a parameter value, entries of one logging call.
PARAM_CHARS = 6000
BATCH = 100
#: The run's files logged as artifacts, when they exist.
ARTIFACTS = ("results.json", "config.yaml", "metrics.md", "metrics.json")
#: MLflow refuses a file store unless this is set (it deprecates them for databases).
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


class MlflowSink(Sink):
    """Creates one MLflow run (in ``experiment``) per logging of an xai run: the config as
    flat parameters (``model.name``, ``methods``...), the metric means as ``mean/<method>/
    <metric>``, each item's values as ``items/<method>/<metric>`` (step = the item's position
    among its method's items), ``results.json``, ``config.yaml`` and the metrics table as
    artifacts, and up to ``images`` pictures (each item's figure, else its map on the photo)
    under ``pictures/``. Tags: ``xai.output_dir`` (the run's folder). The default store is a
    local folder under the run (``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri
    <run>/mlruns`` shows it: MLflow 3 opens file stores only when told to)."""

    name = "mlflow"
    summary = "one MLflow run per xai run: config as params, metrics, pictures, results.json"
    requires = ("mlflow",)
    install = "pip install 'xai-core[mlflow]'"

    @dataclass
    class Params:
        #: An MLflow tracking URI (``http://host:5000``, ``file:/path``, ``sqlite:///x.db``) or
        #: a folder, relative to the run's folder, for a local file store.
        tracking_uri: str = "mlruns"
        #: The MLflow experiment the run goes in (created if missing).
        experiment: str = "xai-core"
        #: The MLflow run's name (default: the run folder's name).
        run_name: str | None = None
        #: Most pictures logged as artifacts; 0: none.
        images: int = field(default=64, metadata={"min": 0})
        #: Retries of a request to a tracking server (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` for
        #: this sink's calls). MLflow's own default, 7 with exponential backoff, holds the end of
        #: a run for minutes when the server is down.
        http_retries: int = field(default=2, metadata={"min": 0})
        #: Seconds a request to a tracking server may take (``MLFLOW_HTTP_REQUEST_TIMEOUT``).
        http_timeout: int = field(default=30, metadata={"min": 1})

    def tracking_uri(self, run: SinkRun) -> str:
        uri = self.params.tracking_uri
        if _URI.match(uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):  # not a Windows drive
            return uri
        return run_path(run, uri).resolve().as_uri()

    def log(self, run: SinkRun) -> dict[str, Any]:
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri(run)
        env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.params.http_retries),
               "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.params.http_timeout)}
        if uri.startswith("file:"):
            # A local file store is what the sink writes by default: MLflow 3 refuses one
            # unless told otherwise.
            env[ALLOW_FILE_STORE] = "true"
        with _environment(env):
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(self.params.experiment)
            experiment_id = (
                experiment.experiment_id if experiment is not None
                else client.create_experiment(self.params.experiment)
            )
            created = client.create_run(
                experiment_id, run_name=self.params.run_name or run.name,
                tags={"xai.output_dir": str(run.folder)},
            )
            run_id = created.info.run_id
            try:
                self._log_run(client, run_id, run)
            except BaseException:
                client.set_terminated(run_id, "FAILED")
                raise
            client.set_terminated(run_id, "FINISHED")
        return {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id}

    def _log_run(self, client: Any, run_id: str, run: SinkRun) -> None:
        from mlflow.entities import Metric, Param

        params = [Param(k, v[:PARAM_CHARS]) for k, v in flat_config(run.config).items()]
        now = int(time.time() * 1000)
        metrics = [
            Metric(safe_key("mean", series, metric), value, now, 0)
            for series, means in run.metric_means().items() for metric, value in means.items()
        ]
        metrics += [
            Metric(safe_key("items", s.series, s.metric), s.value, now, s.step)
            for s in run.item_scores()
        ]
        for start in range(0, len(params), BATCH):
            client.log_batch(run_id, params=params[start:start + BATCH])
        for start in range(0, len(metrics), BATCH * 10):
            client.log_batch(run_id, metrics=metrics[start:start + BATCH * 10])
        for name in ARTIFACTS:
            if (run.folder / name).is_file():
                client.log_artifact(run_id, str(run.folder / name))
        self._log_pictures(client, run_id, run)

    def _log_pictures(self, client: Any, run_id: str, run: SinkRun) -> None:
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="xai-mlflow-") as scratch:
            root = Path(scratch) / "pictures"
            for name, _item, picture in run.pictures(self.params.images):
                path = root / (safe_key(name).replace(" ", "_") + ".png")
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture).save(path)
            if root.is_dir():
                client.log_artifacts(run_id, str(root), "pictures")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` (where MLflow reads these settings) for one call; the
    previous values are restored after it."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
