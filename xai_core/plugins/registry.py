"""A name -> object registry that remembers which plugin registered what.

The registries themselves (techniques, models, metrics, commands) are filled by
:mod:`xai_core.plugins.manager`; this module only knows how to store, look up and complain.

Every entry answers to two names: its short name (``saliency``), which the first plugin to register
it keeps, and its qualified name ``plugin:name`` (``saliency:saliency``), which is unambiguous
whatever else is installed. That is why a name may not contain ``:``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from xai_core.errors import PluginError, UnknownNameError

T = TypeVar("T")

__all__ = ["Entry", "Registry", "QUALIFIER"]

QUALIFIER = ":"
"""Separates the plugin from the name in a qualified name: ``plugin:name``."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and the plugin that provided it."""

    name: str
    obj: T
    plugin: str

    @property
    def qualified(self) -> str:
        """``plugin:name``: the name that stays unambiguous whatever else is installed."""
        return f"{self.plugin}{QUALIFIER}{self.name}"


class Registry(Generic[T]):
    """Names to objects, with duplicate detection and close-match errors.

    :param kind: what the registry holds, used in messages ("attributor", "model", ...).
    :param list_hint: the ``xai list`` argument that shows the registry's contents (``None``:
        ``xai list`` does not show them).
    """

    def __init__(self, kind: str, list_hint: str | None = None):
        self.kind = kind
        self.list_hint = list_hint
        self._entries: dict[str, Entry[T]] = {}
        self._qualified: dict[str, Entry[T]] = {}
        self._withheld: dict[str, str] = {}
        self._broken: list[str] = []

    def withhold(self, name: str, plugin: str, why: str) -> None:
        """Remember that broken ``plugin`` would have registered ``name``: asking for it (short
        or qualified) says ``why`` instead of only "unknown"."""
        self._withheld.setdefault(name, why)
        self._withheld.setdefault(f"{plugin}{QUALIFIER}{name}", why)

    def note_broken(self, why: str) -> None:
        """Remember a plugin that failed to load: every unknown name mentions it, in case it
        would have provided that name."""
        self._broken.append(why)

    def missing_note(self, name: str) -> str:
        """Why ``name`` may be missing: the broken plugin that provides it, else every plugin
        that failed to load (``""`` when none did)."""
        if isinstance(name, str) and name in self._withheld:
            return self._withheld[name]
        if not self._broken:
            return ""
        return (
            f"It may come from a plugin that failed to load: {'; '.join(self._broken)}. "
            "`xai list plugins` says how to fix it."
        )

    def check_name(self, name: str, plugin: str) -> None:
        """Raise :class:`PluginError` unless ``plugin`` may register ``name`` here: a valid name
        that no plugin has taken yet."""
        if not isinstance(name, str) or not name or name != name.strip() or QUALIFIER in name:
            raise PluginError(
                f"plugin {plugin!r} registered a {self.kind} with an invalid name {name!r}: "
                f"names are non-empty strings without surrounding spaces or {QUALIFIER!r}"
            )
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} name {name!r} is registered twice: by plugin {other!r} and by "
                f"plugin {plugin!r}; rename one of them or uninstall one plugin"
            )

    def add(self, name: str, obj: T, plugin: str) -> None:
        self.check_name(name, plugin)
        entry = Entry(name, obj, plugin)
        self._entries[name] = entry
        self._qualified[entry.qualified] = entry

    def entry(self, name: str) -> Entry[T]:
        """The entry registered as ``name`` or ``plugin:name``; :class:`UnknownNameError` with
        close matches otherwise."""
        found = self.find(name)
        if found is None:
            qualified = isinstance(name, str) and QUALIFIER in name
            choices = self._qualified if qualified else self._entries
            raise UnknownNameError(
                self.kind, name, choices, self.list_hint, note=self.missing_note(name)
            )
        return found

    def find(self, name: str) -> Entry[T] | None:
        """The entry registered as ``name`` or ``plugin:name``, or ``None``."""
        return self._entries.get(name) or self._qualified.get(name)

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self, pattern: str | None = None) -> list[str]:
        """Short names, sorted, optionally filtered by an fnmatch ``pattern``."""
        names = sorted(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
