"""The base classes plugins implement. Each registered item names its recipe options.

Every plugin choice in a recipe is a section with a `name` (or `family` for models) and
the plugin's own options beside it; `Options` is the dataclass those options are checked
against, so a plugin extends the recipe schema just by declaring it.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

from mmadapt.data.sources import fill_language
from mmadapt.data.textfiles import read_jsonl
from mmadapt.errors import DataError, MmadaptError

if TYPE_CHECKING:  # heavy imports stay out of `mmadapt plugins` and validation
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mmadapt.pipeline.context import StageContext
    from mmadapt.training.flops import ModelShape, StrategyCompute


@dataclass
class NoOptions:
    """For plugins that take no options."""


class Named:
    """Common to every registered item: its options and a one-line description."""

    Options: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""


class ModelFamily(Named):
    """How to build or load an MLM of one architecture and reach its parts."""

    #: position embeddings the model uses before a sequence's first token (RoBERTa and XLM-R number
    #: positions from padding_idx + 1: 2); a block of `data.block_size` tokens needs block_size + this
    position_offset: ClassVar[int] = 0

    def max_positions(self, config: Mapping[str, Any]) -> int | None:
        """The model's position embeddings from its config (`config.json` or `model.config`); None: unknown.
        Read by the checks made before any work, so it must not build a model."""
        value = config.get("max_position_embeddings")
        return int(value) if isinstance(value, int) else None

    def max_sequence_length(self, config: Mapping[str, Any]) -> int | None:
        """The longest token sequence the model takes (its positions less `position_offset`); None: unknown.
        Saved tokenizers get it as `model_max_length`, so that `truncation=True` fits the model."""
        positions = self.max_positions(config)
        return None if positions is None else positions - self.position_offset

    def build_from_config(self, config_overrides: dict[str, Any], vocab_size: int, tokenizer: Any) -> "PreTrainedModel":
        """A randomly initialised MLM; `config_overrides` are the recipe's `model.config`."""
        raise NotImplementedError

    def build_config(self, config_overrides: dict[str, Any], vocab_size: int) -> Any:
        """The Hugging Face config `build_from_config` would use (no weights are built)."""
        raise NotImplementedError

    def load_pretrained(self, name_or_path: str) -> "PreTrainedModel":
        """An MLM from a local `save_pretrained` directory or an already cached hub name."""
        raise NotImplementedError

    def load_tokenizer(self, name_or_path: str) -> "PreTrainedTokenizerBase":
        """The tokenizer saved with a model (local directory or cached hub name)."""
        raise NotImplementedError

    def word_embeddings(self, model: "PreTrainedModel") -> "torch.nn.Embedding":
        """The input word-embedding matrix (tied to the LM head's decoder)."""
        return model.get_input_embeddings()

    def embeddings(self, model: "PreTrainedModel") -> "torch.nn.Module":
        """The whole embedding module (word, position, type embeddings, LayerNorm)."""
        raise NotImplementedError

    def layers(self, model: "PreTrainedModel") -> "torch.nn.ModuleList":
        """The transformer layers, bottom first."""
        raise NotImplementedError

    def lm_head(self, model: "PreTrainedModel") -> "torch.nn.Module":
        """The MLM head (transform + decoder)."""
        raise NotImplementedError

    def new_layer(self, model: "PreTrainedModel", copy_of: int | None = None) -> "torch.nn.Module":
        """A transformer layer shaped like `model`'s: freshly initialised, or a copy of layer `copy_of`."""
        raise NotImplementedError

    def new_lm_head(self, model: "PreTrainedModel", copy: bool = False) -> "torch.nn.Module":
        """An MLM head for `model` whose decoder is tied to `model`'s word embeddings.

        Freshly initialised, or (`copy=True`) a copy of `model`'s own head; either way its
        transform and decoder bias are its own parameters.
        """
        raise NotImplementedError

    def assemble(self, big_model: "PreTrainedModel", layer_modules: list, head: "torch.nn.Module") -> "PreTrainedModel":
        """A model of `big_model`'s class with `len(layer_modules)` layers, sharing the given modules.

        It holds `big_model`'s own embedding module, `layer_modules` (bottom first) and `head`
        (whose decoder must be tied to the shared word embeddings), not copies, so training
        either model trains the other; `save_pretrained` of it loads with plain transformers.
        """
        raise NotImplementedError


class Strategy(Named):
    """A way to produce the model(s) new-language embeddings are trained over."""

    #: True when the pretrain stage only (continues to) train the big model it is given: such a
    #: strategy may then take a given big model as it is, with `reuse: <strategy>` or with
    #: `model.pretrained` and no pretrain stage (`full` does; a strategy that makes a mini-model does not)
    uses_pretrained_as_is: bool = False
    #: the option (e.g. "k") naming how many big-model layers the strategy's mini-model takes, which must be
    #: fewer than the big model has: a recipe asking for as many is refused before any work (None: no such option)
    mini_layers_option: str | None = None

    def pretrain(self, ctx: "StageContext") -> dict[str, Path]:
        """Run the pretraining stage into `ctx.stage_dir`; return the directories written."""
        raise NotImplementedError

    def predict_compute(self, options: Any, big: "ModelShape", seq_len: int, masked_fraction: float | None,
                        plugins: Any) -> "StrategyCompute | None":
        """What pretraining costs per token and which model `adapt` trains over, for `mmadapt compute`.

        `options` is the recipe's strategy section, `big` the big model's shape, `masked_fraction`
        the share of positions the MLM head computes logits at. None (the default): this
        strategy has no FLOP model, and `mmadapt compute` says so.
        """
        return None


class LayerRule(Named):
    """Chooses which big-model layers a mini-model takes."""

    def select(self, num_layers: int, k: int, options: Any) -> list[int]:
        """0-based indices of the `k` big-model layers the mini-model takes, bottom first.

        `options` is the recipe's layer-rule section (its `name` plus this rule's Options).
        """
        raise NotImplementedError


class Task(Named):
    """A downstream benchmark: data loading, head, features, prediction and its official metric.

    Examples are plain dicts with at least an `id`; what else they hold is the task's business
    (`sentence1`/`sentence2`/`label` for pair classification, `context`/`question`/`answers`
    for extractive QA). `options` is always the recipe's task section: the task's `name`
    plus the fields of this task's `Options` dataclass (file paths, languages, lengths).
    """

    #: metric names `score` returns, the primary one first (e.g. ("accuracy",), ("f1", "exact_match"))
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy",)
    #: what the benchmark's own evaluation script prints a fraction as (1.0, or 100.0 for SQuAD/MLQA)
    official_scale: ClassVar[float] = 1.0
    #: the suffix of the predictions file `write_predictions` writes (the official layout's)
    predictions_suffix: ClassVar[str] = "jsonl"
    #: True when an example id names the same example in every language (the evaluation sets are translations
    #: of one another) and predictions compare across languages (a label, not a span of text): the collapse
    #: check then measures how often a language's answers agree with the source language's (`source_agreement`)
    parallel_predictions: ClassVar[bool] = False
    #: the option (e.g. "max_length") holding how many tokens the task feeds the model per example: the core
    #: checks it against the model's positions before any work and predicts the fine-tune's compute from it
    #: (None: no such option; `mmadapt compute` then assumes `data.block_size`)
    sequence_length_option: ClassVar[str | None] = None
    #: the option (e.g. "train_language") naming the language of the training data, whose files the fine-tune's
    #: fingerprint digests (None: no such option; the training files are `data_files(options, "train", "")`)
    train_language_option: ClassVar[str | None] = None

    def train_examples(self, options: Any) -> list[dict]:
        """The source-language training set (e.g. MultiNLI, PAWS-X train.tsv, SQuAD v1.1)."""
        raise NotImplementedError

    def eval_examples(self, options: Any, language: str, split: str) -> list[dict]:
        """The `split` ("dev" or "test") examples of `language`."""
        raise NotImplementedError

    def option_value(self, options: Any, declared: str | None) -> Any:
        """The value of the option a `*_option` attribute declares (None when it declares none or it is unset)."""
        return None if declared is None else options.get(declared)

    def data_files(self, options: Any, split: str, language: str) -> list[str]:
        """The local files (or `save_to_disk` directories) that `train_examples` ("train") or
        `eval_examples` read for `split` and `language`: stage fingerprints hold their content, so
        a file edited in place re-runs the stages that read it. Default: the `<split>_file` option
        with `{language}` filled in; none when the data comes from the `datasets` cache."""
        spec = self.option_value(options, f"{split}_file")
        return [fill_language(str(spec), language)] if spec else []

    def build_model(self, family: ModelFamily, pretrained_dir: str) -> "PreTrainedModel":
        """The task model (e.g. *ForSequenceClassification) on the body of a `save_pretrained` MLM."""
        raise NotImplementedError

    def train_features(self, examples: list[dict], tokenizer: Any, options: Any) -> list[dict]:
        """Fixed-shape tensors per training feature, including the loss targets the model takes
        (`labels`, or `start_positions`/`end_positions`), ready for default collation."""
        raise NotImplementedError

    def predict(self, model: Any, examples: list[dict], tokenizer: Any, options: Any,
                device: "torch.device") -> dict[str, Any]:
        """Predictions keyed by example id, in the benchmark's predictions layout (a label, an answer)."""
        raise NotImplementedError

    def score(self, examples: list[dict], predictions: dict[str, Any], language: str) -> dict[str, float]:
        """The official metrics as fractions in [0, 1], computed as the benchmark's own script does."""
        raise NotImplementedError

    def read_gold(self, path: Path, language: str) -> list[dict]:
        """Gold examples of `language` from an official file (for `mmadapt score`). Default: none; `mmadapt score`
        then refuses the task in one line."""
        raise MmadaptError(f"{type(self).__name__} reads no official gold file, so `mmadapt score` cannot score it: "
                           "its plugin implements Task.read_gold(path, language) for that")

    def read_predictions(self, path: Path) -> dict[str, Any]:
        """A predictions file in the official layout (for `mmadapt score` and the report's agreement between
        strategies). Default: JSON lines ``{"id": .., "prediction": ..}``, as the default `write_predictions`
        writes them."""
        predictions: dict[str, Any] = {}
        for lineno, row in read_jsonl(Path(path)):
            if "id" not in row or "prediction" not in row:
                raise DataError(f'{path}:{lineno}: each line is {{"id": ..., "prediction": ...}}')
            if str(row["id"]) in predictions:
                raise DataError(f"{path}:{lineno}: a second prediction for id {row['id']!r}")
            predictions[str(row["id"])] = row["prediction"]
        return predictions

    def write_predictions(self, predictions: dict[str, Any], path: Path) -> None:
        """Write predictions in the layout `read_predictions` reads. Default: JSON lines
        ``{"id": .., "prediction": ..}``, in the order of `predictions`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for key, value in predictions.items():
                f.write(json.dumps({"id": key, "prediction": value}, ensure_ascii=False) + "\n")


def _no_documents() -> Iterator[str]:
    return iter(())


@dataclass
class InitInputs:
    """Everything an embedding initialiser gets, in one object, and where it books its cost.

    The two vocabularies, the (mini-)model's current word-embedding matrix `source_weight`, its Hugging
    Face `config`, the seeded `generator` to draw from, and `options` (the recipe's `adapt.init` section).
    `source_documents()` and `new_documents()` iterate the source language's corpus (`data.train`) and
    the new language's (`languages.<code>.corpus`), one document a string;
    `dictionary` holds the language's bilingual dictionary as (source word, new word) pairs
    (`languages.<code>.init_dictionary`, else `dictionary`; empty without one). An initialiser that reads
    any of them sets `reads_corpora = True`, so the adapt stage's fingerprint holds their content.
    `spend(flops)` books the arithmetic the initialiser did (static vectors, alignment): the adapt stage
    adds it, with the initialiser's measured seconds, to the language's adapt compute, at step 0 of its curve.
    """

    new_tokenizer: Any
    source_tokenizer: Any
    source_weight: "torch.Tensor"
    config: Any
    generator: "torch.Generator"
    options: Any
    language: str
    source_documents: Callable[[], Iterator[str]] = _no_documents
    new_documents: Callable[[], Iterator[str]] = _no_documents
    dictionary: list[tuple[str, str]] = field(default_factory=list)
    #: the FLOPs booked so far (`spend`)
    flops: int = 0
    #: what each booked part cost, by the name given to `spend`
    parts: dict[str, int] = field(default_factory=dict)

    def spend(self, flops: float, what: str) -> None:
        """Book `flops` (an analytic count) of the initialiser's own work, under the name `what`."""
        self.flops += int(round(flops))
        self.parts[what] = self.parts.get(what, 0) + int(round(flops))


class EmbeddingInit(Named):
    """How new-language word embeddings are initialised before training."""

    #: True: `initialise` reads the corpora or the dictionary of `inputs` (the adapt stage then re-runs
    #: when their content changes)
    reads_corpora: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """An initialiser written for the older seven-argument `initialise` fails when its module is
        imported (mmadapt names the plugin), not after pretraining, when the adapt stage first calls it."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("initialise")
        declared = list(inspect.signature(own).parameters) if own is not None else ["self", "inputs"]
        if len(declared) != 2:
            raise TypeError(f"{cls.__name__}.initialise({', '.join(declared[1:])}): an embedding initialiser takes "
                            "one argument, `inputs` (an InitInputs holding the vocabularies, source_weight, config, "
                            "generator, options, corpora and dictionary); write `def initialise(self, inputs)` and "
                            "read them from it (docs/plugins.md)")

    def initialise(self, inputs: InitInputs) -> "torch.Tensor":
        """A `[len(inputs.new_tokenizer), hidden]` float matrix of initial word embeddings, from what
        `inputs` holds (`InitInputs`: the vocabularies, the model's embeddings and config, the generator,
        the options, the corpora and dictionary it may learn from, and where it books its cost)."""
        raise NotImplementedError
