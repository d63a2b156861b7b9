"""Reading a run's folder: its summary, its items and their tidy table.

A run writes each finished (image, method) as a record under ``records/`` (see
:mod:`xai_core.runner.ledger`): an append-only store, so finishing or resuming a run writes the
records of new items only. ``results.json`` holds the run's summary and its ``index``: per
model, the folder of its records, its image keys in input order and its method labels, the
order of :func:`load_items`. (Runs of older versions listed every item in ``results.json``
itself; :func:`load_items` reads those too.)

The tidy table has one row per item, ``(model, image, method, target)``, with flat columns
(:func:`tidy_rows`); the run writes it as ``results.parquet`` when pyarrow is installed (the
``table`` extra), and ``xai table RUN`` prints or exports it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xai_core.errors import XaiError
from xai_core.io import write_bytes

__all__ = [
    "RESULTS",
    "TABLE",
    "RUN_KEY",
    "read_results",
    "load_items",
    "index_entry",
    "indexed_records",
    "tidy_rows",
    "read_rows",
    "write_table",
    "table_stamp",
    "COLUMNS",
    "TABLE_EXTRA",
]

RESULTS = "results.json"
TABLE = "results.parquet"
#: Record key of synthesizers that run once per run rather than once per image.
RUN_KEY = "_run"

#: The columns every tidy row has, in order; then one ``metric_<label>`` column per metric and
#: one ``<role>_file`` column per file role (``map_file``, ``input_file``, ``figure_file``...).
COLUMNS = (
    "model", "image", "key", "index", "method", "technique", "kind", "target", "target_label",
    "target_rank", "target_probability", "target_value", "target_value_name", "predicted",
    "predicted_label", "predicted_probability", "seconds", "error",
)


def read_results(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``results.json`` of a run folder, or an :class:`~xai_core.XaiError` that says what to give
    instead."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        raise XaiError(
            f"{str(run_dir)!r} holds no {RESULTS}: give the output folder of a run (its "
            "`output_dir`)"
        )
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise XaiError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(results, dict):
        raise XaiError(f"{path} is not a run's results (a JSON object)")
    return results


def index_entry(
    records: str, keys: Sequence[str], labels: Sequence[str], run_labels: Sequence[str]
) -> dict[str, Any]:
    """One model's entry in ``results.json``'s ``index``: where its records are (relative to the
    run's folder), its image keys in input order, its per-image method labels and those of the
    synthesizers that run once per run."""
    return {"records": records, "keys": list(keys), "labels": list(labels),
            "run_labels": list(run_labels)}


def _record_items(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read())
    except (OSError, ValueError):
        return []
    items = record.get("items") if isinstance(record, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def indexed_records(results: Mapping[str, Any]) -> list[str]:
    """The records ``results.json``'s ``index`` names, in item order (model after model, input
    then method, the once-per-run synthesizers last), as paths relative to the run's folder."""
    paths = []
    for entry in results.get("index") or []:
        records = entry.get("records", "records")
        paths += [f"{records}/{key}/{label}.json"
                  for key in entry.get("keys", []) for label in entry.get("labels", [])]
        paths += [f"{records}/{RUN_KEY}/{label}.json" for label in entry.get("run_labels", [])]
    return paths


def load_items(
    run_dir: str | os.PathLike[str], results: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every item of a run, in input-then-method order (model after model), as the JSON objects
    of :class:`~xai_core.runner.item.ResultItem`. A pair whose record is missing or unreadable
    has no items (``xai verify`` names it)."""
    run_dir = Path(run_dir)
    if results is None:
        results = read_results(run_dir)
    if isinstance(results.get("items"), list):  # a run of an older version
        return list(results["items"])
    items: list[dict[str, Any]] = []
    for rel in indexed_records(results):
        items.extend(_record_items(os.path.join(run_dir, rel)))
    return items


def _scalar(value: Any) -> Any:
    """A value a table cell holds: numbers, strings and ``None`` as they are, anything else
    (a list of classes, a dict) as its JSON."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True)


def tidy_rows(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per item (see :data:`COLUMNS`): what pandas, seaborn and a paper's table
    need. Every row has the same columns (``None`` where an item has nothing)."""
    items = list(items)
    metrics: dict[str, None] = {}
    roles: dict[str, None] = {}
    for item in items:
        metrics.update(dict.fromkeys(item.get("metrics") or {}))
        roles.update(dict.fromkeys(item.get("files") or {}))
    rows = []
    for item in items:
        row = {column: _scalar(item.get(column)) for column in COLUMNS}
        row["method"] = item.get("label")
        row["technique"] = item.get("method")
        scores = item.get("metrics") or {}
        for label in metrics:
            value = scores.get(label)
            row[f"metric_{label}"] = float(value) if value is not None else None
        files = item.get("files") or {}
        for role in roles:
            row[f"{role}_file"] = files.get(role)
        rows.append(row)
    return rows


#: What to install for the table (``results.parquet``, ``xai table``, ``Explanations.frame()``).
TABLE_EXTRA = "pip install 'xai-core[table]'"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow


def table_stamp(rows: Sequence[Mapping[str, Any]]) -> str:
    """A hash of the rows: a table whose stamp matches needs no rewrite."""
    text = json.dumps(list(rows), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_table(
    run_dir: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]], *, name: str = TABLE,
    force: bool = False,
) -> bool:
    """``results.parquet`` (or ``name``) of ``rows`` (:func:`tidy_rows`), atomically, when
    pyarrow is installed and the table on disk holds other rows; returns whether the file
    holds ``rows`` now.

    The rows' :func:`table_stamp` goes into the file's metadata, so resuming a finished run
    rewrites nothing (``force`` writes anyway). Without pyarrow nothing is written (``False``):
    ``xai table RUN`` builds the table from the records instead."""
    pa = _pyarrow()
    if pa is None:
        return False
    path = Path(run_dir) / name
    stamp = table_stamp(rows)
    try:
        known = pa.parquet.read_schema(path).metadata or {}
        if not force and known.get(b"xai_core_stamp") == stamp.encode():
            return True
    except (OSError, pa.ArrowException):
        pass  # missing or unreadable: written below
    rows = _one_type_per_column(rows)
    table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in COLUMNS})
    table = table.replace_schema_metadata({"xai_core_stamp": stamp})
    buffer = pa.BufferOutputStream()
    pa.parquet.write_table(table, buffer, compression="zstd")
    write_bytes(path, buffer.getvalue().to_pybytes())
    return True


def _one_type_per_column(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows with each column of one type, as Parquet needs: a column whose values are of
    several kinds (a class index in one row, a target kind's ``"[3, 5]"`` in another) holds
    their text; integers beside floats become floats."""
    rows = [dict(row) for row in rows]
    for column in rows[0] if rows else ():
        kinds = {type(row[column]) for row in rows if row[column] is not None}
        if kinds <= {int, float} and kinds == {int, float}:
            for row in rows:
                if row[column] is not None:
                    row[column] = float(row[column])
        elif len(kinds) > 1:
            for row in rows:
                if row[column] is not None:
                    row[column] = str(row[column])
    return rows


def read_rows(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tidy rows of a run: :func:`tidy_rows` of its items (always current, whatever
    ``results.parquet`` holds)."""
    return tidy_rows(load_items(run_dir))
