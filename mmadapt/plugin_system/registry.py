"""A named collection of plugin-provided things (strategies, model families, ...)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Iterator, TypeVar

from mmadapt.errors import PluginError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item and the plugin that registered it."""

    name: str
    item: T
    plugin: str


class Registry(Generic[T]):
    """Name -> item, filled by registry hooks. `kind` is used in messages ("strategy")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self.current_plugin = "<unknown>"

    def add(self, name: str, item: T) -> None:
        """Register `item` under `name`; a name taken by another plugin is an error."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {self.current_plugin!r} registered a {self.kind} with an invalid name {name!r}")
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {other!r} and plugin "
                f"{self.current_plugin!r}; uninstall one or rename it"
            )
        self._entries[name] = Entry(name, item, self.current_plugin)

    def get(self, name: str) -> T:
        """The item called `name`; an unknown name lists the available ones."""
        if name not in self._entries:
            raise PluginError(self.unknown_message(name))
        return self._entries[name].item

    def unknown_message(self, name: Any) -> str:
        """'unknown strategy 'x' (did you mean ..?); available: a, b'."""
        available = ", ".join(sorted(self._entries)) or "none"
        return f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}; available: {available}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)
