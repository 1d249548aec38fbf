"""Generating from the prompts of a training batch (the unlikelihood trainer's sequence-level step, the
contrastive trainer's self-adversarial negatives)."""

from __future__ import annotations

import torch

from negtune.rollout.engines.hf import left_pad


def prompt_length(labels: list[int], ignore_index: int = -100) -> int:
    """Number of prompt tokens of an encoded example: the columns before its first target label."""
    return next((k for k, v in enumerate(labels) if v != ignore_index), len(labels))


def batch_prompts(inputs: dict[str, torch.Tensor], rows: list[int] | None = None) -> list[list[int]]:
    """The prompt token ids of (some ``rows`` of) a collated batch with a ``prompt_len`` column."""
    rows = range(len(inputs["input_ids"])) if rows is None else rows
    return [inputs["input_ids"][i, : int(inputs["prompt_len"][i])].tolist() for i in rows]


@torch.no_grad()
def generate_from_prompts(model, prompts: list[list[int]], pad_token_id: int, device,
                          **generate_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.generate`` on left-padded ``prompts`` in eval mode (the train/eval mode is restored afterwards).

    Returns ``(sequences, prompt_mask)``: the generated continuations start at column ``prompt_mask.shape[1]``."""
    ids, mask = left_pad(prompts, pad_token_id, device)
    was_training = model.training
    model.eval()
    try:
        out = model.generate(input_ids=ids, attention_mask=mask, pad_token_id=pad_token_id, **generate_kwargs)
    finally:
        model.train(was_training)
    return out, mask
