"""Official metrics: MLQA / SQuAD exact match and F1 by each normalisation rule, and accuracy."""
from __future__ import annotations

import pytest

from mmadapt.errors import MmadaptError
from mmadapt_plugins.tasks.mlqa import MlqaTask, SquadTask
from mmadapt_plugins.tasks.pawsx import PawsxTask
from mmadapt_plugins.tasks.qa_metrics import (SQUAD_RULES, exact_match, f1_score, mixed_segmentation, mlqa_rules,
                                              normalize_answer, qa_scores, unicode_punctuation)
from mmadapt_plugins.tasks.xnli import XnliTask


def em_f1(prediction, gold, language):
    rules = mlqa_rules(language)
    return exact_match(prediction, gold, rules), f1_score(prediction, gold, rules)


def test_english_articles_are_dropped():
    # "the swiss alps" -> "swiss alps" on both sides
    assert em_f1("Swiss Alps", "the Swiss Alps", "en") == (1.0, 1.0)
    assert normalize_answer("An apple, a pear and THE plum", mlqa_rules("en")) == "apple pear and plum"


def test_german_articles_are_dropped_only_for_german():
    # de: gold "in den Schweizer Alpen" -> [in, schweizer, alpen]; prediction [schweizer, alpen]
    # overlap 2, precision 2/2, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    assert em_f1("Schweizer Alpen", "in den Schweizer Alpen", "de") == (0.0, pytest.approx(0.8))
    # en keeps "den": gold [in, den, schweizer, alpen], recall 2/4, F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert em_f1("Schweizer Alpen", "in den Schweizer Alpen", "en") == (0.0, pytest.approx(2 / 3))
    assert em_f1("Alpen", "die Alpen", "de") == (1.0, 1.0)
    assert em_f1("Zwei Häuser", "eines zwei Häuser", "de") == (1.0, 1.0)


def test_spanish_vietnamese_and_arabic_articles():
    assert em_f1("río Ebro", "el río Ebro", "es") == (1.0, 1.0)
    assert em_f1("Los Andes", "Andes", "es") == (1.0, 1.0)
    assert em_f1("nhà", "cái nhà", "vi") == (1.0, 1.0)
    # MLQA removes every "ال", also inside a word: "الكتاب" -> " كتاب" -> "كتاب"
    assert normalize_answer("الكتاب", mlqa_rules("ar")) == "كتاب"
    assert em_f1("كتاب", "الكتاب", "ar") == (1.0, 1.0)
    assert em_f1("كتاب", "الكتاب", "en") == (0.0, 0.0)


def test_hindi_and_chinese_keep_every_word():
    assert normalize_answer("the a an", mlqa_rules("hi")) == "the a an"
    assert normalize_answer("the 北京", mlqa_rules("zh")) == "the 北 京"


def test_unicode_punctuation_is_removed_by_mlqa_but_not_by_squad():
    assert em_f1("«Berlin»", "Berlin", "de") == (1.0, 1.0)
    assert em_f1("Berlin—Paris", "BerlinParis", "en") == (1.0, 1.0)  # "—" is punctuation (Pd), removed, not split
    assert em_f1("“东海”。", "东海", "zh") == (1.0, 1.0)
    # SQuAD v1.1 removes ASCII punctuation only: "«berlin»" != "berlin", no shared token
    assert exact_match("«Berlin»", "Berlin", SQUAD_RULES) == 0.0
    assert f1_score("«Berlin»", "Berlin", SQUAD_RULES) == 0.0
    assert exact_match("Berlin!", "Berlin", SQUAD_RULES) == 1.0
    punctuation = unicode_punctuation()
    assert {"«", "。", "“", "、", "¿", "—", "!"} <= punctuation and "a" not in punctuation and "北" not in punctuation


def test_chinese_is_scored_per_character():
    assert mixed_segmentation("约6300公里，到 east china", unicode_punctuation()) == \
        ["约", "6300", "公", "里", "，", "到", "east", "china"]
    # gold "约6300公里" -> [约, 6300, 公, 里]; prediction "6300公里" -> [6300, 公, 里]
    # overlap 3, precision 3/3, recall 3/4, F1 = 2 * 0.75 / 1.75 = 6/7
    assert em_f1("6300公里", "约6300公里", "zh") == (0.0, pytest.approx(6 / 7))
    # whitespace tokenisation sees one different token on each side: F1 0
    assert em_f1("6300公里", "约6300公里", "en") == (0.0, 0.0)
    # "长江大桥" vs "长江": overlap 2 of 4 predicted, 2 of 2 gold: F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert em_f1("长江大桥", "长江", "zh") == (0.0, pytest.approx(2 / 3))


def test_the_best_gold_answer_counts():
    rules = mlqa_rules("en")
    # golds: "Marin County" F1 = 2 * 1 * 1/2 / 1.5 = 2/3; "County of Marin" F1 = 2 * 1 * 1/3 / (4/3) = 1/2
    scores = qa_scores({"q": ["Marin County", "County of Marin"]}, {"q": "Marin"}, rules)
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(2 / 3)}
    assert qa_scores({"q": ["the Red Planet", "planet"]}, {"q": "a red planet."}, rules) == \
        {"exact_match": 1.0, "f1": 1.0}


def test_an_empty_prediction_scores_zero_and_an_unanswered_question_counts():
    rules = mlqa_rules("de")
    assert em_f1("", "Berlin", "de") == (0.0, 0.0)
    # the official scripts' quirk: a gold that normalises to "" gives EM 1 but F1 0 for an empty prediction
    assert em_f1("", "der", "de") == (1.0, 0.0)
    golds = {"q1": ["Berlin"], "q2": ["in den Schweizer Alpen"], "q3": ["Nordsee"]}
    predictions = {"q1": "Berlin", "q2": "Schweizer Alpen"}  # q3 unanswered
    # EM = (1 + 0 + 0) / 3; F1 = (1 + 0.8 + 0) / 3 = 0.6
    assert qa_scores(golds, predictions, rules) == {"exact_match": pytest.approx(1 / 3), "f1": pytest.approx(0.6)}


def test_mlqa_scores_other_languages_with_neutral_rules_and_says_so(caplog):
    rules = mlqa_rules("xx")
    assert "only for ar, de, en, es, hi, vi, zh, not 'xx'" in caplog.text
    assert rules.articles is None and not rules.mixed_segmentation
    # punctuation (Unicode too) and case go, words stay: "the" is not an article here
    assert normalize_answer("The «Dog»!", rules) == "the dog"


def qa_example(qid, *answers):
    return {"id": qid, "title": "", "context": " ".join(answers), "question": "?",
            "answers": [{"text": a, "answer_start": 0} for a in answers]}


def test_task_scores_use_their_own_rules():
    examples = [qa_example("q1", "«Berlin»"), qa_example("q2", "der Rhein")]
    predictions = {"q1": "Berlin", "q2": "Rhein"}
    # MLQA de: both exact. SQuAD: q1 differs ("«berlin»" vs "berlin"), q2 F1 = 2 * 1 * 1/2 / 1.5 = 2/3
    assert MlqaTask().score(examples, predictions, "de") == {"exact_match": 1.0, "f1": 1.0}
    assert SquadTask().score(examples, predictions, "en") == \
        {"exact_match": 0.0, "f1": pytest.approx((0 + 2 / 3) / 2)}
    assert MlqaTask.official_scale == 100.0 and MlqaTask.metric_names[0] == "f1"


def pairs(*labels):
    return [{"id": str(i), "sentence1": "a", "sentence2": "b", "label": label} for i, label in enumerate(labels)]


def test_accuracy_counts_a_missing_prediction_as_wrong():
    examples = pairs("entailment", "neutral", "contradiction", "neutral")
    # right, right (class id 1 = neutral), wrong, missing: 2 / 4
    predictions = {"0": "entailment", "1": 1, "2": "neutral", "99": "neutral"}
    assert XnliTask().score(examples, predictions, "en") == {"accuracy": 0.5}
    # PAWS-X labels are 0/1; text "1" is the label 1. Right, wrong, right: 2 / 3
    assert PawsxTask().score(pairs(1, 0, 0), {"0": "1", "1": 1, "2": 0}, "de") == {"accuracy": pytest.approx(2 / 3)}
    assert XnliTask.official_scale == 1.0


def test_an_unknown_predicted_label_is_an_error():
    with pytest.raises(MmadaptError, match="prediction for id '0': unknown label 'maybe'"):
        XnliTask().score(pairs("neutral"), {"0": "maybe"}, "en")
