"""The plugin manager: hook specs, entry-point loading and the registries built from them.

Built-in plugins are found through the `mmadapt` entry-point group exactly like third-party
ones; this module never imports them by name.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import Any, Iterable

import pluggy

from mmadapt.errors import PluginError
from mmadapt.plugin_system import hookspecs
from mmadapt.plugin_system.registry import Registry

ENTRY_POINT_GROUP = "mmadapt"

#: registry attribute -> (hook name, kind used in messages)
REGISTRY_HOOKS = {
    "strategies": ("mmadapt_register_strategies", "strategy"),
    "model_families": ("mmadapt_register_model_families", "model family"),
    "layer_rules": ("mmadapt_register_layer_rules", "layer rule"),
    "tasks": ("mmadapt_register_tasks", "task"),
    "embedding_inits": ("mmadapt_register_embedding_inits", "embedding init"),
}


@dataclass
class PluginInfo:
    """What `mmadapt plugins` shows for one plugin."""

    name: str
    package: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)


class _RegistryOf:
    """`plugins.strategies` and its siblings: the registry filled by the REGISTRY_HOOKS hook of the attribute's name."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, plugins: "Plugins | None", owner: type | None = None) -> Registry:
        if plugins is None:  # looked up on the class: the descriptor itself
            return self  # type: ignore[return-value]
        return plugins._registries[self.name]


class Plugins:
    """A loaded plugin manager plus the registries its registry hooks filled."""

    def __init__(self, manager: pluggy.PluginManager, packages: dict[str, tuple[str, str]]):
        self.manager = manager
        self._packages = packages

    @cached_property
    def _registries(self) -> dict[str, Registry]:
        registries = {}
        for attr, (hook_name, kind) in REGISTRY_HOOKS.items():
            registry: Registry = Registry(kind)
            caller = getattr(self.manager.hook, hook_name)
            # Call implementations one by one so every entry knows which plugin added it.
            for impl in reversed(caller.get_hookimpls()):
                registry.current_plugin = self.manager.get_name(impl.plugin) or repr(impl.plugin)
                impl.function(registry=registry)
            registries[attr] = registry
        return registries

    strategies = _RegistryOf()
    model_families = _RegistryOf()
    layer_rules = _RegistryOf()
    tasks = _RegistryOf()
    embedding_inits = _RegistryOf()

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, for event hooks such as `mmadapt_stage_finished`."""
        return self.manager.hook

    def describe(self) -> list[PluginInfo]:
        """One PluginInfo per registered plugin, with what each registered."""
        infos = {}
        for name, plugin in self.manager.list_name_plugin():
            package, version = self._packages.get(name, ("(registered in code)", ""))
            infos[name] = PluginInfo(name, package, version)
        for attr, registry in self._registries.items():
            for entry in registry:
                infos[entry.plugin].registers.setdefault(attr, []).append(entry.name)
        return sorted(infos.values(), key=lambda i: i.name)


def build_plugins(extra: Iterable[ModuleType | object] = (), load_entry_points: bool = True) -> Plugins:
    """Build a plugin manager: entry-point plugins, then `extra` (used by tests).

    A plugin that fails to import, or implements a hook that does not exist, is an error.
    """
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    packages: dict[str, tuple[str, str]] = {}
    if load_entry_points:
        for ep in _entry_points():
            try:
                plugin = ep.load()
            except Exception as exc:  # any failure is fatal: a half-loaded tool is worse
                dist = ep.dist.name if ep.dist else "unknown package"
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}, from {dist}) failed to import: "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall that package."
                ) from exc
            if manager.is_registered(plugin):
                continue
            manager.register(plugin, name=ep.name)
            if ep.dist is not None:
                packages[ep.name] = (ep.dist.name, ep.dist.version)
    for plugin in extra:
        manager.register(plugin, name=getattr(plugin, "__name__", None))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc} Hook names must match a spec in mmadapt/plugin_system/hookspecs.py.") from exc
    return Plugins(manager, packages)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    seen, unique = set(), []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in seen:  # an editable and a regular install can both list one
            seen.add(ep.name)
            unique.append(ep)
    return sorted(unique, key=lambda e: e.name)


_default: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin manager, built on first use."""
    global _default
    if _default is None:
        _default = build_plugins()
    return _default
