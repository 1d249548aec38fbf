"""Configuration of :class:`negtune.trainers.NATTrainer` (negative-aware training)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from negtune.trainers.goldfish import GoldfishFields


@dataclass
class NATConfig(GoldfishFields, TrainingArguments):
    """Negative-aware training (NAT, Wang et al. 2024): next-token cross-entropy on positive *and* negative
    completions, each prompt ending with its quality marker (:mod:`negtune.losses.nat`); the positive marker is
    saved with the model and rollout/evaluation append it to every prompt (``--marker auto``).

    Choices the paper leaves open, negtune's defaults: the markers' wording (the paper's are agent-specific:
    "... Generate a sequence of Thought and Action steps to solve the problem correctly." / "... But incorrectly
    solve the problem."); which negatives are kept when there are more than ``negatives_per_positive`` per
    positive (uniformly at random over the whole dataset, seeded by ``seed``: the paper samples a fixed count
    from its pool of failures). With ``negatives_per_positive 0`` and an empty ``positive_marker`` this is plain
    SFT on the positives; with both markers empty, SFT on everything (the paper's "no marker" ablation).
    ``goldfish_k``: the Goldfish loss on the positives (:mod:`negtune.trainers.goldfish`).
    """

    method: str = field(default="nat", metadata={"help": "fixed: lets a recipe name its method"})
    positive_marker: str = field(default="Solve the problem correctly.", metadata={
        "help": "appended to the last user message of positive examples, and at sampling time (saved with the "
                "model); empty = no marker"})
    negative_marker: str = field(default="Solve the problem incorrectly.", metadata={
        "help": "appended to the last user message of negative examples; empty = no marker"})
    negatives_per_positive: float = field(default=2.0, metadata={
        "help": "negatives kept per positive in the dataset (2 in the paper: 10k negatives with 5k positives; "
                "at 1-2k negatives it trained worse than positives only); a random subset when there are more, "
                "all when fewer; -1 = every negative, 0 = none"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the label column"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "nat":
            raise ValueError(f"--method {self.method!r} does not match this config (nat)")
        if self.negatives_per_positive < 0 and self.negatives_per_positive != -1:
            raise ValueError(f"--negatives_per_positive must be >= 0 or -1 (every negative), got "
                             f"{self.negatives_per_positive}")
        if self.negatives_per_positive != 0 and self.positive_marker == self.negative_marker and \
                self.positive_marker:
            raise ValueError(f"--positive_marker and --negative_marker are both {self.positive_marker!r}: the "
                             "model could not tell which kind of answer is asked for; make them differ")
