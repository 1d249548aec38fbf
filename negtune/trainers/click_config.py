"""Configuration of :class:`negtune.trainers.ClickTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class ClickConfig(TrainingArguments):
    """Click (Zheng et al. 2023): L = token-mean NLL of the positives + alpha * mean over pairs of
    max(0, gamma - log p(y+|x) + log p(y-|x)), summed sequence log-likelihoods (:mod:`negtune.losses.click`).

    Pairs are built once, before training, per prompt of the labeled dataset: the continuations are ranked by
    the initial model's sequence likelihood; the most likely positive is paired with the ``max_pairs`` most
    likely negatives (``pairing likelihood``, the paper's strategy; ``random``: a random positive and random
    negatives, the ablation). Every positive is a language-modelling target (or the trainer's ``lm_dataset``:
    gold text, as the authors train). Defaults are the authors' repetition setting (gamma 15, alpha 0.3, 3 negatives per
    prompt); their optimiser was Adafactor at 5e-5 (``--optim adafactor``).
    """

    method: str = field(default="click", metadata={"help": "fixed: lets a recipe name its method"})
    margin: float = field(default=15.0, metadata={
        "help": "gamma: the margin in nats between the summed log-likelihoods of a pair's positive and negative "
                "(15 for the authors' 64-128-token continuations; scale it with the continuation length)"})
    contrast_weight: float = field(default=0.3, metadata={"help": "alpha: weight of the contrastive term "
                                                                  "(0.3 repetition, 0.5 toxicity, 0.1 sentiment)"})
    max_pairs: int = field(default=3, metadata={"help": "negatives paired per prompt (the authors' cap: 3)"})
    pairing: str = field(default="likelihood", metadata={
        "help": "'likelihood' (the paper's ranking: most likely positive vs most likely negatives) or 'random'",
        "choices": ["likelihood", "random"]})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the pair columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "click":
            raise ValueError(f"--method {self.method!r} does not match this config (click)")
        if self.max_pairs < 1 or self.margin < 0 or self.contrast_weight < 0:
            raise ValueError("--max_pairs must be >= 1, --margin and --contrast_weight >= 0")
        if self.pairing not in ("likelihood", "random"):
            raise ValueError(f"--pairing must be 'likelihood' or 'random', got {self.pairing!r}")
