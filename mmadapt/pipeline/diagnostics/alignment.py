"""The alignment diagnostic: do a new language's embeddings sit where their translations' do?

Transfer works when each new word's embedding stands in for its translation's source
embedding in the frozen body. When a bilingual dictionary is known (the synthetic
benchmark writes one per language; a user may give one as `languages.<code>.dictionary`),
`alignment_at_1` is the share of dictionary words whose new embedding has the source
embedding of its translation as its nearest neighbour (cosine) among every source row.
Only pairs where both words are single tokens of their tokenizers count; an oracle (the
source rows permuted through the dictionary) scores 1.0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch

from mmadapt.errors import MmadaptError
from mmadapt.pipeline.stages.snapshots import snapshots


def read_dictionary(path: Path) -> list[tuple[str, str]]:
    """(source word, target word) pairs of a MUSE-layout file: one `source target` pair per line."""
    pairs = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise MmadaptError(f"{path}:{lineno}: expected 'source_word target_word', got {line!r} "
                               "(a bilingual dictionary holds one space-separated pair per line)")
        pairs.append((parts[0], parts[1]))
    return pairs


def single_token_id(tokenizer: Any, word: str) -> int | None:
    """The id of `word` when the tokenizer keeps it as one token (None when it splits or is unknown)."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        return None
    return ids[0]


def token_pairs(pairs: Iterable[tuple[str, str]], source_tokenizer: Any, new_tokenizer: Any) -> list[tuple[int, int]]:
    """(new id, source id) for each dictionary pair whose two words are single tokens, first pair per new id."""
    out, seen = [], set()
    for source_word, target_word in pairs:
        source_id, new_id = single_token_id(source_tokenizer, source_word), single_token_id(new_tokenizer, target_word)
        if source_id is not None and new_id is not None and new_id not in seen:
            seen.add(new_id)
            out.append((new_id, source_id))
    return out


def alignment_at_1(new_weight: torch.Tensor, source_weight: torch.Tensor, pairs: list[tuple[int, int]]) -> float | None:
    """Share of `pairs` (new id, source id) whose new row's cosine nearest source row is the pair's source row."""
    if not pairs:
        return None
    new_ids = torch.tensor([n for n, _ in pairs])
    gold = torch.tensor([s for _, s in pairs])
    queries = torch.nn.functional.normalize(new_weight.float()[new_ids], dim=1)
    keys = torch.nn.functional.normalize(source_weight.float(), dim=1)
    nearest = (queries @ keys.T).argmax(dim=1)
    return float((nearest == gold).float().mean())


def language_alignment(ctx: Any, language: str, adapted: Any, model_dir: Path) -> dict[str, Any]:
    """`alignment_at_1` of a language's final embeddings and of each adapt snapshot ({} without a dictionary).

    `adapted` is the adapt stage's `AdaptOutputs`, `model_dir` the model its embeddings were trained
    over (whose input embeddings are the source ones). Returns `alignment_at_1`,
    `alignment_pairs` (dictionary pairs counted) and `alignment_by_step` ({step: alignment_at_1}).
    """
    from mmadapt.pipeline.building_blocks import model_family, text_sources
    from mmadapt.model.surgery import load_embeddings

    spec = ctx.cfg.languages[language].get("dictionary")
    if not spec:
        return {}
    family = model_family(ctx)
    pairs = token_pairs(read_dictionary(text_sources(ctx, [spec])[0].local_path()),
                        family.load_tokenizer(str(model_dir)), family.load_tokenizer(str(adapted.tokenizer)))
    source = family.load_pretrained(str(model_dir)).get_input_embeddings().weight.detach()
    by_step = {}
    if adapted.snapshots:
        by_step[0] = alignment_at_1(load_embeddings(adapted.initial_embeddings)[0], source, pairs)
        for step, _, path in snapshots(adapted.snapshots, adapted.fingerprint):
            by_step[step] = alignment_at_1(load_embeddings(path)[0], source, pairs)
    return {"alignment_at_1": alignment_at_1(load_embeddings(adapted.embeddings)[0], source, pairs),
            "alignment_pairs": len(pairs), "alignment_by_step": by_step}
