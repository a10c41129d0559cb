"""The cross-lingual pipeline: pretrain -> tokenizer -> adapt -> finetune -> transfer -> report."""
