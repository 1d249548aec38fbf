"""Configuration of NFT (Negative-aware Fine-Tuning, Chen et al. 2025): online and offline."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from trl import GRPOConfig

NFT_LOSS_TYPES = ("dapo", "bnpo", "dr_grpo")  # the aggregations NFTTrainer implements


@dataclass
class _NFTFields:
    neg_weight: float = field(default=1.0, metadata={"help": "weight of the negative term: 1 = NFT, 0 = RFT"})
    nft_eps: float = field(default=1.0, metadata={"help": "epsilon of max_v((1 - r R) / (1 - r), eps)"})
    prompt_weight: str = field(default="1-r", metadata={
        "help": "omega(q): '1-r' (NFT default) or 'grpo' (sqrt((1-r)/r): on-policy NFT = GRPO)"})
    pass_rate_min: float = field(default=0.02, metadata={"help": "r-hat is clamped to [min, max]"})
    pass_rate_max: float = field(default=0.98, metadata={"help": "r-hat is clamped to [min, max]"})
    drop_homogeneous: bool = field(default=True, metadata={
        "help": "drop groups whose samples are all right or all wrong (no signal in NFT's derivation)"})


@dataclass
class NFTConfig(_NFTFields, GRPOConfig):
    """Online NFT on TRL's GRPO machinery (generation, rewards, batching); the policy loss is NFT's.

    ``loss_type`` chooses the aggregation only: ``dapo`` (global token mean, default), ``bnpo`` (token mean of
    the micro-batch) or ``dr_grpo`` (sum / (batch x max_completion_length)); any other value is an error.
    """

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in NFT_LOSS_TYPES:
            raise ValueError(f"--loss_type {self.loss_type!r}: NFT aggregates its loss with one of "
                             f"{', '.join(NFT_LOSS_TYPES)} (the others are GRPO losses, not aggregations)")


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
