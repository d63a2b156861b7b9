"""User-facing errors.

Every problem a user can fix (a bad name, a bad config key, an unreadable image) is raised as an
:class:`XaiError` subclass whose message names the problem and the fix. The CLI prints these as one
line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "XaiError",
    "UnknownNameError",
    "ConfigError",
    "InputError",
    "TargetError",
    "ModelLoadError",
    "PluginError",
    "MaskError",
    "WriteError",
    "close_matches",
    "did_you_mean",
]


class XaiError(Exception):
    """Base class of every error a user can act on."""


class UnknownNameError(XaiError, KeyError):
    """A model, technique, sample or plugin name that is not registered."""

    def __init__(
        self, kind: str, name: str, choices: Iterable[str], hint: str | None = None,
        note: str = "",
    ):
        """:param hint: the ``xai list`` argument that shows the choices when they are too
        many to print (``"models"``; ``""`` for plain ``xai list``; ``None``: no command does).
        :param note: said after the choices: why the name may be missing (a broken plugin)."""
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        self.note = note
        message = f"unknown {kind} {name!r}"
        message += did_you_mean(name, self.choices)
        if len(self.choices) <= 30:
            message += f" Available: {', '.join(self.choices) or '(none)'}."
        else:
            message += f" ({len(self.choices)} available"
            command = f"xai list {hint}".strip()
            message += f"; `{command}` shows them)." if hint is not None else ")."
        if note:
            message += f" {note}"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(XaiError):
    """A config key, value or type that does not fit the schema."""


class InputError(XaiError):
    """An input image that cannot be found or read."""


class TargetError(XaiError):
    """A target class that does not exist for the model."""


class ModelLoadError(XaiError):
    """Weights that cannot be loaded (offline, wrong file, shape mismatch)."""


class PluginError(XaiError):
    """A plugin that breaks the contract (duplicate name, bad registration)."""


class WriteError(XaiError):
    """Writing a run's outputs failed (a full disk, a folder without write permission)."""


class MaskError(XaiError):
    """A ground-truth mask that is missing, unreadable, empty or of another size than its image."""


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` choices that look like ``name``, best first (case-insensitive)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    result = [lowered[f] for f in found]
    # A prefix or substring match ("resnet" -> "timm/resnet18") is as useful as a fuzzy one.
    for choice in choices:
        if len(result) >= n:
            break
        if choice not in result and name and name.lower() in choice.lower():
            result.append(choice)
    return result


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'a', 'b'?"`` for the :func:`close_matches` of ``name``, or ``""`` when
    none look like it: the clause of every unknown-name message."""
    matches = close_matches(name, choices)
    return f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
