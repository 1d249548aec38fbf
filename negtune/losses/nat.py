"""Negative-aware training (NAT; Wang et al. 2024, "Learning From Failure: Integrating Negative Examples when
Fine-tuning Large Language Models as Agents", arXiv:2402.11651).

NAT fine-tunes on successful and failed trajectories alike, each conditioned on a quality marker appended to
the task instruction, and samples with the positive marker only:

    L(theta) = - sum_{(x, y) in D+} sum_t log pi_theta(y_t | x (+) m+, y_<t)
               - sum_{(x, y) in D-} sum_t log pi_theta(y_t | x (+) m-, y_<t),   divided by the token count

    inference:  y ~ pi_theta(. | x (+) m+)

where x (+) m is the prompt with marker m at the end of its last user message (:func:`negtune.data.prompts.
add_marker`). The loss itself is the ordinary next-token cross-entropy (the authors train with the Hugging Face
Trainer's causal-LM loss, a mean over the batch's answer tokens); what makes it NAT is the conditioning, so the
negatives teach the model what a wrong answer looks like *under m-* instead of being thrown away (RFT) or
learned as if right (plain SFT on everything).
"""

from __future__ import annotations

import torch

from negtune.losses.logps import mean_token_nll


def nat_loss(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """NAT's objective for one batch of marked sequences, positives and negatives alike (each already
    conditioned on its own marker):

        L = - sum_{i, t} mask_it log pi_theta(y_it | x_i (+) m(y_i), y_i,<t) / sum_{i, t} mask_it

    ``logps`` (B, T): log pi_theta of each target token given its row's marked prompt; ``mask`` (B, T): answer
    tokens. Rows are not averaged first: a long trajectory weighs by its length, as in the authors' training.
    """
    return mean_token_nll(logps, mask)
