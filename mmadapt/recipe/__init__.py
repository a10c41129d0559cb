"""Recipes: YAML files read into the typed schema, validated as a whole before any work."""
from mmadapt.recipe.loading import load_recipe, parse_overrides, save_resolved, task_section, to_yaml

__all__ = ["load_recipe", "parse_overrides", "save_resolved", "task_section", "to_yaml"]
