"""Configuration of NFT (Negative-aware Fine-Tuning, Chen et al. 2025): online and offline."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from trl import GRPOConfig

from negtune.trainers.rlvr_config import DynamicSamplingFields, OffPolicyFields

NFT_LOSS_TYPES = ("dapo", "bnpo", "dr_grpo", "token_sum")  # the aggregations NFTTrainer implements
PROMPT_WEIGHTS = ("1-r", "grpo")


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

    def _check_nft_fields(self) -> None:
        if self.neg_weight < 0:
            raise ValueError(f"--neg_weight must be >= 0 (1 = NFT, 0 = RFT), got {self.neg_weight}")
        if self.nft_eps <= 0:
            raise ValueError(f"--nft_eps must be > 0 (the floor of the negative policy's ratio), got {self.nft_eps}")
        if self.prompt_weight not in PROMPT_WEIGHTS:
            raise ValueError(f"--prompt_weight must be one of {', '.join(PROMPT_WEIGHTS)}, got {self.prompt_weight!r}")
        if not 0.0 <= self.pass_rate_min <= self.pass_rate_max <= 1.0:
            raise ValueError(f"need 0 <= --pass_rate_min <= --pass_rate_max <= 1 (r-hat is clamped to them), got "
                             f"{self.pass_rate_min} and {self.pass_rate_max}")
        if not self.drop_homogeneous and (self.pass_rate_min == 0.0 or self.pass_rate_max == 1.0):
            raise ValueError("--drop_homogeneous false keeps all-right and all-wrong groups, whose r-hat is 1 or 0: "
                             "NFT divides by r-hat and 1 - r-hat, so keep 0 < --pass_rate_min and --pass_rate_max < 1")


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
        self._check_nft_fields()
        if self.beta != 0:
            raise ValueError(f"--beta {self.beta}: NFT's objective has no KL term (the paper trains without one); "
                             "leave --beta at 0")
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
        self._check_nft_fields()
        if self.method == "rft":
            if self.neg_weight not in (0.0, 1.0):  # 1.0 is the field's default: RFT sets it to 0
                raise ValueError(f"--neg_weight {self.neg_weight} with rft: RFT is NFT with neg_weight 0; use "
                                 "nft_offline for another weight")
            self.neg_weight = 0.0
        elif self.method != "nft":
            raise ValueError(f"--method {self.method!r}: expected nft or rft")
