"""Contrastive rationale loss: QCRD (Wang et al. 2024, "Quality-guided Contrastive Rationale Distillation").

QCRD has no released code. Its "many-to-one" loss, for a question x_i with a positive rationale set S+_i and
a negative set S-_i: the positive term is the *minimum* loss over S+_i (the positive the student is already
closest to), the negative term the minimum of min(NLL - delta, 0) over S-_i (the negative the student finds
most likely: the largest hinge); the paper's ablation finds this min/max scheme best. Each rationale is
weighted by an online discriminator's quality score. negtune's default averages every rationale instead
(``positive_set`` / ``negative_set``; the config says why).
"""

from __future__ import annotations

import torch


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if values.numel() == 0:
        return values.new_zeros(())
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp(min=1e-8)


def argmin_per_group(values: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
    """Index of the smallest value in each group (the first one on ties), groups in order of first
    appearance; ``groups=None``: one group."""
    if groups is None:
        return values.detach().argmin().reshape(1) if values.numel() else values.new_zeros(0, dtype=torch.long)
    picked = []
    for g in dict.fromkeys(groups.tolist()):  # keeps first-appearance order
        rows = (groups == g).nonzero().flatten()
        picked.append(rows[values.detach()[rows].argmin()])
    return torch.stack(picked) if picked else groups.new_zeros(0, dtype=torch.long)


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
    pos_groups: torch.Tensor | None = None,
    neg_groups: torch.Tensor | None = None,
    positive_set: str = "mean",
    negative_set: str = "mean",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """QCRD total loss from per-rationale mean-token NLLs. The paper's per-question terms (Wang et al. 2024;
    question i, positive set S+_i, negative set S-_i, l = the student's NLL of a rationale):

        l(x_i, S+_i) = min_{r in S+_i} l(x_i, r)                                  positive_set="min"
        l(x_i, S-_i) = min_{r in S-_i} min(l(x_i, r) - delta, 0)                  negative_set="max"
        L = a1 * L_answer + a2 * sum_i w+_i l(x_i, S+_i) / sum w+  -  a3 * sum_i w-_i l(x_i, S-_i) / sum w-

    -min(l - delta, 0) = max(0, delta - l): the negative term is the largest hinge of the question's negatives
    (its most likely negative), bounded so no negative is pushed past delta. ``*_groups`` (question ids) say
    which rationales form one set (None: the whole batch is one question); w is the weight of the rationale
    the min/max picked (chosen by its NLL, not by its weighted value). ``"mean"`` (the default) makes every
    rationale its own set: a2 * weighted mean NLL(positives) + a3 * weighted mean max(0, delta - NLL(negatives)).
    ``delta = 3`` and ``a = 0.5`` each as in the paper (a3 is decayed x0.9 per epoch by the trainer).
    Returns (loss, parts) where parts holds the three terms before their alphas.
    """
    if positive_set not in ("mean", "min") or negative_set not in ("mean", "max"):
        raise ValueError(f"positive_set must be mean|min and negative_set mean|max, got {positive_set!r}, "
                         f"{negative_set!r}")
    if positive_set == "min" and pos_nll.numel():
        keep = argmin_per_group(pos_nll, pos_groups)
        pos_nll, pos_weights = pos_nll[keep], None if pos_weights is None else pos_weights[keep]
    if negative_set == "max" and neg_nll.numel():  # the largest hinge is the smallest NLL
        keep = argmin_per_group(neg_nll, neg_groups)
        neg_nll, neg_weights = neg_nll[keep], None if neg_weights is None else neg_weights[keep]
    l_pos = _weighted_mean(pos_nll, pos_weights)
    l_neg = _weighted_mean(torch.clamp(delta - neg_nll, min=0.0), neg_weights)
    l_ans = answer_nll.mean() if answer_nll is not None and answer_nll.numel() else pos_nll.new_zeros(())
    loss = alpha_answer * l_ans + alpha_pos * l_pos + alpha_neg * l_neg
    return loss, {"answer": l_ans.detach(), "positive": l_pos.detach(), "negative": l_neg.detach()}
