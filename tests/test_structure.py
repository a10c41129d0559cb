"""The package's shape: a layout by concept, no import circle (lazy imports inside functions included), no function
over 60 lines, and a core that names no built-in plugin."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "mmadapt"
MAX_FUNCTION_LINES = 60


def module_names() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top or inside a function."""
    modules = module_names()

    def owner(name: str) -> str | None:  # `from mmadapt.x import y`: y is a module or a name in x
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("mmadapt"):
                targets |= {owner(f"{node.module}.{alias.name}") for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {owner(alias.name) for alias in node.names if alias.name.startswith("mmadapt")}
        graph[name] = targets - {None, name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_no_module_of_the_package_imports_itself_back_through_others():
    assert import_circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_function_in_the_core_or_the_built_in_plugins_is_over_60_lines():
    long = []
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_only_the_command_line_and_the_public_api_import_the_runner():
    """`mmadapt.pipeline.runner` walks the plan through the stages: the stages, the plan and `data prepare` sit
    below it."""
    importers = sorted(module for module, targets in import_graph().items() if "mmadapt.pipeline.runner" in targets)
    assert importers == ["mmadapt.api", "mmadapt.cli"]


#: options that belong to the built-in tasks: the core reads them only through what a task declares
#: (`Task.sequence_length_option`, `Task.train_language_option`)
TASK_OWNED_OPTIONS = {"max_length", "train_language", "doc_stride", "max_query_length"}


def option_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every `x.name`, `x["name"]`, `x.get("name")` and `getattr(x, "name")` in `tree`."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            reads.append((node.lineno, node.attr))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            reads.append((node.lineno, node.slice.value))
        elif isinstance(node, ast.Call) and _read_key(node) is not None:
            reads.append((node.lineno, _read_key(node)))
    return reads


def _read_key(call: ast.Call) -> str | None:
    """The constant key of `x.get(KEY, ...)` or `getattr(x, KEY, ...)`, else None."""
    if isinstance(call.func, ast.Attribute) and call.func.attr == "get" and call.args:
        key = call.args[0]
    elif isinstance(call.func, ast.Name) and call.func.id == "getattr" and len(call.args) >= 2:
        key = call.args[1]
    else:
        return None
    return key.value if isinstance(key, ast.Constant) else None


def test_the_core_reads_no_option_a_task_plugin_owns_by_its_name():
    reads = [f"{path.relative_to(REPO)}:{line} {name}" for path in PACKAGE.rglob("*.py")
             for line, name in option_reads(ast.parse(path.read_text(encoding="utf-8"))) if name in TASK_OWNED_OPTIONS]
    assert reads == []


def test_the_option_read_finder_sees_attributes_items_get_and_getattr_but_not_dict_keys():
    code = 'a.max_length\nb["train_language"]\nc.get("doc_stride", 1)\ngetattr(d, "max_query_length")\n{"max_length": 1}'
    found = sorted((line, name) for line, name in option_reads(ast.parse(code)) if name in TASK_OWNED_OPTIONS)
    assert found == [(1, "max_length"), (2, "train_language"), (3, "doc_stride"), (4, "max_query_length")]


#: the package root holds its entry points only; every concept has its package (README.md, "Where the code is")
ROOT_MODULES = {"__init__", "__main__", "api", "cli", "errors"}
CONCEPT_PACKAGES = {"commands", "data", "files", "model", "pipeline", "plugin_system", "recipe", "synth", "training"}


def test_the_package_root_holds_its_entry_points_and_one_package_per_concept():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert (modules, packages) == (ROOT_MODULES, CONCEPT_PACKAGES)


def test_every_package_says_what_it_holds_in_its_docstring():
    silent = [str(path.relative_to(REPO)) for path in PACKAGE.rglob("__init__.py")
              if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))]
    assert silent == []


def built_in_plugin_names() -> set[str]:
    """Every name the built-in plugins register (strategies, tasks, model families, layer rules, initialisers)."""
    from mmadapt.plugin_system.manager import build_plugins

    plugins = build_plugins()
    registries = (plugins.strategies, plugins.tasks, plugins.model_families, plugins.layer_rules, plugins.embedding_inits)
    return {name for registry in registries for name in registry.names()}


def recipe_keys() -> set[str]:
    """Every key of the recipe schema: a plugin name that is also a key (`dictionary`) reads as the key."""
    import dataclasses

    from mmadapt.recipe import schema

    sections = [value for value in vars(schema).values() if dataclasses.is_dataclass(value)]
    return {f.name for section in sections for f in dataclasses.fields(section)}


def plugin_names_named(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every string constant in `tree` that is one of `names` (variables may share a name)."""
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]


#: where the core may name a built-in plugin: the schema's defaults, and the synthetic benchmark, which writes its
#: files in the layouts of the real datasets
MAY_NAME_PLUGINS = (PACKAGE / "recipe" / "schema.py", PACKAGE / "synth")


def test_the_core_names_no_built_in_plugin_outside_the_schema_defaults():
    names = built_in_plugin_names() - recipe_keys()
    assert {"full", "minijoint", "minipost", "xnli", "first_k"} <= names
    named = [f"{path.relative_to(REPO)}:{line} {name}" for path in PACKAGE.rglob("*.py")
             if not any(path == allowed or allowed in path.parents for allowed in MAY_NAME_PLUGINS)
             for line, name in plugin_names_named(ast.parse(path.read_text(encoding="utf-8")), names)]
    assert named == []


def test_the_plugin_name_finder_sees_string_constants_not_variables_or_longer_strings():
    code = 'x = "minijoint"\nif full: pass\ny = "minijoint is a strategy"\nz = {"xnli": 1}\ndef f(b="full"): pass'
    assert sorted(plugin_names_named(ast.parse(code), {"minijoint", "full", "xnli"})) == [
        (1, "minijoint"), (4, "xnli"), (5, "full")]
