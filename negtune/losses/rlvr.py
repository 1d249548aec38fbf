"""RLVR losses that learn from negatives: group advantages (GRPO, NGRPO) and NFT's policy loss.

Rewards come in group order: ``rewards[g * G : (g + 1) * G]`` are the G samples of prompt g. A NaN reward
(the verifier could not decide) is excluded from the group statistics and gets advantage 0.
"""

from __future__ import annotations

import torch


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards are not a whole number of groups of {group_size} "
                         "(the batch size must be a multiple of the number of generations)")
    return rewards.float().view(-1, group_size)


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """GRPO (Shao et al. 2024): A_i = (r_i - mean_g r) / (std_g r + 1e-4), std unbiased, as TRL computes it.
    ``scale=False`` gives Dr.GRPO's unscaled A_i = r_i - mean_g r."""
    g = _groups(rewards, group_size)
    valid = ~torch.isnan(g)
    n = valid.sum(1, keepdim=True)
    mean = torch.where(valid, g, 0).sum(1, keepdim=True) / n.clamp(min=1)
    adv = g - mean
    if scale:
        var = torch.where(valid, (g - mean) ** 2, 0).sum(1, keepdim=True) / (n - 1).clamp(min=1)
        adv = adv / (var.sqrt() + 1e-4)
    return torch.nan_to_num(adv, nan=0.0).view(-1)


def ngrpo_advantages(rewards: torch.Tensor, group_size: int, r_max: float = 1.0) -> torch.Tensor:
    """NGRPO advantage calibration (Nan et al. 2025): one *virtual* sample with the maximum reward joins each
    group's statistics only (it is never trained on):

        mu' = (sum_i r_i + r_max) / (G + 1),   sigma' = std(r_1..r_G, r_max) (unbiased: divisor G),
        A_i = (r_i - mu') / (sigma' + 1e-6)

    All-wrong groups get A != 0 (G=8: -1/3 each); all-correct groups get A = 0.
    """
    g = _groups(rewards, group_size)
    valid = ~torch.isnan(g)
    n = valid.sum(1, keepdim=True)
    mean = (torch.where(valid, g, 0).sum(1, keepdim=True) + r_max) / (n + 1)
    sq = torch.where(valid, (g - mean) ** 2, 0).sum(1, keepdim=True) + (r_max - mean) ** 2
    std = (sq / n.clamp(min=1)).sqrt()
    return torch.nan_to_num((g - mean) / (std + 1e-6), nan=0.0).view(-1)


def group_pass_rates(rewards: torch.Tensor, group_size: int, threshold: float = 0.5) -> torch.Tensor:
    """Per-sample r-hat: the fraction of its group's decided samples with reward > threshold."""
    g = _groups(rewards, group_size)
    valid = ~torch.isnan(g)
    pos = torch.where(valid, g > threshold, False).float().sum(1, keepdim=True)
    rate = pos / valid.sum(1, keepdim=True).clamp(min=1)
    return rate.expand_as(g).reshape(-1)


def nft_prompt_weight(pass_rate: torch.Tensor, kind: str = "1-r") -> torch.Tensor:
    """NFT's prompt weight: omega(q) = 1 - r-hat (default), or sqrt((1 - r-hat) / r-hat) ("grpo"), with which
    on-policy NFT equals GRPO."""
    if kind == "1-r":
        return 1.0 - pass_rate
    if kind == "grpo":
        return ((1.0 - pass_rate) / pass_rate.clamp(min=1e-6)).sqrt()
    raise ValueError(f"unknown NFT prompt weight {kind!r}; expected '1-r' or 'grpo'")


def nft_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, is_positive: torch.Tensor,
                   pass_rate: torch.Tensor, eps: float = 1.0, clip: tuple[float, float] = (0.02, 0.98),
                   neg_weight: float = 1.0) -> torch.Tensor:
    """Negative-aware Fine-Tuning (Chen et al. 2025), per-token loss (B, T) before masking and prompt weighting.

        R_t = pi_theta(a_t | q, a_<t) / pi_old(a_t | q, a_<t)          (log-ratio clamped at 10 before exp)
        positive tokens:  -log R_t
        negative tokens:  -log max_v( (1 - r-hat * R_t) / (1 - r-hat), eps )
        max_v(x, eps) = x + stopgrad(max(x, eps) - x)                     (value clipped, gradient kept)

    ``is_positive`` (B,), ``pass_rate`` r-hat (B,) clamped to ``clip``. ``neg_weight=0`` gives RFT.
    On-policy (R = 1) the gradient equals Dr.GRPO's with advantages +(1 - r-hat) / -r-hat once weighted by
    omega = 1 - r-hat. Off-policy (several updates per rollout) it does not: per token and weighted by omega,
    d loss / d log pi is -omega for a positive (Dr.GRPO: -omega R) and omega r R / (1 - r R) for a negative
    with R <= 1 (Dr.GRPO: r R); for R > 1 (x below eps = 1) the clipped value keeps Dr.GRPO's r R.
    """
    r = pass_rate.float().clamp(*clip).unsqueeze(-1)  # (B, 1)
    log_ratio = torch.clamp(logps - old_logps, max=10.0)
    ratio = log_ratio.exp()
    pos_loss = -log_ratio
    x = (1.0 - r * ratio) / (1.0 - r)
    x_clipped = x + (torch.clamp(x, min=eps) - x).detach()
    neg_loss = -torch.log(x_clipped)
    positive = is_positive.bool().unsqueeze(-1)
    return torch.where(positive, pos_loss, neg_weight * neg_loss)
