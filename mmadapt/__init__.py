"""mmadapt: mini-model adaptation of pretrained masked language models to new languages."""

__version__ = "0.1.0"
