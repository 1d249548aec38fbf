"""Configuration of :class:`negtune.trainers.NGRPOTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class NGRPOConfig(GRPOConfig):
    """NGRPO (Nan et al. 2025) = TRL's GRPO + advantage calibration + asymmetric clipping.

    Advantage calibration: a virtual sample with reward ``r_max`` joins each group's mean/std (never trained
    on), so all-wrong groups are kept and pushed down. Asymmetric clipping: ``epsilon`` (the lower clip,
    bounding negative-advantage updates) = 0.16 and ``epsilon_high`` = 0.24, the paper's values.
    """

    epsilon: float = field(default=0.16, metadata={"help": "lower PPO clip (negative-advantage updates)"})
    epsilon_high: float | None = field(default=0.24, metadata={"help": "upper PPO clip (positive advantages)"})
    r_max: float = field(default=1.0, metadata={"help": "reward of the virtual sample added to each group"})
    drop_all_correct: bool = field(default=False, metadata={
        "help": "mask out all-correct groups (their advantage is 0 anyway; this also removes their tokens "
                "from the loss normaliser)"})
