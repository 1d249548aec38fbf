"""Configuration of :class:`negtune.trainers.LikraTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from negtune.losses.likra import HEADS, MANIFEST  # noqa: F401  (the trainer's and the scorer's layout)


@dataclass
class LikraConfig(TrainingArguments):
    """Likra (Hamdan and Yuret 2025): a positive and a negative LoRA head on one base, each trained with the
    next-token loss on its own examples (:mod:`negtune.losses.likra`); answers are scored by
    log P+(a|q) - beta log P-(a|q) (:class:`negtune.evaluation.likra.LikraScorer`).

    The authors train the two heads in two runs; negtune trains them in one, every optimizer step training one
    head only (its micro-batches, gradient accumulation and every process included, hold that head's examples;
    the heads alternate), so each head's update, gradient clipping and Adam state are its own, as in two runs. ``max_steps`` counts the updates of
    both heads. Needs a LoRA config (``--use_peft``, ``--lora_r`` ...); their setting: r 8, alpha 8, the MLP
    projections, lr 1e-4 (Mistral-7B) / 1e-3 (Llama-3.2-3B), constant schedule, 1 epoch, batch 32.
    """

    method: str = field(default="likra", metadata={"help": "fixed: lets a recipe name its method"})
    beta: float = field(default=1.0, metadata={
        "help": "weight of the negative head in the score log P+ - beta log P- (the authors' default 1), saved "
                "with the heads (likra.json) for the scorer"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+answer to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the label column"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "likra":
            raise ValueError(f"--method {self.method!r} does not match this config (likra)")
        if self.ddp_find_unused_parameters is None:  # each step trains one head: the other's LoRA is unused
            self.ddp_find_unused_parameters = True
