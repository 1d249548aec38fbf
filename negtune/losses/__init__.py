"""Pure tensor losses, one file per family; each docstring carries the paper's equation."""

from negtune.losses.click import click_loss
from negtune.losses.contrastive import contrastive_rationale_loss
from negtune.losses.logps import sequence_logps, shift_for_causal_lm, token_logps
from negtune.losses.nat import nat_loss
from negtune.losses.npo import ga_loss, graddiff_loss, kl_ref_policy, npo_loss, npo_weight, simnpo_loss
from negtune.losses.rlvr import (
    group_pass_rates,
    grpo_advantages,
    nft_prompt_weight,
    nft_token_loss,
    ngrpo_advantages,
)
from negtune.losses.unlikelihood import (
    log1m_softmax,
    negative_unlikelihood_loss,
    repeat_ngram_mask,
    token_unlikelihood_loss,
)

__all__ = [
    "group_pass_rates", "grpo_advantages", "ngrpo_advantages", "nft_prompt_weight", "nft_token_loss",
    "click_loss", "contrastive_rationale_loss", "ga_loss", "graddiff_loss", "kl_ref_policy", "log1m_softmax",
    "nat_loss", "negative_unlikelihood_loss", "npo_loss", "npo_weight", "repeat_ngram_mask", "sequence_logps",
    "shift_for_causal_lm", "simnpo_loss", "token_logps", "token_unlikelihood_loss",
]
