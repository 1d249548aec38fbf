"""Configuration of :class:`negtune.trainers.TokenForgetTrainer` (token-level forgetting)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from transformers import TrainingArguments


@dataclass
class TokenForgetConfig(TrainingArguments):
    """Token-level forgetting (Taheri Ghahrizjani et al. 2025, :mod:`negtune.losses.token_forget`): fine-tuning
    text whose answer tokens are split, once before training, by the influence score
    l_base(y_t) - l_ref(y_t) into the top ``rho`` fraction (positive: learned) and the rest (negative: forgotten
    with a weight rising linearly from 0 to ``lambda_max`` over training).

    ``reference_model``: a model fine-tuned on a subset of the same data (the authors: 10k of their 50k
    examples), e.g. ``negtune train token_forget --rho 1`` (plain SFT, no reference needed) on that subset; a
    full model folder or a LoRA adapter folder. Choices the paper leaves open, negtune's: ties in the ranking go
    to the earlier token; with several processes each one scores the whole dataset (the split is global).
    """

    # a schedule over max_steps besides the learning rate's: a resumed run cannot be extended (negtune.train)
    max_steps_schedule: ClassVar[str] = "the forgetting weight's rise from lambda_min to lambda_max over max_steps"

    method: str = field(default="token_forget", metadata={"help": "fixed: lets a recipe name its method"})
    reference_model: str | None = field(default=None, metadata={
        "help": "the reference model (fine-tuned on a subset of the training data; same tokenizer): a model or "
                "LoRA adapter folder, or a hub id. Needed unless --rho 1"})
    rho: float = field(default=0.7, metadata={
        "help": "fraction of all answer tokens kept positive, by descending influence score (the authors: 0.7); "
                "1 = plain SFT on every token"})
    negative_tokens: str = field(default="forget", metadata={
        "help": "'forget' (the paper: minus lambda times their NLL) or 'ignore' (left out of the loss: the "
                "authors' 'ignoring' ablation, Rho-1-style token selection)", "choices": ["forget", "ignore"]})
    lambda_max: float = field(default=0.25, metadata={"help": "t_max: the forgetting weight reached at the last "
                                                              "step (the authors' 0.25)"})
    lambda_min: float = field(default=1e-5, metadata={"help": "t_min of the authors' schedule "
                                                              "lambda(s) = (t_max - t_min) s / S"})
    score_batch_size: int = field(default=8, metadata={"help": "batch size of the two scoring passes"})
    max_length: int = field(default=1024, metadata={"help": "truncate prompt+completion to this many tokens"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the negative-token labels"})

    def __post_init__(self):
        super().__post_init__()
        if self.method != "token_forget":
            raise ValueError(f"--method {self.method!r} does not match this config (token_forget)")
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"--rho must be in [0, 1] (the fraction of answer tokens kept positive), got {self.rho}")
        if self.negative_tokens not in ("forget", "ignore"):
            raise ValueError(f"--negative_tokens must be 'forget' or 'ignore', got {self.negative_tokens!r}")
        if not 0.0 <= self.lambda_min <= self.lambda_max:
            raise ValueError(f"need 0 <= --lambda_min <= --lambda_max, got {self.lambda_min} and {self.lambda_max}")
