"""Configuration of :class:`negtune.trainers.StepDPOTrainer` (Self-Explore's step-level DPO)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

FIRST_STEP_PITS = ("pair", "skip")


@dataclass
class StepDPOConfig(TrainingArguments):
    """DPO on step-level pairs built from a rollout annotated by ``negtune step-values``
    (:func:`negtune.losses.steps.step_dpo_loss`): for each wrong sample with step values, the prompt plus the
    prefix before its first pit; chosen = a correct continuation the stage found from that prefix (its
    ``step_continuation``); rejected = the pit step alone (no end-of-sequence token: it is not an ending).
    A pit at the first step has no prefix; ``first_step_pit`` says what then: ``pair`` (chosen = the right
    continuation of the prompt alone that the stage found when valuing it, else a right sample of the same
    prompt from the rollout) or ``skip``. The reference is the initial model (under LoRA: the base), its
    log-probs computed once. A pit at the last step ends the sample, so that rejected side keeps its
    end-of-sequence token when the sample stopped by itself.
    """

    method: str = field(default="step_dpo", metadata={"help": "fixed: lets a recipe name its method"})
    beta: float = field(default=0.1, metadata={"help": "DPO's beta (Self-Explore: 0.1)"})
    first_step_pit: str = field(default="pair", metadata={
        "help": "a pit at the first step: 'pair' (chosen = a right continuation of the prompt alone: the stage's, "
                "else a right sample of the same prompt) or 'skip'",
        "choices": list(FIRST_STEP_PITS)})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+prefix+continuation to this many "
                                                            "tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the pair columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "step_dpo":
            raise ValueError(f"--method {self.method!r} does not match this config (step_dpo)")
        if self.beta <= 0:
            raise ValueError(f"--beta must be positive, got {self.beta}")
        if self.first_step_pit not in FIRST_STEP_PITS:
            raise ValueError(f"--first_step_pit {self.first_step_pit!r}: expected one of {', '.join(FIRST_STEP_PITS)}")
