"""Negative-assisted distillation (Li et al. 2024, "Turning Dust into Gold: Distilling Complex Reasoning
Capabilities from LLMs by Leveraging Negative Data", AAAI, arXiv:2312.12832; code github.com/Yiwei98/TDG).

Three stages, each read from the authors' code (``code/peft_NAT/tuners/lora.py``, ``code/distill_NCE.py``):

1. Negative assistant: a LoRA adapter (A-, B-) trained with plain next-token cross-entropy on the teacher's
   *wrong* rationales.
2. Integration (the paper's NAT): a positive LoRA (A+, B+) and a gate are trained on the right rationales, the
   negative adapter frozen. In every adapted linear layer W0 (s = lora_alpha / r):

       h+ = W0 x + s B+ A+ x,   h- = W0 x + s B- A- x
       q = W_Q x,  k_j = W_K h_j,  v_j = W_V h_j   (W_V = Linear(width -> out, zero-init) o GELU o Linear)
       a = softmax_j(q . k_j / T),   alpha = 2 beta a_- - beta   in [-beta, beta]   (beta 0.5, T 1)
       out = W0 x + (1 - alpha) v+ + alpha v-

   (:func:`integrate_gate`; the model starts as the base because W_V's last layer starts at zero.)
3. Negative-calibrated enhancement (NCE): a fresh student LoRA distils the integrated model on the right
   rationales, each example's distillation term weighted by how far the integrated model has moved from the
   negative assistant on it:

       beta_i = tanh( (1/|M_i|) sum_{t in M_i} KL( p_-(. | y_<t) || p_NAT(. | y_<t) ) )
       L = (1 - a) CE(student) + a * [ - sum_i (0.5 + beta_i) sum_{t in M_i} sum_v p_NAT,t(v) log q_t(v) ] / |M|

   (a = 0.5, T = 1; :func:`nce_calibration`, :func:`nce_loss`).

The inference stage (adaptive self-consistency, a ranking model weighting the votes) is not part of these
losses. Choices negtune makes where the code is not general: W_K and W_V read the layer's *output* width
(the code's ``Linear(in_features, 128)`` assumes in = out, true for LLaMA-7B's q/v projections); the masks
M_i are the answer tokens (the code also counts the question's tokens and, in its CE, padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def integrate_gate(q: torch.Tensor, k_pos: torch.Tensor, k_neg: torch.Tensor, beta: float = 0.5,
                   temperature: float = 1.0) -> torch.Tensor:
    """alpha = 2 beta softmax_j(q . k_j / T)_- - beta, per position: the weight of the negative branch, in
    [-beta, beta] (the positive branch gets 1 - alpha). Shapes (..., width) -> (..., 1)."""
    scores = torch.stack([(q * k_pos).sum(-1), (q * k_neg).sum(-1)], -1) / temperature
    return (2 * beta * scores.softmax(-1)[..., 1] - beta).unsqueeze(-1)


def nce_calibration(neg_logits: torch.Tensor, nat_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """beta_i = tanh(mean over the example's masked positions of KL(p_- || p_NAT)), shape (B,), no gradient.
    ``neg_logits`` / ``nat_logits`` (B, T, V) from the negative assistant and the integrated model."""
    with torch.no_grad():
        log_neg = neg_logits.float().log_softmax(-1)
        log_nat = nat_logits.float().log_softmax(-1)
        kl = (log_neg.exp() * (log_neg - log_nat)).sum(-1)  # (B, T)
        m = mask.float()
        return torch.tanh((kl * m).sum(-1) / m.sum(-1).clamp(min=1))


def nce_loss(student_logits: torch.Tensor, nat_logits: torch.Tensor, labels_mask: torch.Tensor, ce: torch.Tensor,
             calibration: torch.Tensor, kd_weight: float = 0.5) -> torch.Tensor:
    """(1 - a) CE + a * KD, KD = -sum_i (0.5 + beta_i) sum_{t in M_i} sum_v p_NAT,t(v) log q_t(v) / |M|.

    ``student_logits`` / ``nat_logits`` (B, T, V) aligned with ``labels_mask`` (B, T); ``ce`` the student's
    token-mean cross-entropy on the same tokens; ``calibration`` beta_i (B,)."""
    log_q = student_logits.float().log_softmax(-1)
    p_nat = nat_logits.float().softmax(-1).detach()
    per_token = -(p_nat * log_q).sum(-1)  # (B, T)
    m = labels_mask.float()
    kd = ((per_token * m).sum(-1) * (0.5 + calibration)).sum() / m.sum().clamp(min=1)
    return (1 - kd_weight) * ce + kd_weight * kd


def kl_rows(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position (..., V) -> (...): a helper for reports and tests."""
    return F.kl_div(q_logits.log_softmax(-1), p_logits.log_softmax(-1), log_target=True, reduction="none").sum(-1)


def ranking_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, power: float = 3.0) -> torch.Tensor:
    """ASC's ranking model objective on (right, wrong) pairs of one question's samples, scores in (0, 1):

        L = mean_pairs (1 - s+)^p + (s-)^p          (p = 3 in the authors' run)
    """
    return ((1 - pos_scores) ** power + neg_scores ** power).mean()


VOTE_RULES = ("count", "score", "one_plus_score", "one_plus_two_score")


def weighted_vote(clusters: list[int | None], scores: list[float], rule: str = "score") -> int | None:
    """Adaptive self-consistency: the index of the sample representing the answer with the largest weighted
    vote, each sample voting for its answer cluster with ``count`` 1 (plain self-consistency), ``score`` s,
    ``one_plus_score`` 1 + s or ``one_plus_two_score`` 1 + 2s (the four options of the authors' ``ASC.py``;
    which one the paper reports is not stated there: negtune's default is s). Ties go to the answer seen first,
    as in ``majority_vote``; None when no sample has an answer."""
    weight = {"count": lambda s: 1.0, "score": lambda s: s, "one_plus_score": lambda s: 1 + s,
              "one_plus_two_score": lambda s: 1 + 2 * s}[rule]
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    for i, (cluster, s) in enumerate(zip(clusters, scores)):
        if cluster is None:
            continue
        totals[cluster] = totals.get(cluster, 0.0) + weight(s)
        first.setdefault(cluster, i)
    if not totals:
        return None
    return first[max(totals, key=lambda c: (totals[c], -first[c]))]
