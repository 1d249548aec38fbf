"""Contrastive rationale loss: QCRD-style (Wang et al. 2024).

QCRD has no released code; the shape follows the paper's description: weighted NLL on denoised positive
rationales, a margin-bounded push on negatives (a negative's NLL is raised only up to delta, so the term
cannot diverge), and per-sample weights from an online discriminator.
"""

from __future__ import annotations

import torch


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if values.numel() == 0:
        return values.new_zeros(())
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp(min=1e-8)


def contrastive_rationale_loss(
    pos_nll: torch.Tensor,
    neg_nll: torch.Tensor,
    answer_nll: torch.Tensor | None = None,
    pos_weights: torch.Tensor | None = None,
    neg_weights: torch.Tensor | None = None,
    delta: float = 3.0,
    alpha_answer: float = 0.5,
    alpha_pos: float = 0.5,
    alpha_neg: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """QCRD total loss from per-rationale mean-token NLLs:

        L = a1 * L_answer + a2 * sum_i w+_i NLL(r+_i) / sum w+  +  a3 * sum_j w-_j max(0, delta - NLL(r-_j)) / sum w-

    ``delta = 3`` and ``a = 0.5`` each as in the paper (a3 is decayed x0.9 per iteration by the trainer).
    Returns (loss, parts) where parts holds the three unweighted-by-alpha terms.
    """
    l_pos = _weighted_mean(pos_nll, pos_weights)
    l_neg = _weighted_mean(torch.clamp(delta - neg_nll, min=0.0), neg_weights)
    l_ans = answer_nll.mean() if answer_nll is not None and answer_nll.numel() else pos_nll.new_zeros(())
    loss = alpha_answer * l_ans + alpha_pos * l_pos + alpha_neg * l_neg
    return loss, {"answer": l_ans.detach(), "positive": l_pos.detach(), "negative": l_neg.detach()}
