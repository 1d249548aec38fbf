"""The unlearning family: gradient ascent, GradDiff, NPO (Zhang et al. 2024), SimNPO (Fan et al. 2024).

Inputs are per-sequence summed log-probs over the answer tokens, shape (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ga_loss(policy_logps: torch.Tensor, num_tokens: torch.Tensor | int | None = None) -> torch.Tensor:
    """Gradient ascent on the forget set: minimise the log-likelihood of the forget answers.

        L_GA = (1/N) * sum_i log pi_theta(y_i | x_i)      (= - mean NLL, maximising the forget NLL)

    ``num_tokens`` given: divide by the batch's answer-token count instead of B, which is exactly
    ``-outputs.loss`` of a Hugging Face model (open-unlearning's GradAscent). Same direction either way.
    """
    if num_tokens is None:
        return policy_logps.mean()
    return policy_logps.sum() / num_tokens


def graddiff_loss(forget_nll: torch.Tensor, retain_nll: torch.Tensor, gamma: float = 1.0,
                  alpha: float = 1.0) -> torch.Tensor:
    """GradDiff: ascend on the forget NLL, descend on the retain NLL (mean token NLLs).

        L = -gamma * NLL_forget + alpha * NLL_retain
    """
    return -gamma * forget_nll + alpha * retain_nll


def npo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Negative Preference Optimization (Zhang et al. 2024, eq. 3):

        L_NPO = -(2/beta) * E_forget[ log sigmoid( -beta * (log pi_theta(y|x) - log pi_ref(y|x)) ) ]

    written as (2/beta) * softplus(beta * log-ratio) for stability. Its gradient is gradient ascent's,
    scaled per sample by w = 2 * sigmoid(beta * log-ratio) (see :func:`npo_weight`), which vanishes as
    the forget likelihood falls; as beta -> 0 it tends to GA.
    """
    log_ratio = policy_logps - ref_logps
    return (2.0 / beta) * F.softplus(beta * log_ratio).mean()


@torch.no_grad()
def npo_weight(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """NPO's per-sample gradient weight relative to GA: w = 2 * sigmoid(beta * (log pi_theta - log pi_ref))."""
    return 2.0 * torch.sigmoid(beta * (policy_logps - ref_logps))


def simnpo_loss(policy_logps: torch.Tensor, lengths: torch.Tensor, beta: float = 2.5,
                gamma: float = 0.0) -> torch.Tensor:
    """SimNPO (Fan et al. 2024), reference-free with length normalisation:

        L_SimNPO = -(2/beta) * E_forget[ log sigmoid( -(beta/|y|) * log pi_theta(y|x) - gamma ) ]

    TOFU defaults: forget05 beta=2.5, forget10 beta=4.5, gamma=0 (add alpha * NLL_retain outside).
    """
    return (2.0 / beta) * F.softplus(beta * policy_logps / lengths.clamp(min=1) + gamma).mean()


def kl_ref_policy(policy_logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(pi_ref || pi_theta), summed over the vocabulary, averaged over the masked (answer) tokens.

        KL = sum_v pi_ref(v) * (log pi_ref(v) - log pi_theta(v))      (NPO+KL's retain regulariser)
    """
    ref_logp = ref_logits.float().log_softmax(-1)
    pol_logp = policy_logits.float().log_softmax(-1)
    kl = (ref_logp.exp() * (ref_logp - pol_logp)).sum(-1)
    mask = mask.to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp(min=1)
