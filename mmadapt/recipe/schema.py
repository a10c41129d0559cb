"""The typed recipe schema. Defaults here are the first layer of every resolved recipe.

Plugin sections (`model`, `strategy`) hold only their selector keys here; the chosen
plugin's `Options` dataclass supplies the rest (see `mmadapt.plugin_system.interfaces`).
"""
from dataclasses import dataclass, field
from typing import Any, Optional

PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("linear", "cosine", "constant")
NONFINITE = ("stop", "skip")


@dataclass
class SentencePieceSettings:
    """How to train a SentencePiece vocabulary."""

    vocab_size: int = field(default=8000, metadata={"min": 1})
    model_type: str = field(default="unigram", metadata={"choices": ("unigram", "bpe", "char", "word")})
    character_coverage: float = field(default=1.0, metadata={"gt": 0, "max": 1})
    #: lines sampled (shuffled, with the recipe's seed) from the corpus to train on, as XLM-R sampled a
    #: few million sentences per language; a corpus with fewer lines is used whole
    input_sentence_size: int = field(default=2_000_000, metadata={"min": 1})
    #: ... and at most this many bytes of them (UTF-8, a newline each), so that long lines (a paragraph
    #: per line) keep tokenizer training in minutes and under a few GB; a sample within it is unchanged
    input_bytes: int = field(default=50_000_000, metadata={"min": 1})
    #: SentencePiece's threads; 0: every core this process may use. The vocabulary is the same for
    #: the same corpus, seed and thread count (set it to get the same vocabulary on other machines)
    num_threads: int = field(default=0, metadata={"min": 0})


@dataclass
class ModelSection:
    """`model:` which family, and where its weights and tokenizer come from."""

    family: str = "xlmr"
    #: local `save_pretrained` directory, or a hub name already in the local cache
    pretrained: Optional[str] = None
    #: architecture overrides when building from scratch (num_hidden_layers, hidden_size, ...)
    config: dict[str, Any] = field(default_factory=dict)
    #: tokenizer directory; defaults to `pretrained`
    tokenizer: Optional[str] = None
    #: with neither `tokenizer` nor `pretrained`: train one on `data.train` with these settings
    train_tokenizer: SentencePieceSettings = field(default_factory=SentencePieceSettings)


@dataclass
class DataSection:
    """`data:` MLM corpora and how they are turned into blocks."""

    #: sources: text files (one document per line), .jsonl files, `datasets` dirs saved to
    #: disk, `hf:NAME[:CONFIG][:SPLIT]` for a dataset in the local cache, or `synth:LANG`
    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    #: field holding the text in jsonl rows and datasets
    text_field: str = "text"
    #: tokens per training sequence; at most the model's positions (XLM-R-style models: 2 fewer)
    block_size: int = field(default=128, metadata={"min": 1})
    mlm_probability: float = field(default=0.15, metadata={"gt": 0, "lt": 1})
    #: where tokenized blocks are cached; keyed on a fingerprint of data, tokenizer, settings
    cache_dir: Optional[str] = None
    num_workers: int = field(default=0, metadata={"min": 0})
    #: processes that tokenise a corpus into cached blocks (`mmadapt data prepare`, or a run's first
    #: read of it); 0: one per core. The blocks are the same for any count.
    prepare_processes: int = field(default=0, metadata={"min": 0})
    #: settings of the built-in synthetic benchmark, used by `synth:LANG` sources
    synth: dict[str, Any] = field(default_factory=lambda: {"seed": 0})


@dataclass
class TrainSection:
    """`train:` optimisation, evaluation, logging and checkpoints."""

    max_steps: int = field(default=1000, metadata={"min": 0})
    micro_batch_size: int = field(default=8, metadata={"min": 1})
    grad_accum: int = field(default=1, metadata={"min": 1})
    lr: float = field(default=5e-4, metadata={"gt": 0})
    weight_decay: float = field(default=0.01, metadata={"min": 0})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98], metadata={"items": {"min": 0, "lt": 1}})
    eps: float = field(default=1e-6, metadata={"gt": 0})
    warmup_steps: int = field(default=0, metadata={"min": 0})
    schedule: str = field(default="linear", metadata={"choices": SCHEDULES})
    min_lr_ratio: float = field(default=0.0, metadata={"min": 0, "max": 1})
    #: gradient clipping (0: none)
    max_grad_norm: float = field(default=1.0, metadata={"min": 0})
    log_every: int = field(default=10, metadata={"min": 0})
    eval_every: int = field(default=0, metadata={"min": 0})
    eval_batches: int = field(default=20, metadata={"min": 1})
    save_every: int = field(default=0, metadata={"min": 0})
    #: the newest this many checkpoints are kept (0: all)
    keep_checkpoints: int = field(default=2, metadata={"min": 0})
    #: `auto` continues from the newest complete checkpoint, `never` starts fresh, or a path
    resume: str = "auto"
    progress_bar: bool = True
    #: a step whose loss or gradient norm is NaN or infinite: `stop` the stage (naming the step and the
    #: last good checkpoint), or `skip` it (its micro-batches add no gradient), at most `max_nonfinite_skips`
    nonfinite: str = field(default="stop", metadata={"choices": NONFINITE})
    max_nonfinite_skips: int = field(default=10, metadata={"min": 0})


@dataclass
class StrategySection:
    """`strategy:` the training strategy plugin and its options."""

    name: str = "full"
    #: in a `strategies:` list: take the big model and fine-tuned task models of this earlier
    #: strategy instead of pretraining/fine-tuning a big model again (e.g. minipost reuses full)
    reuse: Optional[str] = None
    #: in a `strategies:` list: start this strategy's own pretraining from the big model an
    #: earlier strategy pretrained (e.g. minijoint continues from full's model); unlike `reuse`,
    #: this strategy still pretrains and fine-tunes its own big model
    init_from: Optional[str] = None
    #: in a `strategies:` list: overrides of the top-level `train:` for this strategy's pretrain
    #: stage (e.g. a short continued pretraining for a strategy that uses `init_from`)
    train: dict[str, Any] = field(default_factory=dict, metadata={"partial_of": TrainSection})
    #: in a `strategies:` list: overrides of `adapt.train` for this strategy's adapt stage (a
    #: mini-model may take more, cheaper steps than `full`: equal accuracy for less compute)
    adapt_train: dict[str, Any] = field(default_factory=dict, metadata={"partial_of": TrainSection})


@dataclass
class DeepSpeedSection:
    """`deepspeed:` the JSON config; `"auto"` fields in it are filled from the recipe."""

    #: a shipped config by name (zero0, zero1, zero2, zero3, zero3_offload) or the path of a JSON file
    config: str = "zero2"
    #: merged over the JSON file (dotted keys welcome on the command line)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the filled-in JSON, computed when the recipe is resolved (never set it by hand)
    resolved: dict[str, Any] = field(default_factory=dict, metadata={"computed": True})


@dataclass
class DistributedSection:
    """`distributed:` how the processes of a job wait for each other."""

    #: a collective (all-reduce, barrier, broadcast) that waits longer than this fails the job instead of
    #: hanging: a lost node or a dead rank ends the run after this many minutes at most
    timeout_minutes: float = field(default=30.0, metadata={"gt": 0})


STAGES = ("pretrain", "tokenizer", "adapt", "finetune", "transfer")


@dataclass
class LanguageSection:
    """`languages.<code>:` a new language's MLM text."""

    corpus: list[str] = field(default_factory=list)
    eval_corpus: list[str] = field(default_factory=list)
    #: a bilingual dictionary (MUSE layout: one `source_word target_word` pair per line) for the
    #: report's `alignment_at_1` diagnostic only; `synth:dictionaries/src-<code>.txt` for synthetic languages
    dictionary: Optional[str] = None
    #: the bilingual dictionary (same layout) an initialiser learns from (`adapt.init.name: dictionary`);
    #: empty: `dictionary`. Give a part of the words here to keep `alignment_at_1` measured on unseen pairs
    init_dictionary: Optional[str] = None


@dataclass
class EmbeddingInitSection:
    """`adapt.init:` how new word embeddings start (a plugin: random, overlap, ...)."""

    name: str = "random"


@dataclass
class LayerRuleSection:
    """A mini-model strategy's `layer_rule:` which big-model layers its mini-model keeps (a plugin) and its options."""

    name: str = "first_k"


@dataclass
class TaskSection:
    """One entry of `tasks:` (a plugin: xnli, pawsx, mlqa, ...) and its options."""

    name: str = "xnli"
    #: the languages `transfer` evaluates this task on, among the adapted ones (empty: every adapted
    #: language); a task plugin may default it to its benchmark's languages
    languages: list[str] = field(default_factory=list)
    #: overrides of `finetune.train` for this task's fine-tuning (benchmarks differ in the epochs and
    #: learning rate they need, e.g. PAWS-X more epochs than XNLI)
    finetune_train: dict[str, Any] = field(default_factory=dict, metadata={"partial_of": TrainSection})


@dataclass
class AdaptRestartSection:
    """`adapt.restart:` a mini strategy's embeddings that, at `at_step`, answer the target test inputs no more like the
    source ones than `min_source_kappa` (Cohen's kappa; no target labels read) start again, once, from the initial
    embeddings with every big-model step (`adapt.big_model_steps`, `adapt.big_model_every`) on the adapt stage's
    whole micro-batch. The probe swaps them into the task's fine-tuned model, so the fine-tune runs before adapt."""

    #: the mini-model step at which the embeddings are probed (0: never)
    at_step: int = field(default=0, metadata={"min": 0})
    #: start again when the probe's `source_kappa` is below this
    min_source_kappa: float = 0.1
    #: the task whose fine-tuned model probes ("": the first task whose predictions compare across languages)
    task: str = ""


@dataclass
class AdaptSection:
    """`adapt:` training new-language embeddings over the (mini-)model, everything else frozen."""

    #: which of `languages` to adapt (empty: all of them)
    languages: list[str] = field(default_factory=list)
    init: EmbeddingInitSection = field(default_factory=EmbeddingInitSection,
                                       metadata={"plugin": ("embedding_inits", "name")})
    #: save the embeddings every this many steps (0: never); `transfer` evaluates each snapshot,
    #: giving the report's target-score-against-adapt-compute curve
    snapshot_every: int = field(default=0, metadata={"min": 0})
    #: for a strategy with a mini-model: this many first steps over the big model, then `train.max_steps`
    #: over the mini-model (the big model picks the solution; counted in the adapt compute). 0: none
    big_model_steps: int = field(default=0, metadata={"min": 0})
    #: the micro-batch size of those big-model steps (0: the adapt stage's own); a few sequences per
    #: step are enough to pick the solution, and each costs a big-model forward and backward
    big_model_micro_batch_size: int = field(default=0, metadata={"min": 0})
    #: for a strategy with a mini-model: after those first steps, every this many steps of the mini-model's
    #: `train.max_steps` runs over the big model instead (on `big_model_micro_batch_size` of the step's
    #: sequences), which holds the embeddings in the big model's solution while the mini-model refines them
    #: (counted in the adapt compute). 0: none; 1 would be the `full` strategy, and is refused
    big_model_every: int = field(default=0, metadata={"min": 0})
    #: for a strategy with a mini-model: read part-way whether the embeddings are transferring, and if not,
    #: start again with the big-model steps on the whole micro-batch (mmadapt.pipeline.stages.basin_probe)
    restart: AdaptRestartSection = field(default_factory=AdaptRestartSection)
    #: overrides of the top-level `train:` for this stage
    train: dict[str, Any] = field(default_factory=dict, metadata={"partial_of": TrainSection})


@dataclass
class FinetuneRestartSection:
    """`finetune.restart:` start a fine-tune again, with another seed, when its training loss has not left the
    loss it started at (a classifier stuck at chance: how long it stays there depends on the seed)."""

    #: the step at which the fine-tune is checked (0: never); a fine-tune of no more steps is not checked
    at_step: int = field(default=0, metadata={"min": 0})
    #: stuck when the mean training loss of the `window` steps up to `at_step` is at least this fraction of the
    #: mean of the first `window` steps
    loss_fraction: float = field(default=0.9, metadata={"gt": 0})
    window: int = field(default=50, metadata={"min": 1})
    #: restarts at most; restart n takes the seed `seed + 1000 * n`, and the last attempt runs to the end
    max_restarts: int = field(default=2, metadata={"min": 1})


@dataclass
class FinetuneSection:
    """`finetune:` the big model on the source-language task, embedding module frozen."""

    train: dict[str, Any] = field(default_factory=dict, metadata={"partial_of": TrainSection})
    restart: FinetuneRestartSection = field(default_factory=FinetuneRestartSection)


@dataclass
class TransferSection:
    """`transfer:` swap in each language's embeddings and evaluate zero-shot."""

    split: str = field(default="test", metadata={"choices": ("dev", "test")})
    #: evaluate the source language too
    source_language: str = "en"


@dataclass
class ReportSection:
    """`report:` how the run's report compares the strategies."""

    #: the strategy `compute_to_reach` measures the others against (its final target score and adapt compute)
    baseline: str = "full"


@dataclass
class Recipe:
    """A whole recipe."""

    output_dir: str = "runs/default"
    seed: int = 1234
    precision: str = field(default="fp32", metadata={"choices": PRECISIONS})
    model: ModelSection = field(default_factory=ModelSection, metadata={"plugin": ("model_families", "family")})
    strategy: StrategySection = field(default_factory=StrategySection, metadata={"plugin": ("strategies", "name")})
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    deepspeed: DeepSpeedSection = field(default_factory=DeepSpeedSection)
    distributed: DistributedSection = field(default_factory=DistributedSection)
    #: the pipeline stages to run, in pipeline order (`adapt` trains the tokenizers it needs and `transfer`
    #: fine-tunes the task models it needs, so `tokenizer` and `finetune` may be left out)
    stages: list[str] = field(default_factory=lambda: ["pretrain"], metadata={"item_choices": STAGES})
    #: run the pipeline once per strategy (overrides `strategy`); an entry may say `reuse: full`
    strategies: list[StrategySection] = field(default_factory=list, metadata={"plugin": ("strategies", "name")})
    #: new languages by code
    languages: dict[str, LanguageSection] = field(default_factory=dict)
    #: SentencePiece settings of the `tokenizer` stage (one vocabulary per new language)
    tokenizer: SentencePieceSettings = field(default_factory=SentencePieceSettings)
    tasks: list[TaskSection] = field(default_factory=list, metadata={"plugin": ("tasks", "name")})
    adapt: AdaptSection = field(default_factory=AdaptSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    transfer: TransferSection = field(default_factory=TransferSection)
    report: ReportSection = field(default_factory=ReportSection)
    #: values used only through ${variables.x} interpolation
    variables: dict[str, Any] = field(default_factory=dict)
    #: re-run a finished stage whose settings changed, replacing its outputs (`train --rerun`); without it
    #: such a stage is refused with what changed. Not saved in the run's recipe.yaml.
    rerun: bool = False


def adapted_languages(cfg: Any) -> list[str]:
    """The languages a recipe's adapt stage adapts: `adapt.languages`, else every entry of `languages:`."""
    return list(cfg.adapt.languages) or list(cfg.languages)
