"""Task data: the official files, `datasets` copies saved to disk, and errors naming file and row."""
from __future__ import annotations

import json
import shutil
import time

import pytest

from mmadapt.errors import MmadaptError
from mmadapt_plugins.tasks.mlqa import MlqaTask, SquadTask
from mmadapt_plugins.tasks.pawsx import PawsxTask
from mmadapt_plugins.tasks.xnli import XnliTask
from task_helpers import MLQA_DIR, PAWSX_DIR, SQUAD_DIR, XNLI_DIR, task_options

# -- official files --------------------------------------------------------------------------


def test_xnli_trains_on_multinli_without_the_no_consensus_rows():
    task = XnliTask()
    examples = task.train_examples(task_options(task, train_file=str(XNLI_DIR / "multinli_1.0_train.jsonl")))
    assert len(examples) == 6  # 7 rows, one with gold_label "-"
    assert examples[1] == {"id": "1001c", "sentence1": 'She said "no" to the offer.',
                           "sentence2": "She accepted the offer.", "label": "contradiction"}
    assert [ex["label"] for ex in examples].count("neutral") == 2
    limited = task.train_examples(task_options(task, train_file=str(XNLI_DIR / "multinli_1.0_train.jsonl"),
                                               max_train_examples=2))
    assert [ex["id"] for ex in limited] == ["1000e", "1001c"]


def test_xnli_dev_and_test_select_the_language_column():
    task = XnliTask()
    options = task_options(task, dev_file=str(XNLI_DIR / "xnli.dev.tsv"), test_file=str(XNLI_DIR / "xnli.test.tsv"))
    de = task.eval_examples(options, "de", "dev")
    assert [(ex["id"], ex["label"]) for ex in de] == [("1", "entailment"), ("2", "contradiction"), ("3", "neutral")]
    assert de[1]["sentence1"] == 'Sie sagte "nein" zu dem Angebot.'  # quotes are text (QUOTE_NONE)
    zh = task.eval_examples(options, "zh", "test")
    assert len(zh) == 4 and zh[0]["sentence2"] == "城市一直很干燥。"
    with pytest.raises(MmadaptError, match=r"xnli.dev.tsv: no rows for language 'fr'; languages in the file: de, en, zh"):
        task.eval_examples(options, "fr", "dev")


def test_pawsx_reads_train_and_per_language_files():
    task = PawsxTask()
    options = task_options(task, train_file=str(PAWSX_DIR / "en" / "train.tsv"),
                           dev_file=str(PAWSX_DIR / "{language}" / "dev_2k.tsv"),
                           test_file=str(PAWSX_DIR / "{language}" / "test_2k.tsv"))
    train = task.train_examples(options)
    assert len(train) == 6 and [ex["label"] for ex in train] == [1, 0, 1, 0, 1, 0]
    assert task.eval_examples(options, "de", "test")[3] == {
        "id": "4", "sentence1": "Der Sohn erbte den Hof vom Vater.", "sentence2": "Der Vater erbte den Hof vom Sohn.",
        "label": 0}
    assert [ex["label"] for ex in task.eval_examples(options, "zh", "dev")] == [1, 0, 1]


def test_mlqa_reads_squad_training_and_mlqa_files_per_language():
    task = MlqaTask()
    options = task_options(task, train_file=str(SQUAD_DIR / "train-v1.1.json"), mlqa_dir=str(MLQA_DIR))
    train = task.train_examples(options)
    assert [ex["id"] for ex in train] == ["sq-train-1", "sq-train-2", "sq-train-3", "sq-train-4"]
    for ex in train:
        answer = ex["answers"][0]
        assert ex["context"][answer["answer_start"]:answer["answer_start"] + len(answer["text"])] == answer["text"]
    de = task.eval_examples(options, "de", "test")
    assert [ex["answers"][0]["text"] for ex in de] == ["in den Schweizer Alpen", "in die Nordsee", "etwa 1.230 Kilometer"]
    zh = task.eval_examples(options, "zh", "dev")
    assert zh == [{"id": "mlqa-zh-dev-1", "title": "北京", "context": "北京是中国的首都。", "question": "中国的首都是哪里？",
                   "answers": [{"text": "北京", "answer_start": 0}]}]
    with pytest.raises(MmadaptError, match="MLQA test file"):
        task.eval_examples(options, "fr", "test")  # no such file in the fixtures


def test_each_task_names_the_files_it_reads_for_a_split_and_language():
    pawsx = PawsxTask()
    options = task_options(pawsx, train_file="x/en/train.tsv", test_file="x/{language}/test_2k.tsv")
    assert pawsx.data_files(options, "train", "en") == ["x/en/train.tsv"]
    assert pawsx.data_files(options, "test", "de") == ["x/de/test_2k.tsv"]
    assert pawsx.data_files(options, "dev", "de") == []  # from the `datasets` cache
    mlqa = MlqaTask()
    options = task_options(mlqa, train_file=str(SQUAD_DIR / "train-v1.1.json"), mlqa_dir=str(MLQA_DIR))
    assert mlqa.data_files(options, "test", "de") == [str(MLQA_DIR / "test" / "test-context-de-question-de.json")]
    assert mlqa.data_files(options, "train", "en") == [str(SQUAD_DIR / "train-v1.1.json")]
    assert [ex["id"] for ex in mlqa.eval_examples(options, "de", "test")][:1] == ["mlqa-de-1"]
    overridden = task_options(mlqa, mlqa_dir=str(MLQA_DIR), test_file="t/{language}.json")
    assert mlqa.data_files(overridden, "test", "de") == ["t/de.json"]


def test_squad_dev_keeps_every_gold_answer():
    task = SquadTask()
    dev = task.eval_examples(task_options(task, dev_file=str(SQUAD_DIR / "dev-v1.1.json")), "en", "dev")
    assert [a["text"] for a in dev[0]["answers"]] == ["the Red Planet", "Red Planet", "the Red Planet."]
    with pytest.raises(MmadaptError, match="no public test set"):
        task.eval_examples(task_options(task), "en", "test")


def test_a_missing_file_names_it_and_says_where_to_get_it(tmp_path):
    task = PawsxTask()
    with pytest.raises(MmadaptError, match=r"PAWS-X dev file \(task.dev_file\) not found: .*/nowhere/de/dev_2k.tsv\. "
                                           r"Download https://storage.googleapis.com/paws/pawsx/x-final.tar.gz"):
        task.eval_examples(task_options(task, dev_file=str(tmp_path / "nowhere/{language}/dev_2k.tsv")), "de", "dev")


# -- datasets copies --------------------------------------------------------------------------


def test_xnli_from_per_language_datasets_copies(tmp_path):
    import datasets

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    rows = {"premise": ["Der Hund schläft.", "Es regnet."], "hypothesis": ["Ein Tier ruht.", "Es ist trocken."],
            "label": [0, 2]}
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(tmp_path / "xnli" / "de")
    task = XnliTask()
    options = task_options(task, hf_dataset=str(tmp_path / "xnli"), train_language="de")
    dev = task.eval_examples(options, "de", "dev")
    assert dev == [{"id": "0", "sentence1": "Der Hund schläft.", "sentence2": "Ein Tier ruht.", "label": "entailment"},
                   {"id": "1", "sentence1": "Es regnet.", "sentence2": "Es ist trocken.", "label": "contradiction"}]
    assert [ex["label"] for ex in task.train_examples(options)] == ["entailment", "contradiction"]
    # a single saved split given as the dev file
    split.save_to_disk(tmp_path / "de_dev")
    assert task.eval_examples(task_options(task, dev_file=str(tmp_path / "de_dev")), "de", "dev") == dev


def test_pawsx_from_a_datasets_copy(tmp_path):
    import datasets

    features = datasets.Features({"id": datasets.Value("int32"), "sentence1": datasets.Value("string"),
                                  "sentence2": datasets.Value("string"), "label": datasets.ClassLabel(names=["0", "1"])})
    split = datasets.Dataset.from_dict({"id": [7, 8], "sentence1": ["a b", "c d"], "sentence2": ["b a", "d c"],
                                        "label": [1, 0]}, features=features)
    datasets.DatasetDict({"test": split}).save_to_disk(tmp_path / "paws-x" / "fr")
    task = PawsxTask()
    examples = task.eval_examples(task_options(task, hf_dataset=str(tmp_path / "paws-x")), "fr", "test")
    assert [(ex["id"], ex["label"]) for ex in examples] == [("7", 1), ("8", 0)]


def squad_rows(ids, context, question, text):
    return {"id": ids, "title": ["t"] * len(ids), "context": [context] * len(ids), "question": [question] * len(ids),
            "answers": [{"text": [text], "answer_start": [context.index(text)]}] * len(ids)}


def test_mlqa_and_squad_from_datasets_copies(tmp_path):
    import datasets

    de = datasets.Dataset.from_dict(squad_rows(["q1"], "Der Rhein fließt in die Nordsee.", "Wohin?", "in die Nordsee"))
    datasets.DatasetDict({"validation": de, "test": de}).save_to_disk(tmp_path / "mlqa" / "mlqa.de.de")
    en = datasets.Dataset.from_dict(squad_rows(["s1", "s2"], "Mars is red.", "What colour?", "red"))
    datasets.DatasetDict({"train": en, "validation": en}).save_to_disk(tmp_path / "squad")
    task = MlqaTask()
    options = task_options(task, hf_dataset=str(tmp_path / "mlqa"), train_file=str(tmp_path / "squad"))
    assert task.eval_examples(options, "de", "test")[0]["answers"] == [{"text": "in die Nordsee", "answer_start": 17}]
    assert [ex["id"] for ex in task.train_examples(options)] == ["s1", "s2"]
    squad = SquadTask()
    assert len(squad.eval_examples(task_options(squad, hf_dataset=str(tmp_path / "squad")), "en", "dev")) == 2


def test_a_dataset_missing_from_the_cache_says_what_to_download():
    task = XnliTask()
    start = time.monotonic()
    with pytest.raises(MmadaptError) as err:
        task.eval_examples(task_options(task, hf_dataset="mmadapt-test/no-such-dataset"), "de", "dev")
    assert time.monotonic() - start < 20  # offline: no network retries
    message = str(err.value)
    assert "'mmadapt-test/no-such-dataset' (config 'de', split 'validation') is not in the local Hugging Face cache" \
        in message
    assert "save_to_disk('DIR/de')" in message and "XNLI-1.0.zip" in message


# -- malformed rows ---------------------------------------------------------------------------


def edit_lines(source, target, line, new):
    lines = source.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = new(lines[line - 1])
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def test_an_xnli_row_with_an_unknown_label_names_file_and_line(tmp_path):
    bad = edit_lines(XNLI_DIR / "xnli.dev.tsv", tmp_path / "xnli.dev.tsv", 3,
                     lambda line: line.replace("contradiction", "contra", 1))
    task = XnliTask()
    with pytest.raises(MmadaptError, match=r"xnli.dev.tsv:3: unknown label 'contra'; labels are 'entailment'"):
        task.eval_examples(task_options(task, dev_file=str(bad)), "en", "dev")


def test_an_xnli_file_missing_a_column_names_it(tmp_path):
    bad = edit_lines(XNLI_DIR / "xnli.test.tsv", tmp_path / "xnli.test.tsv", 1,
                     lambda line: line.replace("pairID", "pair_id"))
    with pytest.raises(MmadaptError, match=r"xnli.test.tsv:1: header lacks column\(s\) pairID"):
        XnliTask().read_gold(bad, "en")


def test_a_tsv_row_with_a_missing_field_names_file_and_line(tmp_path):
    bad = edit_lines(PAWSX_DIR / "de" / "dev_2k.tsv", tmp_path / "dev_2k.tsv", 3,
                     lambda line: line.rsplit("\t", 1)[0])
    with pytest.raises(MmadaptError, match=r"dev_2k.tsv:3: 3 tab-separated fields, but the header has 4"):
        PawsxTask().read_gold(bad, "de")


def test_a_pawsx_label_out_of_range_names_file_and_line(tmp_path):
    bad = edit_lines(PAWSX_DIR / "en" / "train.tsv", tmp_path / "train.tsv", 4, lambda line: line[:-1] + "2")
    task = PawsxTask()
    with pytest.raises(MmadaptError, match=r"train.tsv:4: unknown label '2'; labels are 0, 1"):
        task.train_examples(task_options(task, train_file=str(bad)))


def test_a_multinli_row_missing_a_key_names_file_and_line(tmp_path):
    def drop_sentence2(line):
        row = json.loads(line)
        del row["sentence2"]
        return json.dumps(row)

    bad = edit_lines(XNLI_DIR / "multinli_1.0_train.jsonl", tmp_path / "train.jsonl", 2, drop_sentence2)
    task = XnliTask()
    with pytest.raises(MmadaptError, match=r"train.jsonl:2: missing field\(s\) sentence2"):
        task.train_examples(task_options(task, train_file=str(bad)))


def test_an_answer_offset_outside_the_context_names_article_paragraph_and_question(tmp_path):
    data = json.loads((MLQA_DIR / "test" / "test-context-de-question-de.json").read_text(encoding="utf-8"))
    data["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 500
    bad = tmp_path / "test-context-de-question-de.json"
    bad.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(MmadaptError, match=r"test-context-de-question-de.json: article 0 \('Rhein'\), paragraph 0, "
                                           r"question 'mlqa-de-2': answer 'in die Nordsee' at answer_start 500 ends "
                                           r"at 514, outside the context \(116 characters\)"):
        MlqaTask().read_gold(bad, "de")


def test_a_question_without_answers_names_it(tmp_path):
    data = json.loads((SQUAD_DIR / "train-v1.1.json").read_text(encoding="utf-8"))
    del data["data"][1]["paragraphs"][0]["qas"][0]["answers"]
    bad = tmp_path / "train-v1.1.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    task = MlqaTask()
    with pytest.raises(MmadaptError, match=r"article 1 \('Bridges'\), paragraph 0, question 'sq-train-3': "
                                           r"missing field\(s\) answers"):
        task.train_examples(task_options(task, train_file=str(bad)))


def test_duplicate_evaluation_ids_are_refused(tmp_path):
    shutil.copy(PAWSX_DIR / "de" / "dev_2k.tsv", tmp_path / "dev_2k.tsv")
    with open(tmp_path / "dev_2k.tsv", "a", encoding="utf-8") as f:
        f.write("2\tx\ty\t0\n")
    with pytest.raises(MmadaptError, match="id '2' occurs more than once"):
        PawsxTask().read_gold(tmp_path / "dev_2k.tsv", "de")


def test_task_options_are_checked_like_the_rest_of_a_recipe():
    from dataclasses import dataclass

    from mmadapt.plugin_system.manager import build_plugins
    from mmadapt.recipe.validation import Checker, merge_option_classes
    from mmadapt_plugins.tasks import mlqa, pawsx, xnli

    @dataclass
    class TaskSection:
        name: str = "xnli"

    plugins = build_plugins(extra=[xnli, pawsx, mlqa], load_entry_points=False)
    assert plugins.tasks.names() == ["mlqa", "pawsx", "squad", "xnli"]
    for name in plugins.tasks.names():
        section = merge_option_classes(TaskSection, plugins.tasks.get(name).Options, "TaskSection")
        checker = Checker(plugins)
        checker.check_section({"name": name, "max_length": 64, "languages": ["de"], "dev_fil": "x",
                               "max_train_examples": "all"}, section, "task")
        assert [path for path, _ in checker.problems] == ["task.dev_fil", "task.max_train_examples"]
        assert "did you mean 'dev_file'?" in checker.problems[0][1]
