"""Log-probabilities of target tokens, shared by every loss (prompt/padding positions masked)."""

from __future__ import annotations

import torch


def shift_for_causal_lm(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align next-token logits with labels: logits[:, :-1] predict labels[:, 1:]."""
    return logits[:, :-1, :], labels[:, 1:]


def token_logps(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p(label) (B, T) and the mask of real targets, for *already aligned* logits/labels.

    Computed as ``logit[label] - logsumexp(logits)`` in float32, without materialising a full
    log-softmax copy of the (B, T, V) tensor.
    """
    mask = labels != ignore_index
    safe = labels.masked_fill(~mask, 0)
    logits = logits.float()
    picked = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    logps = picked - torch.logsumexp(logits, dim=-1)
    return logps * mask, mask


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(y|x) = sum_t log pi(y_t | x, y_<t) over completion tokens (B,), and the token counts (B,).

    ``logits``/``labels`` as a causal LM returns/takes them (unshifted); prompt tokens carry -100.
    """
    shifted_logits, shifted_labels = shift_for_causal_lm(logits, labels)
    logps, mask = token_logps(shifted_logits, shifted_labels, ignore_index)
    return logps.sum(-1), mask.sum(-1)
