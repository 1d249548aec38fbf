"""Configuration of :class:`negtune.trainers.ContrastiveRationaleTrainer` (QCRD-style)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from negtune.trainers.goldfish import GoldfishFields


@dataclass
class ContrastiveRationaleConfig(GoldfishFields, TrainingArguments):
    """Contrastive rationale distillation (QCRD, Wang et al. 2024), adapted from the paper's description:

        L = a1 * L_answer + a2 * weighted NLL(positives) + a3 * weighted max(0, delta - NLL(negatives))

    Positives are verified-correct rationales (self-consistent with the gold). Negatives are failed
    rollouts plus *self-adversarial* rationales: sampled at high temperature from an earlier snapshot of
    the student (``snapshot_lag`` snapshots back), kept only when the verifier says they are wrong.
    An online discriminator (mean-pooled token embeddings + linear head) weights samples by its quality score
    s: positives by s, negatives (failed rollouts and self-adversarial ones alike) by 1 - s, so high-quality
    (confusable) negatives are pushed less. The paper's min over each question's positive set and max over its
    negative set are ``positive_set="min"`` / ``negative_set="max"``.
    ``goldfish_k``: the Goldfish loss on the positive and gold-answer NLL (:mod:`negtune.trainers.goldfish`).
    """

    method: str = field(default="contrastive", metadata={"help": "fixed: lets a recipe name its method"})
    delta: float = field(default=3.0, metadata={"help": "margin: a negative's NLL is raised up to delta only"})
    alpha_answer: float = field(default=0.5, metadata={
        "help": "a1: weight of the gold-answer NLL (the target is \\boxed{answer} alone: on a chain-of-thought model "
                "it also teaches answering with no worked steps; benchmarks/negatives_trap.py measures it)"})
    alpha_pos: float = field(default=0.5, metadata={"help": "a2: weight of the positive-rationale NLL"})
    alpha_neg: float = field(default=0.5, metadata={"help": "a3: weight of the negative margin term"})
    neg_decay: float = field(default=0.9, metadata={"help": "a3 is multiplied by this once per epoch"})
    positive_set: str = field(default="mean", metadata={
        "help": "how a question's positive rationales enter L_pos. 'min': the paper's many-to-one term, only the "
                "positive with the lowest NLL (the one the student is closest to); 'mean' (default): every "
                "positive, weighted. Default mean because negtune's positives are the student's own verified "
                "rollouts, not a teacher's diverse rationales: all are correct, and min would train on 1 of K "
                "per question, the one the student already rates most likely. min/max batch each question's "
                "rationales together (a question cut by a batch boundary is reduced over each part)"})
    negative_set: str = field(default="mean", metadata={
        "help": "how a question's negative rationales enter L_neg. 'max': the paper's term, only the largest "
                "hinge max(0, delta - NLL) (the negative the student finds most likely); 'mean' (default): "
                "every negative, weighted, so every wrong rollout below the margin is pushed"})
    use_discriminator: bool = field(default=True, metadata={
        "help": "weight rationales by an online discriminator's quality score s: positives by s, negatives "
                "(self-adversarial ones included, as in the paper) by 1 - s"})
    disc_dim: int = field(default=64, metadata={"help": "discriminator embedding size"})
    disc_lr: float = field(default=1e-3, metadata={"help": "discriminator learning rate (Adam)"})
    disc_warmup_steps: int = field(default=10, metadata={"help": "uniform weights until the discriminator trained"})
    self_adversarial: bool = field(default=True, metadata={"help": "sample negatives from an earlier snapshot"})
    snapshot_every: int = field(default=10, metadata={"help": "steps between snapshots of the student"})
    snapshot_lag: int = field(default=5, metadata={"help": "sample from the snapshot this many snapshots back"})
    adversarial_temperature: float = field(default=1.5, metadata={"help": "sampling temperature of the snapshot"})
    adversarial_max_new_tokens: int = field(default=128, metadata={"help": "length of sampled rationales"})
    adversarial_pool_size: int = field(default=256, metadata={"help": "most recent self-adversarial negatives kept"})
    adversarial_per_batch: int = field(default=4, metadata={"help": "self-adversarial negatives added per step"})
    adversarial_verifier: str = field(default="math", metadata={
        "help": "labels self-adversarial samples (only wrong ones are kept as negatives)"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+rationale to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the kind/label columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "contrastive":
            raise ValueError(f"--method {self.method!r} does not match this config (contrastive)")
        if self.positive_set not in ("mean", "min") or self.negative_set not in ("mean", "max"):
            raise ValueError(f"--positive_set must be mean|min and --negative_set mean|max, got "
                             f"{self.positive_set!r}, {self.negative_set!r}")
        if min(self.alpha_answer, self.alpha_pos, self.alpha_neg) < 0:
            raise ValueError(f"--alpha_answer, --alpha_pos and --alpha_neg must be >= 0, got {self.alpha_answer}, "
                             f"{self.alpha_pos}, {self.alpha_neg}")
        if self.delta <= 0 or not 0 <= self.neg_decay <= 1:
            raise ValueError(f"need --delta > 0 (the margin a negative's NLL is raised to) and 0 <= --neg_decay <= 1, "
                             f"got {self.delta} and {self.neg_decay}")
