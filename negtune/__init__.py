"""negtune: fine-tune language models with negative examples."""

__version__ = "0.1.0"
