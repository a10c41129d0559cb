"""Models and vocabularies: mini-model layout, embedding surgery, export, tokenizer training, language packs."""
