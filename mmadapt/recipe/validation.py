"""Check a raw recipe dict against the schema, collecting every problem with its path.

Plugin sections are checked against the chosen plugin's `Options` merged with the core
section, so a plugin's options are validated exactly like the core's.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Union

from mmadapt.errors import did_you_mean

Problems = list[tuple[str, str]]


def resolved_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """A dataclass's fields with their annotations resolved to real types."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def clone_field(f: dataclasses.Field, tp: Any) -> tuple:
    """A `make_dataclass` field spec copying `f`'s default and metadata, typed `tp`."""
    kwargs: dict[str, Any] = {"metadata": f.metadata}
    if dataclasses.is_dataclass(tp):
        kwargs["default_factory"] = tp  # a specialised section defaults to its own type
    elif f.default is not dataclasses.MISSING:
        kwargs["default"] = f.default
    elif f.default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = f.default_factory
    return (f.name, tp, dataclasses.field(**kwargs))


def merge_option_classes(core: type, options: type, name: str) -> type:
    """A dataclass with the core section's fields followed by a plugin's option fields."""
    specs = {f.name: clone_field(f, tp) for cls in (core, options) for f, tp in resolved_fields(cls)}
    return dataclasses.make_dataclass(name, list(specs.values()))


class Checker:
    """Walks a value against a type; `plugins` resolves plugin sections."""

    def __init__(self, plugins: Any):
        self.plugins = plugins
        self.problems: Problems = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path or "<root>", message))

    def level_fields(self, cls: type, value: dict, path: str) -> list[tuple[dataclasses.Field, Any]]:
        """`cls`'s fields, plugin sections typed by the plugin chosen in `value`."""
        out = []
        for f, tp in resolved_fields(cls):
            plugin = f.metadata.get("plugin")
            sub = value.get(f.name, {}) if isinstance(value, dict) else None
            if plugin and dataclasses.is_dataclass(tp) and isinstance(sub, dict):
                tp = self.plugin_section_class(tp, plugin, sub, f"{path}{f.name}") or Any
            out.append((f, tp))
        return out

    def typed_class(self, cls: type, value: dict, path: str = "") -> type:
        """The dataclass, all the way down, that a valid `value` is an instance of."""
        fields = []
        for f, tp in self.level_fields(cls, value, path):
            sub = value.get(f.name, {}) if isinstance(value, dict) else None
            if dataclasses.is_dataclass(tp) and isinstance(sub, dict):
                tp = self.typed_class(tp, sub, f"{path}{f.name}.")
            elif f.metadata.get("plugin") and typing.get_origin(tp) is list:
                # Items may be different plugins: keep them untyped, but complete with defaults.
                (item_tp,) = typing.get_args(tp)
                if isinstance(sub, list):
                    value[f.name] = [self.completed(item_tp, f.metadata["plugin"], item, f"{path}{f.name}[{i}]")
                                     for i, item in enumerate(sub)]
                tp = list[Any]
            fields.append(clone_field(f, tp))
        return dataclasses.make_dataclass(cls.__name__, fields)

    def completed(self, core: type, plugin: tuple[str, str], item: dict, path: str) -> dict:
        """A plugin section with every default filled in, as a plain dict."""
        from omegaconf import OmegaConf

        section = self.plugin_section_class(core, plugin, item, path)
        typed = self.typed_class(section, item, f"{path}.")
        return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(typed), item))

    def plugin_section_class(self, core: type, plugin: tuple[str, str], value: dict, path: str) -> type | None:
        """Core section + the chosen plugin's options; None (problem recorded) if unknown."""
        registry_name, selector = plugin
        registry = getattr(self.plugins, registry_name)
        defaults = {f.name: f.default for f in dataclasses.fields(core) if f.default is not dataclasses.MISSING}
        chosen = value.get(selector, defaults.get(selector))
        if chosen not in registry:
            self.problem(f"{path}.{selector}", registry.unknown_message(chosen))
            return None
        options = getattr(registry.get(chosen), "Options", None)
        if options is None or not dataclasses.is_dataclass(options):
            return core
        return merge_option_classes(core, options, f"{core.__name__}_{chosen}")

    def check(self, value: Any, tp: Any, path: str, metadata: Any = None) -> None:
        """Record every problem of `value` against type `tp` at dotted `path`."""
        origin = typing.get_origin(tp)
        if tp is Any:
            return
        if origin is Union:
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return
            non_none = [a for a in args if a is not type(None)]
            return self.check(value, non_none[0], path, metadata)
        if dataclasses.is_dataclass(tp):
            return self.check_section(value, tp, path)
        if origin in (list, tuple):
            if not isinstance(value, (list, tuple)):
                return self.problem(path, f"expected a list, got {_describe(value)}")
            (item_tp,) = typing.get_args(tp)[:1] or (Any,)
            plugin = (metadata or {}).get("plugin")
            item_metadata = _item_metadata(metadata or {})
            for i, item in enumerate(value):
                if item_metadata:
                    self.check(item, item_tp, f"{path}[{i}]", item_metadata)
                    continue
                if plugin and isinstance(item, dict):  # a list of plugin sections
                    section = self.plugin_section_class(item_tp, plugin, item, f"{path}[{i}]")
                    if section is not None:
                        self.check_section(item, section, f"{path}[{i}]")
                    continue
                self.check(item, item_tp, f"{path}[{i}]")
            return
        if origin is dict:
            if not isinstance(value, dict):
                return self.problem(path, f"expected a mapping, got {_describe(value)}")
            value_tp = (typing.get_args(tp) + (Any, Any))[1]
            if dataclasses.is_dataclass(value_tp):  # e.g. languages: {vo: {corpus: [...]}}
                for key, item in value.items():
                    self.check_section(item, value_tp, f"{path}.{key}")
            partial = (metadata or {}).get("partial_of")
            if partial is not None:  # a subset of another section's keys, e.g. a stage's `train`
                self.check_section(value, partial, path)
            return
        if not _scalar_ok(value, tp):
            return self.problem(path, f"expected {tp.__name__}, got {_describe(value)}")
        choices = (metadata or {}).get("choices")
        if choices and value not in choices:
            self.problem(path, f"{value!r} is not one of {', '.join(map(str, choices))}{did_you_mean(value, choices)}")
        out_of_range = range_problem(value, metadata or {})
        if out_of_range:
            self.problem(path, out_of_range)

    def check_section(self, value: Any, cls: type, path: str) -> None:
        if not isinstance(value, dict):
            return self.problem(path, f"expected a mapping, got {_describe(value)}")
        prefix = f"{path}." if path else ""
        fields = {f.name: (f, tp) for f, tp in self.level_fields(cls, value, prefix)}
        for key, sub in value.items():
            if key not in fields:
                self.problem(f"{prefix}{key}", f"unknown key{did_you_mean(key, fields)}; valid keys: {', '.join(fields)}")
                continue
            f, tp = fields[key]
            if f.metadata.get("computed"):
                self.problem(f"{prefix}{key}", "is computed by mmadapt; remove it from the recipe")
                continue
            self.check(sub, tp, f"{prefix}{key}", f.metadata)


#: the range keys a field's metadata may carry: inclusive `min`/`max`, exclusive `gt`/`lt`
RANGE_KEYS = ("min", "max", "gt", "lt")


def describe_range(metadata: dict) -> str:
    """The allowed range of a field, e.g. 'at least 1', 'greater than 0', 'in (0, 1)', 'in [0, 1]'."""
    low = ("[", metadata["min"]) if "min" in metadata else ("(", metadata["gt"]) if "gt" in metadata else None
    high = ("]", metadata["max"]) if "max" in metadata else (")", metadata["lt"]) if "lt" in metadata else None
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"at least {low[1]}" if low[0] == "[" else f"greater than {low[1]}"
    if high:
        return f"at most {high[1]}" if high[0] == "]" else f"less than {high[1]}"
    return ""


def range_problem(value: Any, metadata: dict) -> str | None:
    """'must be <range>, got <value>' when a number is outside its field's range (schema metadata), else None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    bounds = {key: metadata[key] for key in RANGE_KEYS if metadata.get(key) is not None}
    if not bounds:
        return None
    inside = (value >= bounds.get("min", value) and value <= bounds.get("max", value)
              and ("gt" not in bounds or value > bounds["gt"]) and ("lt" not in bounds or value < bounds["lt"])
              and math.isfinite(value))  # NaN and infinities are in no range
    return None if inside else f"must be {describe_range(bounds)}, got {value!r}"


def _item_metadata(metadata: dict) -> dict | None:
    """What each item of a list field is checked against: `item_choices` and the `items` range."""
    item = dict(metadata.get("items", {}))
    if "item_choices" in metadata:
        item["choices"] = metadata["item_choices"]
    return item or None


def _scalar_ok(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__
