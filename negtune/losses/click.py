"""Click (Zheng et al. 2023, "Click: Controllable Text Generation with Sequence Likelihood Contrastive
Learning", Findings of ACL, arXiv:2306.03350).

The language-modelling loss on the positive (gold or acceptable) texts plus a max-margin contrastive loss on
sequence likelihoods, over pairs (y+, y-) of continuations of one prompt x:

    L = L_LM + alpha * L_CL,    L_LM = token-mean NLL of the positives,
    L_CL = mean_{pairs} max(0, gamma - log p(y+|x) + log p(y-|x)),   log p(y|x) = sum_t log p(y_t | x, y_<t)

The sequence log-likelihood is the *sum* over the continuation's tokens (the authors' ``gpt2_contrast`` models:
``pos_loss.sum(-1)``, ``neg_loss.sum(-1)``), so gamma is in nats per sequence (15 for their 64-128-token
WikiText continuations, 20 for dialogue detoxification); the hinge is averaged over every pair of the batch.
In the authors' code the margin is the ``alpha`` command-line argument and the weight a constant ``GAMMA``
(0.3 for repetition, 0.5 detoxification, 0.1 sentiment); negtune names them as the paper does: margin gamma,
weight alpha.
"""

from __future__ import annotations

import torch


def click_loss(pos_logps: torch.Tensor, neg_logps: torch.Tensor, margin: float = 15.0) -> torch.Tensor:
    """Click's contrastive term, from the summed continuation log-probs of each pair's positive and negative
    (shape (P,)):

        L_CL = (1/P) sum_p max(0, gamma - log p(y+_p|x_p) + log p(y-_p|x_p))

    0 (with a graph) when the batch has no pair."""
    if pos_logps.numel() == 0:
        return pos_logps.sum() * 0.0
    return torch.clamp(margin - pos_logps + neg_logps, min=0.0).mean()


def likelihood_ranked_pairs(likelihoods: list[float], labels: list[bool], max_pairs: int = 3) -> list[tuple[int, int]]:
    """Click's likelihood ranking-based pairs for the continuations of one prompt: the positive the model finds
    most likely, paired with the (up to ``max_pairs``) negatives it finds most likely, most likely first.

    The paper ranks a prompt's samples by the generating model's sequence likelihood, so that the positive is
    the one the model is closest to producing and the negatives are the ones it would produce instead; how
    many negatives, and the pairing beyond that, could not be read from the paper (the released code's cap is
    3 negatives per prompt for repetition, 5 for sentiment): these are negtune's choices. No pair without a
    positive and a negative.
    """
    pos = [i for i, y in enumerate(labels) if y]
    neg = sorted((i for i, y in enumerate(labels) if not y), key=lambda i: -likelihoods[i])
    if not pos or not neg:
        return []
    best = max(pos, key=lambda i: likelihoods[i])
    return [(best, j) for j in neg[:max_pairs]]
