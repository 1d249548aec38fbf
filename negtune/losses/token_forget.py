"""Token-level forgetting (Taheri Ghahrizjani et al. 2025, "Forgetting: A New Mechanism Towards Better Large
Language Model Fine-tuning", TMLR 2026, arXiv:2508.04329).

The answer tokens of an SFT corpus are split into positive tokens, learned as usual, and negative tokens,
explicitly forgotten. A token's influence score compares the base model theta_0 with a reference model
theta_ref fine-tuned on a subset of the same corpus:

    I(y_t) = l_theta0(y_t) - l_ref(y_t),     l(y_t) = -log p(y_t | x, y_<t)

a token the reference learned (its loss fell) scores high. Ranked over *every* answer token of the corpus, the
top rho fraction is positive (P), the rest negative (N); the authors use rho = 0.7. Training minimises, per
batch,

    L(theta) = (1/|P_b|) sum_{t in P_b} l_theta(y_t)  -  lambda(s) (1/|N_b|) sum_{t in N_b} l_theta(y_t)

    lambda(s) = (t_max - t_min) * s / S     (s the optimizer step, S the total; t_max 0.25, t_min 1e-5)

so the ascent on negative tokens starts at zero and is bounded by its weight, at most t_max times the
positive term's. Read from the authors' code (``source_codes/token_partitioning.py``, ``finetune.py``): the
global ranking, rho's floor for the positive count, both means per batch, and lambda exactly as written there
(the t_min offset is subtracted from the slope, not added as an intercept: lambda(0) = 0). Their ablation
``ignoring`` trains on the positive tokens alone (Rho-1-style selection); rho = 1 is plain SFT.
"""

from __future__ import annotations

import torch


def influence_scores(base_logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """I(y_t) = l_theta0(y_t) - l_ref(y_t) = log p_ref(y_t) - log p_theta0(y_t), elementwise over answer tokens:
    high where the reference model learned the token."""
    return ref_logps - base_logps


def split_tokens(scores: torch.Tensor, rho: float) -> torch.Tensor:
    """The positive tokens among a corpus' answer tokens (a bool mask over the flat ``scores``, shape (N,)):
    the floor(rho N) highest influence scores, ties broken by position; every other token is negative."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    positive = torch.zeros(scores.shape, dtype=torch.bool)
    order = torch.argsort(scores.detach().cpu().float(), descending=True, stable=True)
    positive[order[: int(scores.numel() * rho)]] = True
    return positive


def forgetting_coefficient(step: int, max_steps: int, t_min: float = 1e-5, t_max: float = 0.25) -> float:
    """lambda(s) = (t_max - t_min) * s / S: zero at the first step, rising linearly (the authors' code)."""
    if max_steps <= 0:
        return 0.0
    return (t_max - t_min) * min(step, max_steps) / max_steps


def token_forget_loss(logps: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                      coefficient: float) -> torch.Tensor:
    """The batch loss from per-token log-probs ``logps`` (B, T) and the masks of positive and negative answer
    tokens (B, T):

        L = -sum(P * logps) / |P|  +  lambda * sum(N * logps) / |N|

    (the NLL mean of the positives minus lambda times the NLL mean of the negatives; a term with no token is 0.)
    """
    pos = positive.to(logps.dtype)
    neg = negative.to(logps.dtype)
    learn = -(logps * pos).sum() / pos.sum().clamp(min=1)
    forget = -(logps * neg).sum() / neg.sum().clamp(min=1)
    return learn - coefficient * forget
