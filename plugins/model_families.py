"""Built-in model families: XLM-R and RoBERTa masked language models."""
from __future__ import annotations

import os
from typing import Any

from mmadapt.errors import MmadaptError
from mmadapt.hookspecs import hookimpl
from mmadapt.interfaces import ModelFamily


class RobertaLikeFamily(ModelFamily):
    """RoBERTa-architecture MLMs (`*ForMaskedLM` with `.roberta` body and `.lm_head`)."""

    config_class_name = "RobertaConfig"
    model_class_name = "RobertaForMaskedLM"

    def _classes(self) -> tuple[Any, Any]:
        import transformers

        return getattr(transformers, self.config_class_name), getattr(transformers, self.model_class_name)

    def build_from_config(self, config_overrides: dict[str, Any], vocab_size: int, tokenizer: Any) -> Any:
        config_cls, model_cls = self._classes()
        settings = dict(config_overrides)
        settings.setdefault("vocab_size", vocab_size)
        if settings["vocab_size"] != vocab_size:
            raise MmadaptError(f"model.config.vocab_size is {settings['vocab_size']} but the tokenizer has "
                               f"{vocab_size} tokens; drop model.config.vocab_size to use the tokenizer's")
        settings.setdefault("pad_token_id", tokenizer.pad_token_id)
        settings.setdefault("bos_token_id", tokenizer.bos_token_id)
        settings.setdefault("eos_token_id", tokenizer.eos_token_id)
        try:
            config = config_cls(**settings)
        except (TypeError, ValueError) as exc:
            raise MmadaptError(f"model.config: {exc}") from exc
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


class XLMRobertaFamily(RobertaLikeFamily):
    description = "XLM-R (XLMRobertaForMaskedLM): xlm-roberta-base / -large and from-config sizes"
    config_class_name = "XLMRobertaConfig"
    model_class_name = "XLMRobertaForMaskedLM"


class RobertaFamily(RobertaLikeFamily):
    description = "RoBERTa (RobertaForMaskedLM): roberta-base / -large and from-config sizes"


def _offline_load(loader: Any, name_or_path: str, what: str) -> Any:
    """Load from a local directory or the local hub cache only; never download."""
    is_dir = os.path.isdir(name_or_path)
    try:
        return loader(name_or_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        if is_dir:
            raise MmadaptError(f"cannot load the {what} from directory {name_or_path}: {exc}") from exc
        raise MmadaptError(
            f"{what} {name_or_path!r} is not a local directory and is not in the local Hugging Face cache; "
            "mmadapt never downloads. On a machine with internet run `huggingface-cli download "
            f"{name_or_path}` (or save_pretrained to a directory) and set model.pretrained to that directory"
        ) from exc


@hookimpl
def mmadapt_register_model_families(registry):
    registry.add("xlmr", XLMRobertaFamily())
    registry.add("roberta", RobertaFamily())
