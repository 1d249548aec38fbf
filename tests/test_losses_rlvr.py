"""RLVR losses: NGRPO worked examples, NFT invariants (on-policy = Dr.GRPO, neg_weight 0 = RFT)."""

import math

import pytest
import torch
import torch.nn.functional as F

from negtune.losses import (
    group_pass_rates,
    grpo_advantages,
    nft_prompt_weight,
    nft_token_loss,
    ngrpo_advantages,
)


def test_ngrpo_worked_examples():
    one = torch.tensor([1.0] + [0.0] * 7)
    a = ngrpo_advantages(one, 8)
    assert a[0].item() == pytest.approx(1.76, abs=0.005) and a[1].item() == pytest.approx(-0.50, abs=0.005)
    assert torch.allclose(ngrpo_advantages(torch.zeros(8), 8), torch.full((8,), -1 / 3), atol=1e-5)
    assert torch.allclose(ngrpo_advantages(torch.ones(8), 8), torch.zeros(8), atol=1e-5)
    g = grpo_advantages(one, 8)  # GRPO on the same group: +2.47 / -0.35
    assert g[0].item() == pytest.approx(2.47, abs=0.005) and g[1].item() == pytest.approx(-0.35, abs=0.005)
    assert torch.allclose(grpo_advantages(torch.zeros(8), 8), torch.zeros(8))  # GRPO: no signal when all wrong


def test_advantages_are_per_group_and_skip_undecided():
    rewards = torch.tensor([1.0, 0.0, float("nan"), 0.0, 1.0, 1.0, 1.0, 1.0])
    a = ngrpo_advantages(rewards, 4)
    assert a[2] == 0.0  # undecided: excluded, no signal
    ref = ngrpo_advantages(torch.tensor([1.0, 0.0, 0.0]), 3)  # the same group without the undecided sample
    assert torch.allclose(a[[0, 1, 3]], ref, atol=1e-6)
    assert torch.allclose(a[4:], torch.zeros(4), atol=1e-5)
    assert grpo_advantages(rewards, 4, scale=False)[0].item() == pytest.approx(1 - 1 / 3)
    with pytest.raises(ValueError, match="multiple of the number of generations"):
        ngrpo_advantages(torch.zeros(6), 4)


def test_group_pass_rates_and_prompt_weights():
    r = group_pass_rates(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]), 3)
    assert torch.allclose(r, torch.tensor([1 / 3] * 3 + [1 / 3] * 3))
    assert nft_prompt_weight(torch.tensor([0.25]))[0].item() == pytest.approx(0.75)
    assert nft_prompt_weight(torch.tensor([0.25]), "grpo")[0].item() == pytest.approx(math.sqrt(3))


def test_nft_hand_computed_values():
    logps, old = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])  # R = 2
    pos = nft_token_loss(logps, old, torch.tensor([True]), torch.tensor([0.5]))
    assert pos.item() == pytest.approx(-math.log(2))
    # negative, r-hat 0.25, R = 2: x = (1 - 0.5) / 0.75 = 2/3 < eps=1 -> value clipped to 1 -> loss 0
    neg = nft_token_loss(logps, old, torch.tensor([False]), torch.tensor([0.25]))
    assert neg.item() == pytest.approx(0.0, abs=1e-7)
    # with eps small the value is the real one: -log(2/3)
    neg_small = nft_token_loss(logps, old, torch.tensor([False]), torch.tensor([0.25]), eps=1e-3)
    assert neg_small.item() == pytest.approx(-math.log(2 / 3))
    # R = 1/2: x = (1 - 0.125) / 0.75 = 7/6 > 1 -> -log(7/6)
    neg_low = nft_token_loss(old, logps, torch.tensor([False]), torch.tensor([0.25]))
    assert neg_low.item() == pytest.approx(-math.log(7 / 6))


def _policy_and_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(13, 8), torch.nn.Linear(8, 13))
    ids = torch.randint(0, 13, (6, 5))
    mask = torch.ones(6, 4)
    mask[2, 3] = 0
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])  # two groups of 3: r-hat 1/3 and 2/3
    return model, ids, mask, rewards


def _token_logps(model, ids):
    logits = model(ids[:, :-1])
    return logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def _grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_on_policy_nft_equals_dr_grpo_gradient():
    model, ids, mask, rewards = _policy_and_batch()
    rate = group_pass_rates(rewards, 3)
    positive = rewards > 0.5
    norm = ids.shape[0] * 4  # Dr.GRPO: sum over tokens / (B * max_completion_length), for both
    logps = _token_logps(model, ids)
    per_token = nft_token_loss(logps, logps.detach(), positive, rate) * nft_prompt_weight(rate)[:, None]
    g_nft = _grad(model, (per_token * mask).sum() / norm)
    adv = torch.where(positive, 1 - rate, -rate)[:, None]
    logps = _token_logps(model, ids)
    dr_grpo = -(torch.exp(logps - logps.detach()) * adv)
    g_dr = _grad(model, (dr_grpo * mask).sum() / norm)
    assert F.cosine_similarity(g_nft, g_dr, dim=0).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(g_nft, g_dr, atol=1e-6)


def test_neg_weight_zero_is_rft():
    model, ids, mask, rewards = _policy_and_batch()
    rate, positive = group_pass_rates(rewards, 3), rewards > 0.5
    logps = _token_logps(model, ids)
    g_rft = _grad(model, (nft_token_loss(logps, logps.detach(), positive, rate, neg_weight=0.0) * mask).sum())
    logps = _token_logps(model, ids)
    g_nll = _grad(model, -(logps * mask * positive[:, None]).sum())
    assert torch.allclose(g_rft, g_nll, atol=1e-6)


def test_grpo_weight_makes_nft_equal_grpo_direction():
    model, ids, mask, rewards = _policy_and_batch()
    rate, positive = group_pass_rates(rewards, 3), rewards > 0.5
    logps = _token_logps(model, ids)
    per_token = nft_token_loss(logps, logps.detach(), positive, rate) * nft_prompt_weight(rate, "grpo")[:, None]
    g_nft = _grad(model, (per_token * mask).sum())
    adv = grpo_advantages(rewards, 3)[:, None]
    logps = _token_logps(model, ids)
    g_grpo = _grad(model, (-(torch.exp(logps - logps.detach()) * adv) * mask).sum())
    assert F.cosine_similarity(g_nft, g_grpo, dim=0).item() == pytest.approx(1.0, abs=1e-3)


def test_off_policy_nft_is_not_dr_grpo():
    """pi_old != pi_theta (several updates per rollout): NFT's gradient leaves Dr.GRPO's. Per token, weighted by
    omega = 1 - r, d loss / d log pi is -omega for a positive (Dr.GRPO: -omega R) and for a negative
    omega r R / (1 - r R) while (1 - r R) / (1 - r) >= eps = 1, i.e. R <= 1, else the clipped value's gradient
    omega r R / (1 - r) = r R (Dr.GRPO: r R): equal at R = 1 only, and for negatives above 1."""
    r, omega = 0.25, 0.75
    for ratio in (1.0, 1.5, 0.5):
        for positive in (True, False):
            logp = torch.tensor([[math.log(0.4)]], requires_grad=True)
            old = logp.detach() - math.log(ratio)
            loss = nft_token_loss(logp, old, torch.tensor([positive]), torch.tensor([r])) * omega
            loss.sum().backward()
            if positive:
                nft, dr = -omega, -omega * ratio
            else:
                nft = omega * r * ratio / (1 - r * ratio) if ratio <= 1 else r * ratio
                dr = r * ratio
            assert logp.grad.item() == pytest.approx(nft, rel=1e-5)
            assert (nft == pytest.approx(dr)) == (ratio == 1.0 or (ratio > 1 and not positive))
    model, ids, mask, rewards = _policy_and_batch()
    rate, positive = group_pass_rates(rewards, 3), rewards > 0.5
    with torch.no_grad():
        old = _token_logps(model, ids) + 0.3 * torch.randn(6, 4)  # the sampler: a few updates ago
    logps = _token_logps(model, ids)
    per_token = nft_token_loss(logps, old, positive, rate) * nft_prompt_weight(rate)[:, None]
    g_nft = _grad(model, (per_token * mask).sum())
    adv = torch.where(positive, 1 - rate, -rate)[:, None]
    logps = _token_logps(model, ids)
    g_dr = _grad(model, (-(torch.exp(logps - old) * adv) * mask).sum())
    assert F.cosine_similarity(g_nft, g_dr, dim=0).item() < 0.999
