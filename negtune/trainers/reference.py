"""Reference log-probs without a second model in memory.

NPO's pi_ref is the model before unlearning, and the forget set does not change, so log pi_ref(y|x) is
computed once per forget example before training and cached on disk, keyed by a fingerprint of the model
weights and of the tokenized data. It is the model as training receives it: a PEFT model is scored with its
adapter on (a fresh LoRA adapter is the identity, so its base's numbers; an adapter trained before is part of
the starting model).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch

from negtune.data.io import atomic_write_text
from negtune.losses.logps import target_logits, token_logps


def identity_adapter(named: list) -> bool:
    """True when a PEFT model's LoRA weights change nothing (every lora_B zero, PEFT's initialisation)."""
    return all(not p.detach().any() for n, p in named if "lora_B" in n)


@torch.no_grad()
def model_fingerprint(model) -> str:
    """Content hash of the function the model computes: every weight tensor, each summarised on its own device
    (shape, dtype, sum, sum of squares and a strided sample of its values), so a change anywhere (a merged
    fine-tune of the middle layers, an adapter trained before) gives another key. A LoRA adapter that is still
    the identity is left out, so a freshly wrapped model and its plain base share one key."""
    h = hashlib.sha256()
    named = list(model.named_parameters())
    if identity_adapter(named):
        named = [(n, p) for n, p in named if "lora_" not in n]
    # PEFT renames the base weights (base_model.model.<name>, <module>.base_layer.weight): undo that too
    for name, param in named:
        flat = param.detach().reshape(-1)
        step = max(1, flat.numel() // 1024)
        h.update(f"{name.replace('base_model.model.', '', 1).replace('.base_layer', '')}{tuple(param.shape)}"
                 f"{param.dtype}".encode())
        stats = torch.zeros(2, dtype=torch.float64, device=flat.device)
        for chunk in flat.split(1 << 24):  # in float64 a chunk at a time: no full-size copy of a large tensor
            c = chunk.double()
            stats += torch.stack([c.sum(), c.square().sum()])
        h.update(stats.cpu().numpy().tobytes())
        h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(examples: list[tuple[list[int], list[int]]]) -> str:
    h = hashlib.sha256()
    for ids, labels in examples:
        h.update(json.dumps([ids, labels]).encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("NEGTUNE_CACHE", Path.home() / ".cache" / "negtune")) / "ref_logps"


@torch.no_grad()
def compute_reference_logps(model, examples: list[tuple[list[int], list[int]]], pad_token_id: int,
                            batch_size: int = 8, per_token: bool = False, adapter: bool = True) -> list:
    """log pi_ref(y|x) (summed over answer tokens) for each (input_ids, labels) example; with ``per_token``,
    the list of log pi_ref(y_t | ...) aligned with ``labels[1:]`` (0.0 where the label is -100). A PEFT model is
    scored as it is (its active adapter on), or with ``adapter=False`` as its base (adapters disabled)."""
    adapter_off = model.disable_adapter() if hasattr(model, "disable_adapter") and not adapter \
        else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    try:
        with adapter_off:
            for start in range(0, len(examples), batch_size):
                chunk = examples[start : start + batch_size]
                width = max(len(ids) for ids, _ in chunk)
                ids = torch.tensor([i + [pad_token_id] * (width - len(i)) for i, _ in chunk], device=device)
                labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk], device=device)
                mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk], device=device)
                logits, cols = target_logits(model, ids, mask, labels)
                tok_logps, _ = token_logps(logits, labels[:, cols])
                if per_token:  # aligned with labels[1:]: zeros for the prompt columns target_logits skipped
                    skipped = [0.0] * (cols.start - 1)
                    out.extend((skipped + row)[: len(lab) - 1] for row, (_, lab) in zip(tok_logps.tolist(), chunk))
                else:
                    out.extend(tok_logps.sum(-1).tolist())
    finally:
        model.train(was_training)
    return out


def cached_reference_logps(model, examples, pad_token_id: int, cache_dir: str | Path | None = None,
                           batch_size: int = 8) -> tuple[list[float], Path, bool]:
    """Reference log-probs from the cache, or computed and cached. Returns (values, cache file, hit)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"{model_fingerprint(model)}-{data_fingerprint(examples)}.json"
    if path.exists():
        values = json.loads(path.read_text())
        if len(values) == len(examples):
            return values, path, True
    values = compute_reference_logps(model, examples, pad_token_id, batch_size)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(values))
    return values, path, False
