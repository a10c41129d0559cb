"""`mmadapt.api` is the plugin API: the built-in plugins use nothing else, and docs/plugins.md covers all of it."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import types

import pytest
import torch

import mmadapt.api as api
from conftest import REPO
from mmadapt.api import build_plugins
from mmadapt.plugin_system import hookspecs, interfaces

DOC = REPO / "docs" / "plugins.md"
PLUGINS_DIR = REPO / "plugins"
#: the objects handed to plugins, documented member by member like the base classes
RECEIVED = (api.Registry, api.StageContext, api.InitInputs)


def backticked(text: str) -> set[str]:
    """Names written in backticks: `name`, `name(args)`, `@name`, `Class.name` (both `Class.name` and `name`)."""
    names = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        head = span.lstrip("@").split("(", 1)[0].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", head):
            names.add(head)
            names.add(head.rsplit(".", 1)[-1])
    return names


def section(text: str, name: str) -> str:
    """The part of `text` under the heading that names `name` in backticks, up to the next heading as high."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"(#+) ", line)
        if heading and name in backticked(line):
            level = len(heading.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if re.match(rf"#{{1,{level}}} ", lines[j])), len(lines))
            return "\n".join(lines[i:end])
    raise AssertionError(f"docs/plugins.md has no heading naming `{name}`")


def public_members(cls: type) -> set[str]:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return fields | {name for name in vars(cls) if not name.startswith("_")}


def hook_specs() -> dict[str, list[str]]:
    return {name: list(inspect.signature(fn).parameters)
            for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("mmadapt_")}


def test_every_hook_is_documented_with_its_arguments():
    doc = DOC.read_text(encoding="utf-8")
    for name, arguments in hook_specs().items():
        documented = backticked(section(doc, name))
        missing = [arg for arg in arguments if arg not in documented]
        assert not missing, f"docs/plugins.md: hook {name} does not describe {missing}"


@pytest.mark.parametrize("cls", [*(getattr(interfaces, n) for n in ("Named", "NoOptions", "Strategy", "ModelFamily",
                                                                   "LayerRule", "EmbeddingInit", "Task")), *RECEIVED],
                         ids=lambda cls: cls.__name__)
def test_every_public_member_of_a_base_class_is_documented_in_its_section(cls):
    documented = backticked(section(DOC.read_text(encoding="utf-8"), cls.__name__))
    missing = sorted(public_members(cls) - documented)
    assert not missing, f"docs/plugins.md, section `{cls.__name__}`: {missing} not mentioned"


def test_every_base_class_of_the_interfaces_module_is_exported_and_checked_above():
    classes = {name for name, obj in vars(interfaces).items()
               if inspect.isclass(obj) and obj.__module__ == interfaces.__name__}
    assert classes == {"Named", "NoOptions", "Strategy", "ModelFamily", "LayerRule", "EmbeddingInit", "Task",
                       "InitInputs"}
    assert classes <= set(api.__all__)


def test_every_export_is_documented_and_all_lists_exactly_what_the_module_holds():
    held = {name for name, obj in vars(api).items()
            if not name.startswith("_") and not isinstance(obj, types.ModuleType) and name != "annotations"}
    assert sorted(api.__all__) == sorted(held) and len(set(api.__all__)) == len(api.__all__)
    missing = sorted(set(api.__all__) - backticked(DOC.read_text(encoding="utf-8")))
    assert not missing, f"docs/plugins.md does not mention {missing}"


def mmadapt_imports(path) -> list[tuple[int, str]]:
    """(line, module) of every import of an `mmadapt` module in a source file, nested imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                   else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found += [(node.lineno, m) for m in modules if m.split(".")[0] == "mmadapt"]
    return found


def test_the_builtin_plugins_import_from_mmadapt_api_only():
    offending = [f"{path.relative_to(REPO)}:{line}: {module}" for path in sorted(PLUGINS_DIR.rglob("*.py"))
                 for line, module in mmadapt_imports(path) if module != "mmadapt.api"]
    assert not offending, "import these through mmadapt.api instead:\n" + "\n".join(offending)
    assert any(mmadapt_imports(path) for path in PLUGINS_DIR.rglob("*.py"))  # the check does look at imports


def doc_examples() -> dict[str, str]:
    doc = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- example: (\w+)\.py -->\n```python\n(.*?)```", doc, re.S))


@pytest.fixture
def examples(tmp_path, monkeypatch):
    """The example modules of docs/plugins.md, importable by their file names."""
    code = doc_examples()
    for name, source in code.items():
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield {name: importlib.import_module(name) for name in code}
    for name in code:
        sys.modules.pop(name, None)


def test_the_documented_examples_import_only_mmadapt_api_and_register_what_they_say(examples, tmp_path):
    assert set(examples) == {"frozen_base", "bert_family", "spread_rule", "mean_init", "topic_task"}
    for name in examples:
        assert {m for _, m in mmadapt_imports(tmp_path / f"{name}.py")} == {"mmadapt.api"}, name
    plugins = build_plugins(extra=list(examples.values()), load_entry_points=False)
    assert (plugins.strategies.names(), plugins.model_families.names(), plugins.layer_rules.names(),
            plugins.embedding_inits.names(), plugins.tasks.names()) == (
        ["frozen_base"], ["bert"], ["spread"], ["mean"], ["topic"])


def test_the_documented_examples_compute_what_they_describe(examples):
    plugins = build_plugins(extra=list(examples.values()), load_entry_points=False)
    assert plugins.layer_rules.get("spread").select(24, 4, {}) == [5, 11, 17, 23]
    strategy = plugins.strategies.get("frozen_base")
    shape = api.ModelShape(hidden_size=8, intermediate_size=16, num_layers=4, vocab_size=50)
    plan = strategy.predict_compute(strategy.Options(frozen_layers=1), shape, 16, 0.15, plugins)
    assert plan.adapt_layers == 4 and plan.pretrain.parts["layer 0"][1] == 0  # a frozen bottom layer has no backward
    source = torch.randn(50, 8)
    init = plugins.embedding_inits.get("mean")
    weight = init.initialise(api.InitInputs(list(range(30)), None, source, types.SimpleNamespace(initializer_range=0.02),
                                            torch.Generator().manual_seed(0), init.Options(noise=0.0), "xx"))
    assert weight.shape == (30, 8) and torch.allclose(weight, source.mean(dim=0).expand(30, 8))
    family = plugins.model_families.get("bert")
    model = family.build_from_config({"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2,
                                      "intermediate_size": 16}, 50, types.SimpleNamespace(pad_token_id=1))
    assert len(family.layers(model)) == 2 and family.lm_head(model) is model.cls
    assert family.word_embeddings(model).weight is model.get_output_embeddings().weight
    assert api.mlm_head_name(model) == "cls"


def test_task_section_builds_the_very_section_a_recipe_hands_its_task():
    cfg = api.load_recipe(REPO / "recipes" / "quickstart.yaml")
    xnli = build_plugins().tasks.get("xnli")
    given = {key: cfg.tasks[0][key] for key in ("train_file", "dev_file", "test_file", "train_language", "max_length")}
    built = api.task_section(xnli, "xnli", languages=list(cfg.tasks[0].languages), **given)
    assert dict(built) == dict(cfg.tasks[0])
    assert built.max_length == built["max_length"] == 32 and xnli.option_value(built, xnli.sequence_length_option) == 32
    with pytest.raises(api.MmadaptError, match=r"tasks.xnli.max_lenght: unknown key.*did you mean"):
        api.task_section(xnli, "xnli", max_lenght=32)


class _SixMethodTask(api.Task):
    """A task that implements only what it must: no gold reader, no predictions layout of its own."""


def test_a_task_without_a_layout_of_its_own_writes_and_reads_predictions_as_json_lines(tmp_path):
    task, path = _SixMethodTask(), tmp_path / "out" / "predictions.jsonl"
    task.write_predictions({"a": "entailment", "7": 2}, path)
    assert path.read_text(encoding="utf-8").splitlines() == ['{"id": "a", "prediction": "entailment"}',
                                                            '{"id": "7", "prediction": 2}']
    assert task.read_predictions(path) == {"a": "entailment", "7": 2}
    path.write_text('{"id": "a", "prediction": 1}\n{"id": "a", "label": 1}\n', encoding="utf-8")
    with pytest.raises(api.DataError, match=r"predictions.jsonl:2: each line is"):
        task.read_predictions(path)


def test_a_task_without_a_gold_reader_is_refused_by_score_naming_the_method(tmp_path):
    with pytest.raises(api.MmadaptError, match=r"_SixMethodTask reads no official gold file.*Task.read_gold"):
        _SixMethodTask().read_gold(tmp_path / "gold.tsv", "de")
