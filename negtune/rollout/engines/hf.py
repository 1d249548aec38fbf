"""Rollouts with transformers ``generate``: runs anywhere (CPU, one GPU)."""

from __future__ import annotations

from typing import Any

import torch

from negtune.data.prompts import render_chat
from negtune.rollout.engines.base import Completion, SamplingConfig


def left_pad(prompts: list[list[int]], pad_token_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists left-padded into ``(input_ids, attention_mask)`` for ``generate``. The mask is set by
    position, so a prompt may itself contain the pad id."""
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return input_ids, attention


class HFEngine:
    """Batched ``generate`` with left padding; prompts sorted by length so batches pad little.

    Prompts are rendered with the tokenizer's chat template exactly as the trainers render them
    (:func:`negtune.data.prompts.render_chat`). ``batch_size`` counts prompts; each brings ``n`` rows.
    """

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to eos) first")

    @classmethod
    def from_pretrained(cls, model: str, adapter: str | None = None, dtype: str = "auto", device: str | None = None,
                        batch_size: int = 16, trust_remote_code: bool = False) -> HFEngine:
        from negtune.models.loading import load_model_and_tokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        m, tok = load_model_and_tokenizer(model, adapter=adapter, dtype=dtype, device=device,
                                          trust_remote_code=trust_remote_code, merge_adapter=adapter is not None)
        return cls(m, tok, batch_size=batch_size)

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return {i for i in ids if i is not None}

    def generate(self, prompts: list[list[dict[str, Any]]], sampling: SamplingConfig) -> list[list[Completion]]:
        return self.generate_ids([render_chat(self.tokenizer, p) for p in prompts], sampling)

    @torch.no_grad()
    def generate_ids(self, encoded: list[list[int]], sampling: SamplingConfig) -> list[list[Completion]]:
        """``generate`` for prompts already tokenized (evals with their own prompt templates)."""
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        results: list[list[Completion] | None] = [None] * len(encoded)
        eos = self._eos_ids()
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        torch.manual_seed(sampling.seed)
        try:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self._generate_batch([encoded[i] for i in idx], sampling, eos, device)
                for j, i in enumerate(idx):
                    results[i] = batch[j * sampling.n : (j + 1) * sampling.n]
        finally:
            self.model.train(was_training)
        return results  # type: ignore[return-value]

    def _generate_batch(self, ids: list[list[int]], sampling: SamplingConfig, eos: set[int], device):
        pad = self.tokenizer.pad_token_id
        input_ids, attention = left_pad(ids, pad, device)
        width = input_ids.shape[1]
        kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_new_tokens, num_return_sequences=sampling.n, pad_token_id=pad,
            eos_token_id=sorted(eos), return_dict_in_generate=True, output_logits=sampling.logprobs,
        )
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            kwargs.update(stop_strings=sampling.stop, tokenizer=self.tokenizer)
        out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        generated = out.sequences[:, width:].tolist()
        logps = None
        if sampling.logprobs:
            # raw logits (before temperature/top-p): log pi(y_t | ...) of the model itself
            steps = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # (rows, T, vocab)
            tokens = out.sequences[:, width:]
            logps = steps.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).tolist()
        completions = []
        for r, toks in enumerate(generated):
            length, reason = len(toks), "length"
            for t, tok in enumerate(toks):
                if tok in eos:
                    length, reason = t + 1, "stop"
                    break
            token_ids = toks[:length]
            if reason == "length" and (pad not in eos):
                # generation ended early for this row (a stop string) and padded the rest
                while token_ids and token_ids[-1] == pad:
                    token_ids.pop()
            text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
            if reason == "length" and sampling.stop and any(text.endswith(s) for s in sampling.stop):
                reason = "stop"
            completions.append(Completion(text, token_ids, reason, logps[r][: len(token_ids)] if logps else None))
        return completions
