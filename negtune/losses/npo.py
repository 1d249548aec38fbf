"""The unlearning family: gradient ascent, GradDiff, NPO (Zhang et al. 2024), SimNPO (Fan et al. 2024).

Inputs are per-sequence summed log-probs over the answer tokens, shape (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from negtune.losses.reweight import weighted_mean


def ga_loss(policy_logps: torch.Tensor, num_tokens: torch.Tensor | int | None = None,
            weights: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient ascent on the forget set: minimise the log-likelihood of the forget answers.

        L_GA = (1/N) * sum_i log pi_theta(y_i | x_i)      (= - mean NLL, maximising the forget NLL)

    ``num_tokens`` given: divide by the batch's answer-token count instead of B, which is exactly
    ``-outputs.loss`` of a Hugging Face model (open-unlearning's GradAscent). Same direction either way.
    ``weights`` (B,), mean 1 (LoReUn, :mod:`negtune.losses.reweight`): each example's term scaled by w_i.
    """
    if weights is not None:
        policy_logps = weights * policy_logps
    if num_tokens is None:
        return policy_logps.mean()
    return policy_logps.sum() / num_tokens


def graddiff_loss(forget_nll: torch.Tensor, retain_nll: torch.Tensor, gamma: float = 1.0,
                  alpha: float = 1.0) -> torch.Tensor:
    """GradDiff: ascend on the forget NLL, descend on the retain NLL (mean token NLLs).

        L = -gamma * NLL_forget + alpha * NLL_retain
    """
    return -gamma * forget_nll + alpha * retain_nll


def npo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Negative Preference Optimization (Zhang et al. 2024, eq. 3):

        L_NPO = -(2/beta) * E_forget[ log sigmoid( -beta * (log pi_theta(y|x) - log pi_ref(y|x)) ) ]

    written as (2/beta) * softplus(beta * log-ratio) for stability. Its gradient is gradient ascent's,
    scaled per sample by w = 2 * sigmoid(beta * log-ratio) (see :func:`npo_weight`), which vanishes as
    the forget likelihood falls; as beta -> 0 it tends to GA.
    ``weights`` (B,), mean 1 (LoReUn): E_forget becomes the weighted mean (1/B) sum_i w_i (...).
    """
    log_ratio = policy_logps - ref_logps
    return (2.0 / beta) * weighted_mean(F.softplus(beta * log_ratio), weights)


@torch.no_grad()
def npo_weight(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """NPO's per-sample gradient weight relative to GA: w = 2 * sigmoid(beta * (log pi_theta - log pi_ref))."""
    return 2.0 * torch.sigmoid(beta * (policy_logps - ref_logps))


def simnpo_loss(policy_logps: torch.Tensor, lengths: torch.Tensor, beta: float = 2.5, gamma: float = 0.0,
                gamma_form: str = "reference", weights: torch.Tensor | None = None) -> torch.Tensor:
    """SimNPO (Fan et al. 2024), reference-free with length normalisation. The paper writes

        L_SimNPO = -(2/beta) * E_forget[ log sigmoid( -(beta/|y|) * log pi_theta(y|x) - gamma ) ]     (gamma_form="paper")

    while the SimNPO authors' code (OPTML-Group/Unlearn-Simple, TOFU/dataloader.py) and open-unlearning
    (src/trainer/unlearn/simnpo.py) compute -(2/beta) * log sigmoid(beta * (NLL(y|x)/|y| - gamma)), i.e.

        L = -(2/beta) * E_forget[ log sigmoid( -(beta/|y|) * log pi_theta(y|x) - beta * gamma ) ]  (gamma_form="reference")

    with the margin gamma scaled by beta. "reference" is the default: every published SimNPO setting (TOFU, MUSE,
    WMDP) was tuned with that code, so a gamma copied from it means what its authors meant. The two agree at
    gamma = 0, the TOFU setting. Both are written as (2/beta) * softplus(...) for stability.
    TOFU defaults: forget05 beta=2.5, forget10 beta=4.5, gamma=0 (add alpha * NLL_retain outside).
    ``weights`` (B,), mean 1 (LoReUn): E_forget becomes the weighted mean.
    """
    if gamma_form not in ("reference", "paper"):
        raise ValueError(f"gamma_form must be 'reference' or 'paper', got {gamma_form!r}")
    margin = beta * gamma if gamma_form == "reference" else gamma
    return (2.0 / beta) * weighted_mean(F.softplus(beta * policy_logps / lengths.clamp(min=1) + margin), weights)


def kl_ref_policy(policy_logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor | None = None,
                  reduction: str = "batchmean") -> torch.Tensor:
    """NPO+KL's retain regulariser KL(pi_ref || pi_theta), at each position t of (B, T, V) logits

        KL_t = sum_v pi_ref(v|t) * (log pi_ref(v|t) - log pi_theta(v|t))

    reduced over positions as

    - ``"batchmean"`` (open-unlearning's ``compute_kl_divergence``, src/trainer/utils.py):
      KL = sum_{b,t} KL_{b,t} / (B*T) over *every* position given (prompt, answer and padding alike; ``mask``
      unused). That is ``F.kl_div(log pi_theta.view(-1, V), log pi_ref.view(-1, V), reduction="batchmean",
      log_target=True)``: the flattened view makes the B*T positions kl_div's "batch", so it is a mean per
      position, not per sequence, and its value depends on the batch's padding;
    - ``"answer_mean"`` (negtune's earlier form): KL = sum_{b,t} m_{b,t} KL_{b,t} / sum m over the answer tokens
      ``mask``, so only the answer distributions are held to pi_ref.
    """
    if reduction not in ("batchmean", "answer_mean"):
        raise ValueError(f"reduction must be 'batchmean' or 'answer_mean', got {reduction!r}")
    ref_logp = ref_logits.float().log_softmax(-1)
    pol_logp = policy_logits.float().log_softmax(-1)
    kl = (ref_logp.exp() * (ref_logp - pol_logp)).sum(-1)
    if reduction == "batchmean":
        return kl.mean()
    if mask is None:
        raise ValueError("reduction 'answer_mean' needs the answer-token mask")
    mask = mask.to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp(min=1)
