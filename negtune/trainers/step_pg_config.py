"""Configuration of :class:`negtune.trainers.StepPGTrainer` (step-level credit for negatives)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

CREDITS = ("step", "nsa", "outcome")


@dataclass
class StepPGConfig(TrainingArguments):
    """Policy gradient on a fixed labeled rollout with per-step advantages (:mod:`negtune.losses.steps`).

    The data is a rollout annotated by ``negtune step-values`` (Monte-Carlo values of every prefix of its
    negatives). ``credit`` says how each token's advantage is set:

    - ``step`` (Setlur et al. 2024): A = Q_i − Q_{i−1} of the token's step, values under best-of-``bok_k``,
      Q_0 = the prompt's value from the same stage;
    - ``nsa`` (BCPG-NSA): the outcome advantage, times ``nsa_beta`` on a wrong answer's steps before its first
      pit (steps the continuations show to be correct);
    - ``outcome``: r − r̂ on every token (Dr.GRPO's advantage; needs no step values): the outcome-only
      baseline with the same loss, so a comparison differs in the credit alone.

    Samples without step values (positives under ``step-values --samples negatives``) take the outcome
    advantage: r − Q_0 under ``step`` (the prompt's value from the stage, best-of-``bok_k`` too), r − r̂ else. π_old is the initial model (the rollout's sampler when the rollout was made
    with it), computed once before training; the loss is the clipped surrogate, token mean over the batch.
    """

    method: str = field(default="step_pg", metadata={"help": "fixed: lets a recipe name its method"})
    credit: str = field(default="step", metadata={
        "help": "step (A_i = Q_i - Q_{i-1}, Setlur et al.), nsa (outcome advantage x nsa_beta on a wrong "
                "answer's steps before its pit, BCPG-NSA) or outcome (r - r_hat on every token)",
        "choices": list(CREDITS)})
    bok_k: int = field(default=1, metadata={
        "help": "credit step: values under best-of-k, Q -> 1 - (1 - Q)^k (Setlur et al.: 5); 1 = the policy's own"})
    nsa_beta: float = field(default=0.5, metadata={
        "help": "credit nsa: the multiplier on a wrong answer's steps before its pit (BCPG-NSA: 0.5)"})
    epsilon: float = field(default=0.2, metadata={"help": "clip range below: R >= 1 - epsilon"})
    epsilon_high: float | None = field(default=None, metadata={
        "help": "clip range above: R <= 1 + epsilon_high (default: epsilon)"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the advantage columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "step_pg":
            raise ValueError(f"--method {self.method!r} does not match this config (step_pg)")
        if self.credit not in CREDITS:
            raise ValueError(f"--credit {self.credit!r}: expected one of {', '.join(CREDITS)}")
        if self.bok_k < 1:
            raise ValueError(f"--bok_k must be >= 1, got {self.bok_k}")
        if self.bok_k != 1 and self.credit != "step":
            raise ValueError(f"--bok_k {self.bok_k} acts on the step values of --credit step only (got --credit "
                             f"{self.credit}); remove it")
        if self.nsa_beta < 0:
            raise ValueError(f"--nsa_beta must be >= 0, got {self.nsa_beta}")
        if self.epsilon_high is None:
            self.epsilon_high = self.epsilon
        if not (0 < self.epsilon < 1 and self.epsilon_high > 0):
            raise ValueError(f"need 0 < --epsilon < 1 and --epsilon_high > 0, got {self.epsilon} and "
                             f"{self.epsilon_high}")
