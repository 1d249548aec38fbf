"""Per-example weights for the forget term of any unlearning method.

LoReUn (Li, Shen, Wang, Kawaguchi 2025, "LoReUn: Data Itself Implicitly Provides Cues to Improve Machine
Unlearning", arXiv:2507.22499) reweights the forget examples by their loss, "allocating more weight to samples
with smaller losses that are harder to forget" (their Figure 1): an example the model still predicts well
(low loss) is the one that has not been unlearned yet. The weight is a temperature-scaled exponential of the
negative loss, computed with the original model (static) or with the model being unlearned (dynamic); the
retain term is not reweighted.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def loreun_weights(example_losses: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """LoReUn's weights of a batch of forget examples, from their losses ``l_i`` (shape (B,)):

        w_i = B * exp(-l_i / tau) / sum_j exp(-l_j / tau)          (= B * softmax(-l / tau)_i)

    so the forget term sum_i w_i f_i / B keeps the scale of the unweighted mean (the weights average 1) and
    equals it as tau -> infinity, while tau -> 0 puts the whole batch's weight on its lowest-loss example.
    The weights carry no gradient: they say how much of each example's forgetting gradient to take, they are
    not themselves optimised (a gradient through them would push the losses apart rather than up).

    Choices the paper's public text leaves open, and negtune's (documented in the README):
    - ``l_i``: negtune uses the example's mean answer-token NLL, -log pi(y_i|x_i) / |y_i|, so the weight does
      not favour short answers (the paper's tasks are classification and diffusion, whose losses are
      per-example already);
    - the normalisation over the batch each process computes (not the whole forget set, nor gathered across
      processes or accumulation steps: each device's micro-batch is weighted on its own, as each computes its
      own mean of the forget term), to mean 1; a batch of 1 is therefore unweighted, and the config refuses it;
    - static vs dynamic: ``reweight_loss`` in the unlearning config ("current": the model being trained, taken
      from the same forward pass, no extra cost; "reference": the model before unlearning, from the cached
      reference log-probs).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    losses = example_losses.detach().float()
    return (losses.numel() * torch.softmax(-losses / temperature, dim=0)).to(example_losses.dtype)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """mean_i w_i v_i (the plain mean when ``weights`` is None): how a reweighted forget term averages."""
    return values.mean() if weights is None else (weights * values).mean()
