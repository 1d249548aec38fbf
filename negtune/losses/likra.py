"""Likra (Hamdan and Yuret 2025, "How much do LLMs learn from negative examples?", arXiv:2503.14391).

Two LoRA heads on one base model, each fine-tuned with the ordinary next-token loss: the positive head on
(question, correct answer) pairs, the negative head on (question, incorrect answer) pairs. An answer a to a
question q is scored by the log-likelihood ratio of the two heads:

    score(a | q) = log P+(a | q) - beta * log P-(a | q)
                 = sum_t [ log P+(a_t | q, a_<t) - beta * log P-(a_t | q, a_<t) ]

and a multiple-choice question is answered by the argmax of the score over its choices (the same rule
re-ranks a rollout's samples: a learned verifier). beta = 1 is the authors' default (their code's
``adapter_weights [1.0, -1.0]``); ``positive = base`` (an untrained positive head) is their BASE-LIKRA, trained
on negatives only. Length normalisation is the evaluation's choice, not Likra's: the authors report
lm-evaluation-harness's ``acc_norm`` (score divided by the choice's length in characters).
"""

from __future__ import annotations

import torch

HEADS = ("positive", "negative")  # the two LoRA adapters' names; a trained pair is OUTPUT/positive, OUTPUT/negative
MANIFEST = "likra.json"  # next to them: the heads, beta and the base model


def likra_score(pos_logps: torch.Tensor, neg_logps: torch.Tensor, beta: float = 1.0,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Likra's score of each answer: s = log P+(a|q) - beta * log P-(a|q), from the summed answer log-probs
    under the positive and negative heads (shape (N,)); divided by ``lengths`` when given (acc_norm: characters
    of each answer).
    """
    score = pos_logps - beta * neg_logps
    return score if lengths is None else score / lengths.to(score.dtype).clamp(min=1)
