"""A finished run as Python objects: :class:`Explanations`, what :func:`xai_core.explain` returns
and :func:`open_run` opens (the output folder of ``xai run`` or of ``explain``).

One :class:`Explanation` per item of the run (one (model, image, method, target)), in the run's
order (:func:`xai_core.store.load_items`): its prediction, target, metric values, timing, error
and files, and its map, read from its file (:func:`xai_core.io.read_array`) only when asked
for and then kept. :meth:`Explanations.frame` is the tidy table of
:func:`xai_core.store.tidy_rows` as a pandas DataFrame (the ``table`` extra),
:meth:`Explanations.plot` draws images down and methods across as the report does
(:func:`xai_core.report.figures.map_grid`), and Jupyter shows the object inline
(``_repr_html_``: the figure, a table, and every failed item). Failed items are never dropped:
they are rows with an ``error``, cells that say so, and :attr:`Explanations.failures`.
"""

from __future__ import annotations

import base64
import html
import io
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.errors import XaiError
from xai_core.io import photo_beside, read_array
from xai_core.report.figures import FigureOptions, image_title, map_grid
from xai_core.store import load_items, read_results, tidy_rows

__all__ = ["Explanation", "Explanations", "open_run", "ROW_LIMIT"]

#: Rows of images the inline view (``_repr_html_``) draws; :meth:`Explanations.plot` draws all
#: it is asked for.
ROW_LIMIT = 8

#: The columns of the inline view's table (of :func:`~xai_core.store.tidy_rows`).
_SHOWN = ("model", "image", "method", "target_label", "predicted_label", "predicted_probability",
          "seconds", "error")


class Explanation:
    """One item of a run: one (model, image, method, target). Its map is read on first use."""

    def __init__(self, run: Explanations, record: Mapping[str, Any]):
        self.run = run
        #: The item's JSON object (:class:`~xai_core.runner.item.ResultItem`'s fields).
        self.record = dict(record)
        self._map: np.ndarray | None = None

    @property
    def model(self) -> str:
        return self.record.get("model")

    @property
    def image(self) -> str | None:
        """The input as the run names it: its path as given, or ``sample:NAME``."""
        return self.record.get("image")

    @property
    def key(self) -> str | None:
        return self.record.get("key")

    @property
    def method(self) -> str:
        """The method's label (its name unless the config gave a ``label``)."""
        return self.record.get("label")

    @property
    def target(self) -> Any:
        return self.record.get("target")

    @property
    def prediction(self) -> dict[str, Any]:
        """The model's prediction on the image: ``class``, ``label``, ``probability``."""
        return {"class": self.record.get("predicted"), "label": self.record.get("predicted_label"),
                "probability": self.record.get("predicted_probability")}

    @property
    def metrics(self) -> dict[str, float | None]:
        return dict(self.record.get("metrics") or {})

    @property
    def error(self) -> str | None:
        return self.record.get("error")

    @property
    def files(self) -> dict[str, Path]:
        """The item's files by role (``map``, ``input``, ``figure``...), as absolute paths."""
        files = self.record.get("files") or {}
        return {role: self.run.folder / rel for role, rel in files.items()}

    @property
    def map(self) -> np.ndarray | None:
        """The attribution map ``[H, W]`` (float32), read on first use; ``None`` for an item
        without one (a failed item, a synthesizer's)."""
        if self._map is None:
            path = self.files.get("map")
            if path is None:
                return None
            self._map = read_array(path)
        return self._map

    @property
    def photo(self) -> np.ndarray | None:
        """The model's view of the image (resized and cropped), ``[H, W, 3]`` in ``[0, 1]``."""
        return self.run._photo(self.record)

    def __repr__(self) -> str:
        state = (f"failed: {self.error}" if self.error
                 else f"target {self.record.get('target_label')}")
        return f"<Explanation {self.model} | {self.image} | {self.method} | {state}>"


class Explanations(Sequence[Explanation]):
    """The items of a run (:func:`open_run`, :func:`xai_core.explain`), a sequence of
    :class:`Explanation` in the run's order.

    :ivar folder: the run's output folder.
    :ivar results: its ``results.json``.
    """

    def __init__(
        self, folder: str | os.PathLike[str], results: Mapping[str, Any],
        records: Sequence[Mapping[str, Any]], owner: Any = None,
    ):
        self.folder = Path(folder)
        self.results = dict(results)
        self.items = [Explanation(self, record) for record in records]
        # What keeps the folder alive (explain's temporary folder): removed when this object
        # and every item are gone, or by close().
        self._owner = owner
        self._photos: dict[Path, np.ndarray | None] = {}

    # --- the sequence ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[override]
        return self.items[index]

    def __iter__(self) -> Iterator[Explanation]:
        return iter(self.items)

    @property
    def models(self) -> list[str]:
        return _unique(item.model for item in self.items)

    @property
    def images(self) -> list[str]:
        return _unique(item.image for item in self.items if item.image is not None)

    @property
    def methods(self) -> list[str]:
        return _unique(item.method for item in self.items)

    @property
    def failures(self) -> list[Explanation]:
        """The items that failed (each with its ``error``): none is ever left out."""
        return [item for item in self.items if item.error]

    @property
    def complete(self) -> bool:
        """Whether the run finished (``results.json`` says ``complete``)."""
        return bool(self.results.get("complete"))

    def select(self, image: str | None = None, method: str | None = None, *,
               model: str | None = None, target: Any = None) -> list[Explanation]:
        """The items of an image (as the run names it, or its key), a method label, a model and
        a target; ``None`` matches any."""
        return [
            item for item in self.items
            if (image is None or image in (item.image, item.key))
            and (method is None or item.method == method)
            and (model is None or item.model == model)
            and (target is None or target in (item.target, item.record.get("target_label")))
        ]

    def map(self, image: str, method: str, *, model: str | None = None,
            target: Any = None) -> np.ndarray:
        """The one map of ``image`` by ``method`` (read on first use); an error naming the
        choices when none or several items match, or when the item failed."""
        found = self.select(image, method, model=model, target=target)
        if len(found) != 1:
            asked = f"image {image!r}, method {method!r}" + (f", model {model!r}" if model else "")
            if target is not None:
                asked += f", target {target!r}"
            raise XaiError(
                f"{len(found)} items match {asked}; images: {', '.join(self.images)}; methods: "
                f"{', '.join(self.methods)}" + ("; give model= and target= to pick one" if found
                                                 else "")
            )
        item = found[0]
        if item.map is None:
            failed = f" (it failed: {item.error})" if item.error else ""
            raise XaiError(f"{item!r} has no map{failed}")
        return item.map

    @property
    def maps(self) -> Mapping[tuple[str, str | None, str, Any], np.ndarray | None]:
        """Every map by ``(model, image, method, target)``, the key of a row of :meth:`frame`;
        each read when it is looked up."""
        return _LazyMaps({
            (item.model, item.image, item.method, _hashable(item.target)): item
            for item in self.items
        })

    @property
    def predictions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The model's prediction per ``(model, image)``: ``class``, ``label``,
        ``probability`` and ``top5`` when the run recorded them."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.items:
            if item.image is None or item.record.get("predicted") is None:
                continue
            found.setdefault((item.model, item.image),
                             {**item.prediction, "top5": item.record.get("top5")})
        return found

    # --- table, figure, inline view -------------------------------------------------------

    def frame(self):
        """The tidy table: one row per item (model, image, method, target), the columns of
        :func:`xai_core.store.tidy_rows` (prediction, ``metric_<label>``, ``seconds``,
        ``error``, ``<role>_file`` relative to :attr:`folder`). Needs pandas (the ``table``
        extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise XaiError(
                "Explanations.frame() needs pandas, which is not installed: "
                "pip install 'xai-core[table]'"
            ) from None
        return pd.DataFrame(tidy_rows(item.record for item in self.items))

    def plot(
        self,
        methods: Sequence[str] | None = None,
        images: Sequence[str] | None = None,
        *,
        overlay: bool = True,
        opacity: float | None = None,
        model: str | None = None,
        **figure: Any,
    ):
        """Images down, methods across, each map with its colour key, in the report's style
        (signed maps diverging around zero, others on a sequential scale).

        :param methods, images: which (default: all, in the run's order; images by their name in
            the run or their key).
        :param overlay: draw each map on the image (``figure.overlay`` says how), else alone.
        :param opacity: the overlay's opacity at the strongest pixels, in [0, 1] (default: the
            run's ``figure.overlay_alpha``).
        :param model: the model whose maps to draw (default: every model, a row each).
        :param figure: other options of the run's ``figure:`` section (``sign``, ``cmap``,
            ``clip_percentile``, ``overlay``) over the run's own.
        :returns: the matplotlib :class:`~matplotlib.figure.Figure` (not registered with
            pyplot: ``fig.savefig(...)`` saves it).
        """
        options = self._options(opacity, figure)
        chosen = [item for item in self.items if item.record.get("kind") == "attributor"
                  and (model is None or item.model == model)]
        columns = list(methods) if methods is not None else _unique(i.method for i in chosen)
        self._check_choice("method", columns, _unique(i.method for i in chosen))
        if images is not None:
            known = _unique(i.image for i in chosen) + _unique(i.key for i in chosen)
            self._check_choice("image", list(images), known)
        rows, cells = self._grid(chosen, columns, images)
        if not rows:
            raise XaiError("nothing to plot: the run has no attribution maps"
                           + (f" of model {model!r}" if model else ""))
        return map_grid(rows, columns, cells, options, on_photo=overlay)

    def _options(self, opacity: float | None, figure: Mapping[str, Any]) -> FigureOptions:
        config = read_config_figure(self.folder)
        values = {**config, **figure}
        if opacity is not None:
            values["overlay_alpha"] = opacity
        return FigureOptions.from_config(values)

    @staticmethod
    def _check_choice(what: str, chosen: Sequence[str], known: Sequence[str]) -> None:
        from xai_core.errors import did_you_mean

        for name in chosen:
            if name not in known:
                hint = did_you_mean(str(name), list(known), 1, otherwise=".")
                raise XaiError(f"the run has no {what} {name!r}{hint} "
                               f"Its {what}s: {', '.join(map(str, known)) or '(none)'}")

    def _grid(self, chosen: list[Explanation], columns: list[str], images: Sequence[str] | None,
              limit: int | None = None):
        """Rows (one per model, image and target) and their cells for :func:`map_grid`."""
        order: dict[tuple, int] = {}
        rows: list[tuple[str, np.ndarray | None]] = []
        cells: dict[tuple[int, int], np.ndarray | str] = {}
        several = len(_unique(i.model for i in chosen)) > 1
        for item in chosen:
            if images is not None and item.image not in images and item.key not in images:
                continue
            if item.method not in columns:
                continue
            row_key = (item.model, item.key, _hashable(item.target))
            if row_key not in order:
                if limit is not None and len(rows) >= limit:
                    continue
                order[row_key] = len(rows)
                title = f"{item.key}\n{image_title(item.record)}"
                if several:
                    title = f"{item.model}\n{title}"
                rows.append((title, item.photo))
            cell = (order[row_key], columns.index(item.method))
            cells[cell] = f"failed:\n{_short(item.error)}" if item.error else item.map
        return rows, cells

    def _photo(self, record: Mapping[str, Any]) -> np.ndarray | None:
        rel = (record.get("files") or {}).get("input")
        if rel is None:
            return None
        path = photo_beside(self.folder / rel)
        if path not in self._photos:
            from PIL import Image

            try:
                with Image.open(path) as image:
                    self._photos[path] = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
            except OSError:
                self._photos[path] = None
        return self._photos[path]

    def _repr_html_(self) -> str:
        parts = [f"<div><p><b>{html.escape(self._summary())}</b></p>"]
        if not self.complete:
            parts.append("<p style='color:#b00020'>results.json says the run did not finish: "
                         "items may be missing</p>")
        if self.failures:
            parts.append(f"<p style='color:#b00020'><b>{len(self.failures)} item(s) failed:"
                         "</b></p><ul style='color:#b00020'>")
            for i in self.failures:
                text = f"{i.model} | {i.image} | {i.method}: {i.error}"
                parts.append(f"<li>{html.escape(text)}</li>")
            parts.append("</ul>")
        png = self._png()
        if png is not None:
            parts.append(f"<img src='data:image/png;base64,{png}' style='max-width:100%'/>")
        parts.append(self._table_html())
        parts.append("</div>")
        return "".join(parts)

    def _summary(self) -> str:
        return (f"{len(self)} explanation(s): {len(self.images)} image(s) x "
                f"{len(self.methods)} method(s), model {', '.join(self.models)}; "
                f"{len(self.failures)} failed; folder {self.folder}")

    def _png(self) -> str | None:
        chosen = [item for item in self.items if item.record.get("kind") == "attributor"]
        columns = _unique(i.method for i in chosen)
        rows, cells = self._grid(chosen, columns, None, limit=ROW_LIMIT)
        if not rows:
            return None
        fig = map_grid(rows, columns, cells, self._options(None, {}))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def _table_html(self) -> str:
        rows = tidy_rows(item.record for item in self.items)
        metrics = [c for c in (rows[0] if rows else {}) if c.startswith("metric_")]
        columns = [*_SHOWN[:-1], *metrics, _SHOWN[-1]]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
            + "</tr>"
            for row in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        return f"<Explanations {self._summary()}>"

    # --- the folder's life ----------------------------------------------------------------

    def close(self) -> None:
        """Remove the folder now if it is :func:`xai_core.explain`'s temporary one (else do
        nothing): maps not read yet cannot be read after."""
        if self._owner is not None:
            self._owner.cleanup()
            self._owner = None

    def __enter__(self) -> Explanations:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _LazyMaps(Mapping):
    """Maps by row key, each read (and kept by its item) on lookup."""

    def __init__(self, items: dict[tuple, Explanation]):
        self._items = items

    def __getitem__(self, key: tuple) -> np.ndarray | None:
        model, image, method, target = key
        return self._items[(model, image, method, _hashable(target))].map

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def read_config_figure(folder: Path) -> dict[str, Any]:
    """The ``figure:`` section of the run's saved ``config.yaml`` (``{}`` without one)."""
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.to_container(OmegaConf.load(path))
        section = config.get("figure") if isinstance(config, dict) else None
    except Exception:  # noqa: BLE001 - an unreadable config leaves the defaults
        return {}
    return dict(section) if isinstance(section, dict) else {}


def open_run(folder: str | os.PathLike[str]) -> Explanations:
    """The run in ``folder`` (``xai run``'s ``output_dir``, or :func:`xai_core.explain`'s) as
    :class:`Explanations`; maps are read only when used. A run that did not finish opens with a
    warning (its missing items are missing)."""
    results = read_results(folder)
    if not results.get("complete"):
        warnings.warn(f"{folder}: results.json says the run did not finish; items may be missing",
                      stacklevel=2)
    return Explanations(folder, results, load_items(folder, results))


def _unique(values) -> list:
    return list(dict.fromkeys(v for v in values if v is not None))


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _short(text: str | None, limit: int = 60) -> str:
    text = (text or "").splitlines()[0] if text else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
