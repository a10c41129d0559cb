"""Built-in model families: XLM-R and RoBERTa masked language models."""
from __future__ import annotations

import copy as _copy  # `copy` is also a parameter name below
import os
from typing import Any

from mmadapt.api import MmadaptError, ModelFamily, hookimpl


class RobertaLikeFamily(ModelFamily):
    """RoBERTa-architecture MLMs (`*ForMaskedLM` with `.roberta` body and `.lm_head`)."""

    config_class_name = "RobertaConfig"
    model_class_name = "RobertaForMaskedLM"
    position_offset = 2

    def max_positions(self, config: Any) -> int | None:
        value = config.get("max_position_embeddings")
        if value is None:  # the config class's default
            import inspect

            value = inspect.signature(self._classes()[0].__init__).parameters["max_position_embeddings"].default
        return int(value) if isinstance(value, int) else None

    def _classes(self) -> tuple[Any, Any]:
        import transformers

        return getattr(transformers, self.config_class_name), getattr(transformers, self.model_class_name)

    def build_config(self, config_overrides: dict[str, Any], vocab_size: int, **extra: Any) -> Any:
        config_cls, _ = self._classes()
        settings = dict(config_overrides)
        settings.setdefault("vocab_size", vocab_size)
        if settings["vocab_size"] != vocab_size:
            raise MmadaptError(f"model.config.vocab_size is {settings['vocab_size']} but the tokenizer has "
                               f"{vocab_size} tokens; drop model.config.vocab_size to use the tokenizer's")
        for key, value in extra.items():
            settings.setdefault(key, value)
        try:
            return config_cls(**settings)
        except (TypeError, ValueError) as exc:
            raise MmadaptError(f"model.config: {exc}") from exc

    def build_from_config(self, config_overrides: dict[str, Any], vocab_size: int, tokenizer: Any) -> Any:
        _, model_cls = self._classes()
        config = self.build_config(config_overrides, vocab_size, pad_token_id=tokenizer.pad_token_id,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        return model_cls(config)

    def load_pretrained(self, name_or_path: str) -> Any:
        _, model_cls = self._classes()
        return _offline_load(model_cls.from_pretrained, name_or_path, "model")

    def load_tokenizer(self, name_or_path: str) -> Any:
        from transformers import AutoTokenizer

        return _offline_load(AutoTokenizer.from_pretrained, name_or_path, "tokenizer")

    def embeddings(self, model: Any) -> Any:
        return model.base_model.embeddings

    def layers(self, model: Any) -> Any:
        return model.base_model.encoder.layer

    def lm_head(self, model: Any) -> Any:
        return model.lm_head

    def new_layer(self, model: Any, copy_of: int | None = None) -> Any:
        layers = self.layers(model)
        if copy_of is not None:
            layer = _copy.deepcopy(layers[copy_of])
        else:
            layer = type(layers[0])(model.config)
            layer.apply(model._init_weights)  # the model's own init (normal(0, initializer_range), ...)
        reference = next(layers[0].parameters())
        return layer.to(device=reference.device, dtype=reference.dtype)

    def new_lm_head(self, model: Any, copy: bool = False) -> Any:
        import torch

        word = self.word_embeddings(model).weight
        if copy:
            # The memo keeps the tied decoder weight shared instead of copying the vocabulary matrix.
            head = _copy.deepcopy(self.lm_head(model), memo={id(word): word})
        else:
            # Built without the decoder weight (a vocab x hidden matrix that is about to be replaced by the
            # tied embeddings), then initialised like the model's own head.
            with torch.device("meta"):
                head = type(self.lm_head(model))(model.config)
            head.decoder.register_parameter("weight", None)
            head.to_empty(device=word.device)
            head.apply(model._init_weights)
            head.to(dtype=word.dtype)
            head.decoder.weight = word
        head.decoder.bias = head.bias  # as transformers ties them
        return head

    def assemble(self, big_model: Any, layer_modules: list, head: Any) -> Any:
        import torch

        word = self.word_embeddings(big_model).weight
        if head.decoder.weight is not word:
            raise ValueError("assemble: the head's decoder must be tied to the big model's word embeddings")
        config = _copy.deepcopy(big_model.config)
        config.num_hidden_layers = len(layer_modules)
        with torch.device("meta"):  # every part is replaced below: allocate nothing
            model = type(big_model)(config)
        model.base_model.embeddings = self.embeddings(big_model)
        model.base_model.encoder.layer = torch.nn.ModuleList(layer_modules)
        model.lm_head = head
        left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if left:
            raise ValueError(f"assemble: {type(big_model).__name__} has parts not taken from the big model: {left}")
        return model


class XLMRobertaFamily(RobertaLikeFamily):
    description = "XLM-R (XLMRobertaForMaskedLM): xlm-roberta-base / -large and from-config sizes"
    config_class_name = "XLMRobertaConfig"
    model_class_name = "XLMRobertaForMaskedLM"


class RobertaFamily(RobertaLikeFamily):
    description = "RoBERTa (RobertaForMaskedLM): roberta-base / -large and from-config sizes"


def _offline_load(loader: Any, name_or_path: str, what: str) -> Any:
    """Load from a local directory or the local hub cache only; never download."""
    from safetensors import SafetensorError

    is_dir = os.path.isdir(name_or_path)
    try:
        return loader(name_or_path, local_files_only=True)
    except SafetensorError as exc:
        raise MmadaptError(f"cannot load the {what} from {name_or_path}: its safetensors weights are damaged or "
                           f"incomplete ({str(exc).splitlines()[0]}); write or copy them again") from exc
    except (OSError, ValueError) as exc:
        if is_dir:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise MmadaptError(f"cannot load the {what} from directory {name_or_path}: {reason}") from exc
        raise MmadaptError(
            f"{what} {name_or_path!r} is not a local directory and is not in the local Hugging Face cache; "
            "mmadapt never downloads. On a machine with internet run `huggingface-cli download "
            f"{name_or_path}` (or save_pretrained to a directory) and set model.pretrained to that directory"
        ) from exc


@hookimpl
def mmadapt_register_model_families(registry):
    registry.add("xlmr", XLMRobertaFamily())
    registry.add("roberta", RobertaFamily())
