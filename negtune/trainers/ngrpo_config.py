"""Configuration of :class:`negtune.trainers.NGRPOTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from negtune.trainers.rlvr_config import DynamicSamplingFields, OffPolicyFields


@dataclass
class NGRPOConfig(DynamicSamplingFields, OffPolicyFields, GRPOConfig):
    """NGRPO (Nan et al. 2025) = TRL's GRPO + advantage calibration + asymmetric clipping.

    Advantage calibration: a virtual sample with reward ``r_max`` joins each group's mean/std (never trained
    on), so all-wrong groups are kept and pushed down. Asymmetric clipping: ``epsilon`` (the lower clip,
    bounding negative-advantage updates) = 0.16 and ``epsilon_high`` = 0.24, the paper's values. The clip acts
    only off-policy: by default 4 optimizer steps per rollout (the reference script: 1024 prompts per rollout,
    mini-batches of 256), and, as the reference, all-correct groups (advantage 0) are filtered and replaced by
    dynamic sampling; all-wrong groups are kept (they carry NGRPO's signal).
    """

    updates_per_generation: int | None = field(default=4, metadata={
        "help": "optimizer steps per rollout (the NGRPO reference: 4); 1 = on-policy, where the ratio is 1 and "
                "the asymmetric clip never acts. Sets steps_per_generation = this x gradient_accumulation_steps "
                "unless steps_per_generation or generation_batch_size is given"})

    epsilon: float = field(default=0.16, metadata={"help": "lower PPO clip (negative-advantage updates)"})
    epsilon_high: float | None = field(default=0.24, metadata={"help": "upper PPO clip (positive advantages)"})
    r_max: float = field(default=1.0, metadata={"help": "reward of the virtual sample added to each group"})
    drop_all_correct: bool = field(default=True, metadata={
        "help": "filter all-correct groups (their advantage is 0: they only dilute the loss normaliser), as the "
                "reference's filter_groups strategy all_correct: replaced by dynamic_sampling, else masked"})

    def __post_init__(self):
        super().__post_init__()
        if self.epsilon <= 0 or (self.epsilon_high is not None and self.epsilon_high <= 0):
            raise ValueError(f"--epsilon and --epsilon_high (the clip range) must be > 0, got {self.epsilon} and "
                             f"{self.epsilon_high}")
        if self.r_max <= 0:
            raise ValueError(f"--r_max (the virtual sample's reward, the largest a group can get) must be > 0, got "
                             f"{self.r_max}")
