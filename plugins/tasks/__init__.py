"""Built-in downstream tasks: XNLI, PAWS-X, MLQA (and SQuAD v1.1 for English-only evaluation).

One module per benchmark (`xnli`, `pawsx`, `mlqa`), each registered through the `mmadapt`
entry-point group; the shared pieces are `sources` (official files and `datasets` copies),
`pair_classification`, `extractive_qa` and `qa_metrics` (the SQuAD/MLQA evaluation rules).
See docs/tasks.md for the layout the pipeline relies on and for writing a task plugin.
"""
