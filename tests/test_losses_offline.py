"""Offline-trainer losses against hand-computed values and the invariants of their papers' equations (each loss's
docstring in ``negtune.losses`` cites its paper and equation)."""

import math

import pytest
import torch
import torch.nn.functional as F

from negtune.losses import (
    contrastive_rationale_loss,
    ga_loss,
    graddiff_loss,
    kl_ref_policy,
    log1m_softmax,
    negative_unlikelihood_loss,
    npo_loss,
    npo_weight,
    repeat_ngram_mask,
    sequence_logps,
    simnpo_loss,
    token_unlikelihood_loss,
)


def softplus(x):
    return math.log1p(math.exp(x))


def test_npo_hand_computed():
    policy, ref = torch.tensor([-10.0, -5.0]), torch.tensor([-8.0, -5.0])
    expected = (2 / 0.1) * (softplus(0.1 * -2.0) + softplus(0.0)) / 2  # -(2/b) log sigmoid(-b d) = (2/b) softplus(b d)
    assert npo_loss(policy, ref, beta=0.1).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(12.91286, rel=1e-5)


def test_npo_weight_falls_with_the_log_ratio():
    ref = torch.zeros(5)
    w = npo_weight(torch.tensor([-20.0, -5.0, -1.0, 0.0, 1.0]), ref, beta=0.5)
    assert torch.all(w[1:] > w[:-1]) and w[3].item() == pytest.approx(1.0) and w[0].item() < 1e-3
    # the gradient of the NPO loss w.r.t. each log-prob is exactly w / B
    policy = torch.tensor([-3.0, 2.0], requires_grad=True)
    npo_loss(policy, torch.zeros(2), beta=0.5).backward()
    assert torch.allclose(policy.grad, npo_weight(policy.detach(), torch.zeros(2), 0.5) / 2)


def test_npo_tends_to_ga_as_beta_goes_to_zero():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(11, 8), torch.nn.Linear(8, 11))
    ids = torch.randint(0, 11, (4, 6))
    labels = ids.clone()
    labels[:, :2] = -100

    def grads(loss_fn):
        model.zero_grad()
        logps, n_tok = sequence_logps(model(ids), labels)
        loss_fn(logps, n_tok).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    ref = sequence_logps(model(ids), labels)[0].detach() + torch.tensor([0.5, -2.0, 1.0, 3.0])
    g_ga = grads(lambda lp, n: ga_loss(lp, n.sum()))
    cos = {b: F.cosine_similarity(grads(lambda lp, n, b=b: npo_loss(lp, ref, beta=b)), g_ga, dim=0).item()
           for b in (5.0, 1e-4)}
    assert cos[1e-4] > 0.99999 and cos[5.0] < cos[1e-4]


def test_ga_matches_minus_hf_loss():
    torch.manual_seed(1)
    logits, labels = torch.randn(3, 7, 13), torch.randint(0, 13, (3, 7))
    labels[0, :3] = -100
    logps, n_tok = sequence_logps(logits, labels)
    hf_loss = F.cross_entropy(logits[:, :-1].reshape(-1, 13), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert ga_loss(logps, n_tok.sum()).item() == pytest.approx(-hf_loss.item(), rel=1e-5)
    assert ga_loss(torch.tensor([-2.0, -4.0])).item() == pytest.approx(-3.0)
    assert graddiff_loss(torch.tensor(2.0), torch.tensor(0.5), gamma=1.0, alpha=2.0).item() == pytest.approx(-1.0)


def test_simnpo_hand_computed():
    value = simnpo_loss(torch.tensor([-6.0]), torch.tensor([3]), beta=2.5, gamma=0.0).item()
    assert value == pytest.approx((2 / 2.5) * softplus(2.5 * -2.0), rel=1e-6)
    with_gamma = simnpo_loss(torch.tensor([-6.0]), torch.tensor([3]), beta=2.5, gamma=1.0, gamma_form="paper").item()
    assert with_gamma == pytest.approx(0.8 * softplus(-5.0 + 1.0), rel=1e-6)


def test_simnpo_margin_forms_hand_computed():
    """beta 2.5, margin 1; row 1: log pi = -6 over |y| = 3 tokens, the paper's -(2/beta) log sigmoid(-(beta/|y|) log pi
    - g) = 0.8 ln(1 + e^-4), the reference code's -(2/beta) log sigmoid(beta (NLL/|y| - g)) = 0.8 ln(1 + e^-2.5);
    row 2: log pi = -2 over 4 tokens, 0.8 ln(1 + e^-0.25) and 0.8 ln(1 + e^1.25)."""
    logp, n = torch.tensor([-6.0, -2.0]), torch.tensor([3, 4])
    paper = simnpo_loss(logp, n, beta=2.5, gamma=1.0, gamma_form="paper").item()
    reference = simnpo_loss(logp, n, beta=2.5, gamma=1.0, gamma_form="reference").item()
    assert paper == pytest.approx(0.8 * (math.log1p(math.exp(-4.0)) + math.log1p(math.exp(-0.25))) / 2, rel=1e-6)
    assert reference == pytest.approx(0.8 * (math.log1p(math.exp(-2.5)) + math.log1p(math.exp(1.25))) / 2, rel=1e-6)
    assert (paper, reference) == pytest.approx((0.2376357, 0.6323275), rel=1e-6)
    assert simnpo_loss(logp, n, beta=2.5, gamma=1.0).item() == pytest.approx(reference)  # the default form
    # at margin 0 (TOFU) the forms agree
    assert simnpo_loss(logp, n, gamma=0.0, gamma_form="paper").item() == pytest.approx(simnpo_loss(logp, n).item())
    with pytest.raises(ValueError, match="gamma_form"):
        simnpo_loss(logp, n, gamma_form="code")


def test_kl_ref_policy_hand_computed():
    ref = torch.log(torch.tensor([[[0.5, 0.5]]]))
    pol = torch.log(torch.tensor([[[0.25, 0.75]]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_ref_policy(pol, ref, torch.ones(1, 1)).item() == pytest.approx(expected, rel=1e-6)
    assert kl_ref_policy(ref, ref, torch.ones(1, 1)).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_ref_policy_reductions_hand_computed():
    """Two positions: KL_0 = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3) (say a prompt position),
    KL_1 = 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) (the answer). open-unlearning's batchmean averages every position,
    answer_mean only the masked ones."""
    ref = torch.log(torch.tensor([[[0.5, 0.5], [0.8, 0.2]]]))
    pol = torch.log(torch.tensor([[[0.25, 0.75], [0.5, 0.5]]]))
    k0, k1 = 0.5 * math.log(4 / 3), 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    answer = torch.tensor([[False, True]])
    assert kl_ref_policy(pol, ref).item() == pytest.approx((k0 + k1) / 2, rel=1e-6)  # 0.1682930
    assert kl_ref_policy(pol, ref, answer).item() == pytest.approx(0.1682930, rel=1e-6)  # batchmean ignores the mask
    assert kl_ref_policy(pol, ref, answer, reduction="answer_mean").item() == pytest.approx(k1, rel=1e-6)  # 0.1927448
    # batchmean divides by B*T positions, not by B sequences: two copies of the batch give the same value
    assert kl_ref_policy(pol.repeat(2, 1, 1), ref.repeat(2, 1, 1)).item() == pytest.approx((k0 + k1) / 2, rel=1e-6)
    # and it is F.kl_div(..., reduction="batchmean", log_target=True) over the flattened logits, as open-unlearning
    torch.manual_seed(0)
    p_logits, r_logits = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    flat = lambda z: z.log_softmax(-1).view(-1, 7)  # noqa: E731
    expected = F.kl_div(flat(p_logits), flat(r_logits), reduction="batchmean", log_target=True)
    assert kl_ref_policy(p_logits, r_logits).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs the answer-token mask"):
        kl_ref_policy(pol, ref, reduction="answer_mean")


def test_log1m_softmax_matches_float64_and_is_stable_at_p_one():
    torch.manual_seed(2)
    logits = torch.randn(4, 5, 9) * 3
    idx = torch.randint(0, 9, (4, 5, 3))
    exact = torch.log1p(-torch.softmax(logits.double(), -1).gather(-1, idx))
    assert torch.allclose(log1m_softmax(logits, idx).double(), exact, atol=1e-5)
    # p -> 1: the naive clamp has zero gradient and log1mexp of fp32 log-softmax is -inf; ours is neither
    z = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    value = log1m_softmax(z, torch.tensor([[0]]))
    assert torch.isfinite(value).all()
    assert value.item() == pytest.approx(math.log(2) - 40.0, abs=1e-4)  # log(2 e^0 / e^40)
    (-value).sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0.5
    naive = -torch.log(torch.clamp(1 - torch.softmax(z, -1)[0, 0], min=1e-5))
    zz = z.detach().clone().requires_grad_(True)
    (-torch.log(torch.clamp(1 - torch.softmax(zz, -1)[0, 0], min=1e-5))).backward()
    assert naive.item() == pytest.approx(-math.log(1e-5)) and zz.grad.abs().sum() == 0


def test_negative_unlikelihood_hand_computed():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # p(1) = 3/4 ; p = 1/2
    labels = torch.tensor([[1, 0]])
    assert negative_unlikelihood_loss(logits, labels, torch.tensor([[1, 0]])).item() == pytest.approx(math.log(4))
    both = negative_unlikelihood_loss(logits, labels, torch.tensor([[1, 1]])).item()
    assert both == pytest.approx((math.log(4) + math.log(2)) / 2)


def _token_ul_reference(logits, labels, mask, alpha):
    """Direct transcription of Welleck's token UL, one sequence at a time (candidates never cross)."""
    total = mle = ul = 0.0
    probs = torch.softmax(logits.double(), -1)
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            if not mask[b, t]:
                continue
            y = labels[b, t].item()
            mle -= math.log(probs[b, t, y])
            cands = {labels[b, j].item() for j in range(t) if mask[b, j]} - {y}
            ul -= sum(math.log(1 - probs[b, t, c]) for c in cands)
    n = mask.sum().item()
    total = (mle + alpha * ul) / n
    return total, mle / n, ul / n


def test_token_unlikelihood_per_sequence_candidates():
    torch.manual_seed(3)
    logits = torch.randn(2, 6, 7)
    labels = torch.tensor([[1, 2, 1, 3, 2, 4], [5, 6, 5, 5, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]).bool()
    total, mle, ul = token_unlikelihood_loss(logits, labels, mask, alpha=1.0)
    ref = _token_ul_reference(logits, labels, mask, 1.0)
    assert [total.item(), mle.item(), ul.item()] == pytest.approx(list(ref), rel=1e-5)
    # flattening the batch (the reference code's bug) would make tokens 1-4 candidates in sequence 2
    leaky = list(_token_ul_reference(logits.reshape(1, 12, 7), labels.reshape(1, 12), mask.reshape(1, 12), 1.0))
    assert ul.item() != pytest.approx(leaky[2], rel=1e-3)


def test_repeat_ngram_mask():
    ids = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4, 5], [7, 7, 7, 7, 7, 8, 9, 9, 9]])
    m = repeat_ngram_mask(ids, n=4)
    # every token of the repeated n-gram, as the reference's ngram_repeat_mask (tests/test_ul_contrastive.py)
    assert m[0].nonzero().flatten().tolist() == [4, 5, 6, 7]
    assert m[1].nonzero().flatten().tolist() == [1, 2, 3, 4]
    assert repeat_ngram_mask(torch.tensor([[5, 5, 5]]), n=2).tolist() == [[False, True, True]]


def test_contrastive_hand_computed():
    loss, parts = contrastive_rationale_loss(
        pos_nll=torch.tensor([1.0, 3.0]), neg_nll=torch.tensor([1.0, 5.0]),
        pos_weights=torch.tensor([1.0, 3.0]), delta=3.0,
    )
    assert parts["positive"].item() == pytest.approx(2.5) and parts["negative"].item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx(0.5 * 2.5 + 0.5 * 1.0)
    # a negative already beyond the margin gets no gradient: it cannot be pushed to divergence
    neg = torch.tensor([5.0, 2.0], requires_grad=True)
    contrastive_rationale_loss(torch.tensor([1.0]), neg)[0].backward()
    assert neg.grad[0] == 0 and neg.grad[1] < 0
