"""Fields every online RLVR method shares on top of TRL's GRPOConfig: updates per rollout and dynamic sampling.

The papers train off-policy: one rollout feeds several optimizer steps, so pi_old (the sampler) and pi_theta
drift apart within a rollout and the methods' ratio terms act. NFT (train_7B.sh): 512 prompts x 16 samples per
rollout, mini-batches of 32 prompts -> 16 updates per rollout. NGRPO (train_qwen2.5-math-7b_ngrpo.sh): 1024
prompts per rollout, mini-batches of 256 -> 4 updates. TRL's default (``steps_per_generation`` =
``gradient_accumulation_steps``) is 1 update per rollout, where the ratio is 1: NGRPO's asymmetric clip never
fires and NFT reduces to Dr.GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class OffPolicyFields:
    updates_per_generation: int | None = field(default=None, metadata={
        "help": "optimizer steps per generation batch (rollout): sets steps_per_generation = this x "
                "gradient_accumulation_steps, so one rollout of per_device_train_batch_size x processes x "
                "steps_per_generation completions feeds this many updates with pi_old fixed. NFT's paper: 16, "
                "NGRPO's: 4; 1 = on-policy (TRL's default). Ignored when steps_per_generation or "
                "generation_batch_size is given"})

    def __post_init__(self):
        n = self.updates_per_generation
        if n is not None:
            if n < 1:
                raise ValueError(f"--updates_per_generation {n}: must be at least 1")
            if self.steps_per_generation is None and self.generation_batch_size is None:
                self.steps_per_generation = n * self.gradient_accumulation_steps
        super().__post_init__()


@dataclass
class DynamicSamplingFields:
    dynamic_sampling: bool = field(default=True, metadata={
        "help": "DAPO's filter-and-resample: groups that carry no signal (see the method's drop option) are "
                "replaced by groups from further generation rounds until the generation batch is full, instead "
                "of training on a smaller batch. Both reference implementations enable it (NFT: filter_groups "
                "on accuracy; NGRPO: filter_groups, strategy all_correct)"})
    max_sampling_rounds: int = field(default=10, metadata={
        "help": "generation rounds per batch at most (the first included; the NFT reference's "
                "max_num_gen_batches is 10); when reached, the batch is completed with the filtered groups, "
                "masked out of the loss, and a warning says so"})

    def __post_init__(self):
        if self.max_sampling_rounds < 1:
            raise ValueError(f"--max_sampling_rounds {self.max_sampling_rounds}: must be at least 1")
        super().__post_init__()


@dataclass
class GRPOBaselineConfig(OffPolicyFields, GRPOConfig):
    """TRL's GRPOConfig plus ``updates_per_generation``, so a GRPO / Dr.GRPO baseline can be run at the same
    number of updates per rollout as the method it is compared with (default: TRL's, 1)."""
