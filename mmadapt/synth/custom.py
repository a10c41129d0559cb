"""New languages from settings: a recipe's `data.synth.languages` entry as a `LanguageSpec`.

Besides built-in codes, `languages` takes mappings such as::

    {code: x1, script: hebrew, order: {clause: SOV, adjective_after_noun: true},
     morphology: prefix, synonyms: 0.3}

`code` and `script` are required; `order` holds `WordOrder` fields (the rest stay the
source's), `morphology` is suffix (default) or prefix, `synonyms` the share of content
lemmas with a second stem, `description` an optional one-line description (one is written
from the settings otherwise). Unknown keys and bad values raise a ValueError naming them.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, Mapping

from mmadapt.errors import did_you_mean
from mmadapt.synth.languages import BUILTIN_LANGUAGES, CLAUSE_ORDERS, SOURCE, LanguageSpec, WordOrder
from mmadapt.synth.lexicon import SCRIPTS

LANGUAGE_KEYS = ("code", "script", "order", "morphology", "synonyms", "description")
ORDER_KEYS = tuple(f.name for f in fields(WordOrder))
CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]*")
# How `describe_settings` words each yes/no `WordOrder` field that differs from the source.
ORDER_PHRASES = {
    "adjective_after_noun": "adjective after noun",
    "postpositions": "postpositions",
    "negation_after_verb": "negation after the verb",
    "relative_before_noun": "relative clause before the noun",
    "cause_first": "'because' clause first",
    "determiner_after_noun": "determiner after the noun",
}


def spec_from_settings(settings: Mapping[str, Any]) -> LanguageSpec:
    """The `LanguageSpec` a `languages` mapping describes, checked (see the module docstring)."""
    code = settings.get("code")
    where = f"synthetic language {code!r}" if code is not None else "synthetic language settings"
    _check_keys(where, settings, LANGUAGE_KEYS)
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        raise ValueError(f"{where}: 'code' must be lower-case letters, digits and '_' (it names files); got {code!r}")
    if code == SOURCE or code in BUILTIN_LANGUAGES:
        raise ValueError(f"{where}: {code!r} is a built-in language; give the new language another code")
    script = settings.get("script")
    if script not in SCRIPTS:
        raise ValueError(f"{where}: 'script' must be one of {', '.join(SCRIPTS)}; got {script!r}"
                         f"{did_you_mean(str(script), SCRIPTS)}")
    order = _word_order(where, settings.get("order") or {})
    morphology = settings.get("morphology", "suffix")
    synonyms = settings.get("synonyms", 0.0)
    description = settings.get("description") or describe_settings(script, order, morphology, synonyms)
    try:
        return LanguageSpec(code, str(description), script, order, morphology, synonyms)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_keys(where: str, settings: Mapping, allowed: tuple[str, ...]) -> None:
    if not isinstance(settings, Mapping):
        raise ValueError(f"{where}: expected a mapping of {', '.join(allowed)}; got {settings!r}")
    for key in settings:
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}{did_you_mean(str(key), allowed)}; "
                             f"allowed keys: {', '.join(allowed)}")


def _word_order(where: str, order: Mapping[str, Any]) -> WordOrder:
    _check_keys(f"{where}, order", order, ORDER_KEYS)
    values = dict(order)
    clause = values.get("clause", "SVO")
    if not isinstance(clause, str) or clause.upper() not in CLAUSE_ORDERS:
        raise ValueError(f"{where}, order: 'clause' must be one of {', '.join(CLAUSE_ORDERS)}; got {clause!r}")
    values["clause"] = clause.upper()
    for key, value in values.items():
        if key != "clause" and not isinstance(value, bool):
            raise ValueError(f"{where}, order: {key!r} must be true or false; got {value!r}")
    return WordOrder(**values)


def describe_settings(script: str, order: WordOrder, morphology: str, synonyms: float) -> str:
    """A one-line description of a language from its settings."""
    changes = [order.clause] if order.clause != WordOrder().clause else []
    changes += [text for key, text in ORDER_PHRASES.items() if getattr(order, key)]
    parts = [f"custom: {script}-script words", ", ".join(changes) if changes else "the source order"]
    if morphology == "prefix":
        parts.append("prefixing morphology (affixes before the stem)")
    if synonyms:
        parts.append(f"{synonyms:.0%} of the content words with a synonym")
    return "; ".join(parts)
