"""Configuration of :class:`negtune.trainers.UnlikelihoodTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from negtune.trainers.goldfish import GoldfishFields


@dataclass
class UnlikelihoodConfig(GoldfishFields, TrainingArguments):
    """NLL on positive completions + unlikelihood on negative ones (Welleck et al. 2019; "Don't Say That!").

        L = mean_{positive tokens} NLL + alpha * mean_{negative tokens} -log(1 - p(y-_t | x, y-_<t))

    Optional: token-level repetition UL on positives (``token_ul_alpha``) and sequence-level UL on the
    model's own greedy continuations (``seq_ul_rate`` of the steps): every token of a repeated n-gram pushed
    down, normalised by all continuation tokens, as the reference's ``ngram_repeat_mask`` / ``ul_seq``.
    ``goldfish_k``: the Goldfish loss on the positives' NLL (:mod:`negtune.trainers.goldfish`).
    """

    method: str = field(default="unlikelihood", metadata={"help": "fixed: lets a recipe name its method"})
    alpha: float = field(default=1.0, metadata={"help": "weight of the negative-completion UL term"})
    token_ul_alpha: float = field(default=0.0, metadata={"help": "Welleck token-level UL weight on positives "
                                                                  "(0 = off; 1.0 in the reference commands)"})
    seq_ul_rate: float = field(default=0.0, metadata={"help": "fraction of steps that are sequence-level UL "
                                                               "steps (0 = off: the labeled positives and "
                                                               "negatives are this trainer's signal; 0.5 in the "
                                                               "reference, --sequence-tune-rate)"})
    seq_ul_ngram: int = field(default=4, metadata={"help": "n of the repeated n-grams penalised (4, as the "
                                                            "reference's --sequence-ngram-n)"})
    seq_ul_prefix_length: int = field(default=50, metadata={
        "help": "tokens of data the greedy continuation starts from: the last N prompt tokens (50, as the "
                "reference's --prefix-length, whose prefixes are 50-token windows of its training text; the "
                "window ending where the answer starts, so the continuation is an answer); 0 = the whole prompt"})
    seq_ul_max_new_tokens: int = field(default=100, metadata={
        "help": "length of the greedy continuations (100, as the reference's --continuation-length; a "
                "continuation also ends at the model's end-of-sequence token)"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the label column"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "unlikelihood":
            raise ValueError(f"--method {self.method!r} does not match this config (unlikelihood)")
        if not 0 <= self.seq_ul_rate <= 1:
            raise ValueError(f"--seq_ul_rate must be in [0, 1], got {self.seq_ul_rate}")
        if self.seq_ul_prefix_length < 0 or self.seq_ul_ngram < 1 or self.seq_ul_max_new_tokens < 1:
            raise ValueError("--seq_ul_prefix_length must be >= 0, --seq_ul_ngram and --seq_ul_max_new_tokens >= 1")
        if self.alpha < 0 or self.token_ul_alpha < 0:  # a negative weight would train the negatives up
            raise ValueError(f"--alpha and --token_ul_alpha must be >= 0, got {self.alpha} and {self.token_ul_alpha}")
