"""Step-level credit for negative samples: Monte-Carlo step values, per-step advantages, the first pit.

A completion y is cut into steps s_1..s_m (:func:`step_ends`). The value of the prefix after step i is the
probability that the policy finishes it correctly,

    Q_i = P(correct | x, s_1..s_i),   estimated by K sampled continuations: Q̂_i = (# correct) / K,

with Q_0 = the value of the prompt alone (estimated the same way, from the empty prefix) and Q_m = the sample's
label r (1 or 0).
Setlur et al. 2024 ("RL on Incorrect Synthetic Data Scales the Efficiency of LLM Math Reasoning by Eight-Fold",
arXiv:2406.14532) credit each step with its advantage

    A_i = Q_i − Q_{i−1}                                                              (:func:`step_advantages`)

so the step where a negative goes wrong (its value drops) is penalised and the correct steps before it are not.
The advantages telescope: Σ_i A_i = r − Q_0, the outcome advantage (Dr.GRPO's r − r̂) that an outcome-only
method gives every step alike. Setlur compute the values under BoK(π) (best of K = 5 samples of π), Q^BoK =
1 − (1 − Q)^K (:func:`best_of_k`); K = 1 is π itself. Their per-step objective is the advantage-weighted
likelihood E[Σ_i A_i log π(s_i | x, s_<i)] (their RL view of per-step DPO); negtune optimises it
with the PPO clipped surrogate (:func:`step_pg_loss`), which keeps offline epochs on a fixed rollout bounded.

Self-Explore (Hwang et al. 2024, arXiv:2404.10346) locates the *first pit*: the first step whose prefix no
continuation completes correctly (:func:`first_pit`), and trains DPO on step-level pairs: the prompt extended by
the prefix before the pit, a correct continuation found from that prefix (chosen) and the pit step alone
(rejected) (:func:`step_dpo_loss`; Setlur et al.'s per-step DPO is the same pairing). BCPG-NSA (arXiv:2505.14403) keeps the outcome advantage
but scales it by β (0.5) on the tokens of the steps judged correct inside a wrong answer
(:func:`nsa_step_scale`; here "judged correct" = before the Monte-Carlo pit, where their paper uses an LLM
judge).

Choices the papers leave open, made here: steps are cut at a separator (Self-Explore: newlines), the
separator belonging to the step it starts, and a step of only whitespace is merged into the one before; the
last step's value is the sample's label, never re-estimated; a sample with one step has only its outcome.
"""

from __future__ import annotations

import bisect
import re

import torch
import torch.nn.functional as F

SEPARATORS = {"newline": r"\n+", "sentence": r"(?<=[.!?])\s+"}


def step_ends(text: str, separator: str = "newline") -> list[int]:
    """End offsets (exclusive) of the steps of ``text``; the last is ``len(text)``, and
    ``text[ends[i-1]:ends[i]]`` is step i. ``separator`` is ``newline``, ``sentence`` or a regular expression.

    Within a separator, the line breaks it starts with end the step before and the rest (spaces) starts the
    next one: byte-level BPE tokenizers (Qwen2, Llama 3, GPT-2) join trailing line breaks to the punctuation
    before them (``".\n\n"``) and a space to the word after it (``" The"``), so every prefix ends on a token
    boundary the tokenizer itself makes, and the continuations start where the model would. A step of only
    whitespace joins the step before it."""
    pattern = re.compile(SEPARATORS.get(separator, separator))
    ends: list[int] = []
    start = 0
    for m in pattern.finditer(text):
        sep = m.group()
        cut = m.start() + len(sep) - len(sep.lstrip("\r\n"))
        if cut > start and text[start:cut].strip():
            ends.append(cut)
            start = cut
    if not text[start:].strip() and ends:
        ends.pop()  # trailing whitespace belongs to the last real step
    return ends + [len(text)]


def best_of_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Q^BoK = 1 − (1 − Q)^k: the value of a prefix when the best of k continuations counts (Setlur et al.)."""
    if k < 1:
        raise ValueError(f"best-of-k needs k >= 1, got {k}")
    return 1.0 - (1.0 - values) ** k


def step_advantages(values: torch.Tensor, q0: float | torch.Tensor) -> torch.Tensor:
    """A_i = Q_i − Q_{i−1} for the steps of one sample: ``values`` = (Q_1, ..., Q_m) (Q_m = the label),
    ``q0`` = the prompt's value. Sums to Q_m − Q_0."""
    before = torch.cat([torch.as_tensor([q0], dtype=values.dtype), values[:-1]])
    return values - before


def first_pit(values: list[float], samples: list[int] | None = None) -> int | None:
    """Index (0-based) of the first step after which the value is 0: no continuation from there was correct
    (Self-Explore's first pit); None when every prefix kept some chance. With ``samples`` (continuations per
    prefix; 0 = not valued, e.g. past ``--max-prefixes``), the first step not valued is returned if no pit
    comes before it: the error cannot be placed later than what was measured."""
    last = len(values) - 1
    for i, q in enumerate(values):
        if q <= 0.0 or (samples is not None and i < last and samples[i] == 0):
            return i
    return None


def nsa_step_scale(values: list[float], label: bool, beta: float, samples: list[int] | None = None) -> list[float]:
    """BCPG-NSA's per-step multiplier of the outcome advantage: β on the steps of a wrong answer before its
    first pit (steps judged correct), 1 on the pit and after, and on every step of a right answer."""
    if label:
        return [1.0] * len(values)
    pit = first_pit(values, samples)
    pit = len(values) - 1 if pit is None else pit
    return [beta if i < pit else 1.0 for i in range(len(values))]


def token_steps(offsets: list[int], ends: list[int]) -> list[int]:
    """The step of each token, from the token's start offset in the completion (a token starting before the
    completion belongs to step 0, one at or past its end to the last step)."""
    last = len(ends) - 1
    return [min(bisect.bisect_right(ends, max(o, 0)), last) for o in offsets]


def step_pg_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                 epsilon_low: float = 0.2, epsilon_high: float = 0.2) -> torch.Tensor:
    """Per-token clipped surrogate with per-token (per-step) advantages:

        ℓ_t = −min(R_t A_t, clip(R_t, 1 − ε_low, 1 + ε_high) A_t),   R_t = π_θ(y_t | ·) / π_old(y_t | ·),

    (the log-ratio clamped at 10 before exp). On-policy (R = 1) its gradient is −A_t ∇log π(y_t), Setlur's
    advantage-weighted objective. All inputs (B, T); returns (B, T), unmasked."""
    ratio = torch.exp((logps - old_logps).clamp(max=10.0))
    clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
    return -torch.minimum(ratio * advantages, clipped * advantages)


def step_dpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
                  ref_rejected_logps: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """DPO (Rafailov et al. 2023) on step-level pairs sharing the prompt x and the prefix p before the pit:

        L = −log σ(β [(log π(y_w | x, p) − log π_ref(y_w | x, p)) − (log π(y_l | x, p) − log π_ref(y_l | x, p))]),

    y_w a correct continuation from p, y_l the pit step; log-probs summed over the continuation's tokens;
    β = 0.1 (Self-Explore). Returns one loss per pair, shape (P,)."""
    margin = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin)
