"""Goldfish loss (Hans et al. 2024, "Be like a Goldfish, Don't Memorize! Mitigating Memorization in Generative
LLMs", arXiv:2406.10209): leave a pseudo-random 1 in k tokens out of the next-token loss, chosen by a hash of
the tokens around it, so the model never trains on those tokens and cannot reproduce a training passage
verbatim; a passage seen again drops the same tokens (the choice depends on the text, not on the step).

    L_goldfish(theta) = -(1 / |G|) sum_i G_i log P_theta(x_i | x_<i),   G_i = 0 for a dropped token, else 1

(|G| = the kept tokens: a mean over the loss tokens that remain, as their ``chunked_cross_entropy``).
The drop rule follows the authors' code (github.com/ahans30/goldfish-loss, ``lit_gpt/utils.py``,
``apply_goldfish``), read for this port:

- ``hash`` (their ``hash-table``, the strategy their launch scripts run): a fixed table of 1,000,003 uniform
  values (generator seed 2971215073, drawn on the CPU: their code draws it on the training device, and a CUDA
  generator gives other values); token i is dropped when ``table[prod(x_{i-h+1..i}) mod 1,000,003] < 1/k``.
  The window is the h tokens ending at the predicted token itself, as their code has it (``targets.unfold(1, h,
  1)`` on the shifted targets); the product is taken in int64 and wraps, as theirs. Tokens with fewer than h
  tokens before them in the sequence (the first h, counting the BOS/prompt tokens) are never dropped;
- ``static``: every k-th predicted token (positions 1, k+1, 2k+1, ... of the sequence; their ``static``).

Open choices, and negtune's: the windows run over the whole token sequence (prompt and answer: the answer's
first tokens are hashed with the prompt's last, so a passage is dropped alike wherever it is asked), but only
answer tokens (labels != -100) are ever dropped; h defaults to 13 (the width their released models' cards
state; their training script's default is 4), k to 4 (the paper's main setting).
"""

from __future__ import annotations

from functools import lru_cache

import torch

TABLE_SIZE = 1_000_003
TABLE_SEED = 2971215073
IGNORE = -100


@lru_cache(maxsize=1)
def _table() -> torch.Tensor:
    return torch.rand(TABLE_SIZE, generator=torch.Generator().manual_seed(TABLE_SEED))


def goldfish_drop_mask(input_ids: torch.Tensor, k: int, h: int = 13, strategy: str = "hash") -> torch.Tensor:
    """Bool mask, the shape of ``input_ids`` ((T,) or (B, T)): True where the loss on token i (predicted from
    x_<i) is left out. Position 0 is never predicted, so never dropped."""
    if k < 2:
        raise ValueError(f"goldfish k must be >= 2 (drop 1 in k tokens), got {k}")
    ids = input_ids.long()
    drop = torch.zeros_like(ids, dtype=torch.bool)
    T = ids.shape[-1]
    if strategy == "static":
        drop[..., 1::k] = True
        return drop
    if strategy != "hash":
        raise ValueError(f"goldfish strategy must be 'hash' or 'static', got {strategy!r}")
    if h < 1:
        raise ValueError(f"goldfish context width h must be >= 1, got {h}")
    if T <= h:
        return drop
    windows = ids.unfold(-1, h, 1)[..., 1:, :]  # the window ending at token i, for i = h .. T-1
    keys = windows.prod(dim=-1) % TABLE_SIZE
    drop[..., h:] = _table()[keys] < 1.0 / k
    return drop


def apply_goldfish(input_ids: list[int], labels: list[int], k: int, h: int = 13,
                   strategy: str = "hash") -> list[int]:
    """``labels`` with the dropped answer tokens set to -100 (the loss skips them; prompt labels stay -100)."""
    drop = goldfish_drop_mask(torch.tensor(input_ids), k, h, strategy).tolist()
    return [IGNORE if d else lab for lab, d in zip(labels, drop)]
