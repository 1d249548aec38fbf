"""Unlikelihood training (Welleck et al. 2019) and negative-completion unlikelihood.

The key quantity is log(1 - p_v). ``-log(clamp(1 - exp(logp), eps))`` has zero gradient exactly where
pushing down matters (p -> 1), and ``log1mexp`` of an fp32 log-softmax is -inf there. Here it is computed
from the logits: for the arg-max token, log(1 - p_v) = logsumexp_{j != v} z_j - logsumexp_j z_j (exact, with
a useful gradient at any p); for any other token p_v <= 1/2, where log1p(-p_v) is already accurate.
"""

from __future__ import annotations

import torch


def log1m_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(logits)[index]) for ``logits`` (..., V) and ``index`` (..., K); returns (..., K)."""
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # (..., 1)
    top = logits.argmax(dim=-1, keepdim=True)  # (..., 1)
    without_top = logits.scatter(-1, top, float("-inf"))
    rest_of_top = torch.logsumexp(without_top, dim=-1, keepdim=True) - lse  # log(1 - p_top), exact
    logp = logits.gather(-1, index) - lse
    # p <= 1/2 for every non-arg-max token; clamp keeps the unused branch finite under torch.where
    other = torch.log1p(-logp.clamp(max=-0.6931).exp())
    return torch.where(index == top, rest_of_top.expand_as(logp), other)


def negative_unlikelihood_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked tokens of -log(1 - p(label_t)): push every token of a negative completion down.

        L_UL = (1/|M|) * sum_{t in M} -log(1 - p_theta(y_t | x, y_<t))

    ``logits`` (B, T, V) already aligned with ``labels`` (B, T) (use ``shift_for_causal_lm``).
    """
    safe = labels.masked_fill(~mask.bool(), 0)
    ul = -log1m_softmax(logits, safe.unsqueeze(-1)).squeeze(-1)
    m = mask.to(ul.dtype)
    return (ul * m).sum() / m.sum().clamp(min=1)


def token_unlikelihood_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                            alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Welleck et al. 2019 token-level unlikelihood, with candidates taken *per sequence*:

        L = sum_t [ -log p(y_t | y_<t) - alpha * sum_{c in C_t} log(1 - p(c | y_<t)) ]
        C_t = { y_j : j < t, j in mask, in the same sequence } minus { y_t }

    (the reference code flattens the batch first, so its candidates leak across sequences).
    Returns (total, mle, ul), each normalised by the number of target tokens.
    """
    B, T, _ = logits.shape
    mask = mask.bool()
    safe = labels.masked_fill(~mask, 0)
    lse = torch.logsumexp(logits.float(), dim=-1)
    mle = -((logits.float().gather(-1, safe.unsqueeze(-1)).squeeze(-1) - lse) * mask).sum()
    # candidate matrix (B, T, T): row t holds previous targets j < t of the same sequence
    prev = safe.unsqueeze(1).expand(B, T, T)
    valid = torch.ones(T, T, dtype=torch.bool, device=labels.device).tril(-1).unsqueeze(0)
    valid = valid & mask.unsqueeze(1) & mask.unsqueeze(2) & (prev != safe.unsqueeze(2))
    # a token repeated in the context is one candidate, not several (the reference scatters candidates
    # into a vocabulary-sized indicator): keep one occurrence per distinct id, found by sorting each row
    sorted_prev, order = prev.masked_fill(~valid, -1).sort(dim=-1)
    dup = torch.zeros_like(valid)
    dup[..., 1:] = sorted_prev[..., 1:] == sorted_prev[..., :-1]
    first = ~dup.scatter(-1, order, dup)
    cand_mask = valid & first
    ul_terms = -log1m_softmax(logits, prev) * cand_mask
    ul = ul_terms.sum()
    n = mask.sum().clamp(min=1)
    return (mle + alpha * ul) / n, mle / n, ul / n


def repeat_ngram_mask(token_ids: torch.Tensor, n: int = 4, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sequence-level UL candidates (Welleck et al. 2019, C^t_repeat-n): True at *every* token of an n-gram
    that already occurred earlier in the same sequence (as the reference ``ngram_repeat_mask`` marks
    ``mask[j:j+n]``), not only at the token that completes it.

    An n-gram counts as seen once it has *started* earlier, so overlapping repeats (``7 7 7 7 7`` for n = 4)
    are caught, as in the reference code. Unlike the reference loop (``range(len(x) - n)``), the last n-gram
    of the sequence is checked too. ``mask`` (B, T): valid tokens; an n-gram touching an invalid one is skipped.
    """
    B, T = token_ids.shape
    out = torch.zeros(B, T, dtype=torch.bool, device=token_ids.device)
    rows = token_ids.tolist()
    valid = mask.bool().tolist() if mask is not None else [[True] * T for _ in range(B)]
    for b in range(B):
        seen: set[tuple[int, ...]] = set()
        for s in range(T - n + 1):
            if not all(valid[b][s : s + n]):
                continue
            gram = tuple(rows[b][s : s + n])
            if gram in seen:
                out[b, s : s + n] = True
            seen.add(gram)
    return out


def sequence_unlikelihood_loss(logits: torch.Tensor, tokens: torch.Tensor, candidates: torch.Tensor,
                               valid: torch.Tensor) -> torch.Tensor:
    """Welleck et al. 2019 sequence-level unlikelihood on the model's own continuation y-hat:

        L^t_ULS = - sum_{c in C^t} log(1 - p_theta(c | x, y-hat_<t))
        C^t     = { y-hat_t } if y-hat_t lies in an n-gram of y-hat that already occurred earlier in y-hat
                  (the paper's C^t_repeat-n; computed by ``repeat_ngram_mask`` as the reference code does),
                  else {}
        L_ULS   = (1/|valid|) * sum_t L^t_ULS

    normalised by *all* continuation tokens (the reference's ``ntokens = pred_toks.numel()``), not by the
    repeated ones: the push is proportional to how much of the continuation repeats (at 20% repetition, a
    normaliser over the repeated tokens only would be 5x stronger). ``logits`` (B, T, V) aligned with
    ``tokens`` (B, T); ``candidates`` and ``valid`` (B, T) boolean; a token must be valid to be a candidate.
    """
    valid = valid.bool()
    cand = candidates.bool() & valid
    safe = tokens.masked_fill(~cand, 0)
    ul = -log1m_softmax(logits, safe.unsqueeze(-1)).squeeze(-1)
    return (ul * cand.to(ul.dtype)).sum() / valid.sum().clamp(min=1)
