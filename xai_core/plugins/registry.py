"""A name -> object registry that remembers which plugin registered what.

The registries themselves (techniques, models) are filled by :mod:`xai_core.plugins`; this module
only knows how to store, look up and complain.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from xai_core.errors import PluginError, UnknownNameError

T = TypeVar("T")

__all__ = ["Entry", "Registry"]


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and the plugin that provided it."""

    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Names to objects, with duplicate detection and close-match errors.

    :param kind: what the registry holds, used in messages ("attributor", "model", ...).
    :param list_hint: the ``xai list`` argument that shows the registry's contents.
    """

    def __init__(self, kind: str, list_hint: str = ""):
        self.kind = kind
        self.list_hint = list_hint
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, plugin: str) -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise PluginError(
                f"plugin {plugin!r} registered a {self.kind} with an invalid name {name!r}: "
                "names are non-empty strings without surrounding spaces"
            )
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} name {name!r} is registered twice: by plugin {other!r} and by "
                f"plugin {plugin!r}; rename one of them or uninstall one plugin"
            )
        self._entries[name] = Entry(name, obj, plugin)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, self.list_hint) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
