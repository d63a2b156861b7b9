"""The class names a config gives a model (``labels``): a text file with one name a line, or a
list.

Read by models built from code (:mod:`xai_core.models.sources`, which re-exports
:func:`read_labels`) and by CLIP zero-shot classifiers (:mod:`xai_core.models.huggingface`).
What does not live here: class names a model brings itself (``id2label``, ImageNet's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xai_core.errors import ConfigError

__all__ = ["read_labels"]


def read_labels(labels: str | os.PathLike[str] | Sequence[Any] | None) -> list[str] | None:
    """Class names from ``labels``: a text file with one name a line (blank lines skipped) or a
    list; ``None`` when not given. Names must be distinct (targets name them)."""
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"labels file {str(path)!r} does not exist; give a text file with one class name "
                "a line (relative to the config's folder) or a YAML list of names"
            )
        try:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"labels file {str(path)!r} cannot be read as text: {exc}") from None
        where = f"labels file {str(path)!r}"
    else:
        names = [str(name).strip() for name in labels]
        where = "labels"
    if not names or not all(names):
        raise ConfigError(f"{where} lists no class names, or an empty one; give one name per class")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(
            f"{where} lists {', '.join(repr(n) for n in twice)} more than once; class names must "
            "be distinct (a target names one)"
        )
    return names
