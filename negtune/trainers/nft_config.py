"""Configuration of NFT (Negative-aware Fine-Tuning, Chen et al. 2025): online and offline."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from trl import GRPOConfig

from negtune.trainers.rlvr_config import DynamicSamplingFields, OffPolicyFields

NFT_LOSS_TYPES = ("dapo", "bnpo", "dr_grpo", "token_sum")  # the aggregations NFTTrainer implements


@dataclass
class _NFTFields:
    neg_weight: float = field(default=1.0, metadata={"help": "weight of the negative term: 1 = NFT, 0 = RFT"})
    nft_eps: float = field(default=1.0, metadata={"help": "epsilon of max_v((1 - r R) / (1 - r), eps)"})
    prompt_weight: str = field(default="1-r", metadata={
        "help": "omega(q): '1-r' (NFT default) or 'grpo' (sqrt((1-r)/r): on-policy NFT = GRPO)"})
    pass_rate_min: float = field(default=0.02, metadata={"help": "r-hat is clamped to [min, max]"})
    pass_rate_max: float = field(default=0.98, metadata={"help": "r-hat is clamped to [min, max]"})
    drop_homogeneous: bool = field(default=True, metadata={
        "help": "leave out groups whose samples are all right or all wrong (no signal in NFT's derivation): online "
                "they are replaced by dynamic_sampling, else masked; offline they are dropped"})


@dataclass
class NFTConfig(_NFTFields, DynamicSamplingFields, OffPolicyFields, GRPOConfig):
    """Online NFT on TRL's GRPO machinery (generation, rewards, batching); the policy loss is NFT's.

    ``loss_type`` chooses the aggregation only: ``dapo`` (token mean over the generation batch, default: the
    same aggregation as the GRPO and NGRPO baselines, so comparisons differ in the loss alone), ``bnpo`` (token
    mean of the micro-batch), ``dr_grpo`` (sum / (batch x max_completion_length)) or ``token_sum`` (the NFT
    reference's dp_actor.py: the token-loss sum of each mini-batch divided by a constant,
    ``token_sum_divisor`` = 1000; its step size then grows with the number of tokens per update, which is why
    it is not the default); any other value is an error.

    Off-policy by default, as the paper trains: ``updates_per_generation`` 16 (512 prompts per rollout,
    mini-batches of 32), and DAPO's dynamic sampling refills groups that are all right or all wrong.
    """

    updates_per_generation: int | None = field(default=16, metadata={
        "help": "optimizer steps per rollout (the NFT paper: 16); 1 = on-policy, where NFT equals Dr.GRPO. "
                "Sets steps_per_generation = this x gradient_accumulation_steps unless steps_per_generation or "
                "generation_batch_size is given"})
    token_sum_divisor: float = field(default=1000.0, metadata={
        "help": "loss_type token_sum: the constant the mini-batch's token-loss sum is divided by (reference: "
                "1000)"})

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in NFT_LOSS_TYPES:
            raise ValueError(f"--loss_type {self.loss_type!r}: NFT aggregates its loss with one of "
                             f"{', '.join(NFT_LOSS_TYPES)} (the others are GRPO losses, not aggregations)")
        if self.token_sum_divisor <= 0:
            raise ValueError(f"--token_sum_divisor {self.token_sum_divisor}: must be positive")


@dataclass
class OfflineNFTConfig(_NFTFields, TrainingArguments):
    """Offline NFT from a labeled dataset (``negtune rollout``): r-hat from ``group_pass_rate``, pi_old from the
    sampler's ``logprobs`` when present, else computed once before training with the initial model."""

    method: str = field(default="nft", metadata={"help": "nft, or rft (= nft with neg_weight 0); set by the "
                                                          "command word nft_offline / rft_offline"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the NFT columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.method == "rft":
            self.neg_weight = 0.0
        elif self.method != "nft":
            raise ValueError(f"--method {self.method!r}: expected nft or rft")
