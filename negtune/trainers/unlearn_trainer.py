"""Unlearning trainer: GA, GradDiff, NPO, NPO+RT, NPO+KL, SimNPO over paired forget/retain batches."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.prompts import encode_prompt_completion
from negtune.losses import (
    ga_loss,
    graddiff_loss,
    kl_ref_policy,
    npo_loss,
    npo_weight,
    simnpo_loss,
    token_logps,
)
from negtune.losses.logps import target_logits
from negtune.trainers.base import NegtuneTrainer, PaddedCollator, load_for_training
from negtune.trainers.reference import cached_reference_logps
from negtune.trainers.unlearn_config import NEEDS_RETAIN, UnlearnConfig


def _qa_pairs(data, name: str) -> list[tuple[Any, str]]:
    """(prompt, answer) pairs from TOFU-style (question/answer) or (prompt/completion) rows: a ``datasets.Dataset``,
    a list of dicts or a json/jsonl/csv/parquet file (then errors name the file)."""
    where = f"{name} dataset"
    if isinstance(data, (str, Path)):
        from negtune.data.io import read_rows

        where, rows = f"{name} dataset {data}", read_rows(data)
    else:
        rows = data.to_list() if isinstance(data, datasets.Dataset) else list(data)
    pairs = []
    for i, row in enumerate(rows):
        if "question" in row and "answer" in row:
            pairs.append((row["question"], row["answer"]))
        elif "prompt" in row and "completion" in row:
            pairs.append((row["prompt"], row["completion"]))
        else:
            raise DataError(f"{where}, row {i}: expected columns question/answer or prompt/completion, "
                            f"got {sorted(row)}")
    return pairs


class UnlearnTrainer(NegtuneTrainer):
    """``UnlearnTrainer(model, args=UnlearnConfig(method="npo"), forget_dataset=..., retain_dataset=...)``.

    ``model``: a model or a path; ``peft_config``: LoRA through PEFT (the output is then an adapter).
    Reference log-probs of the forget set are computed once and cached (no second model in memory);
    only ``npo_kl`` needs pi_ref on fresh retain batches: under LoRA it runs the base with the adapter
    disabled, in full-parameter training it keeps a frozen copy (pass ``ref_model`` to reuse one).
    """

    method_name = "unlearn"

    def __init__(self, model, args: UnlearnConfig, forget_dataset, retain_dataset=None, processing_class=None,
                 peft_config=None, ref_model=None, **kwargs):
        if processing_class is None:
            raise ValueError("UnlearnTrainer needs processing_class (the tokenizer)")
        forget = _qa_pairs(forget_dataset, "forget")
        if not forget:
            raise DataError("forget dataset is empty: nothing to unlearn")
        retain = _qa_pairs(retain_dataset, "retain") if retain_dataset is not None else []
        if args.method in NEEDS_RETAIN and not retain:
            raise DataError(f"method {args.method!r} needs a retain dataset (retain_dataset is empty or missing)")
        self.method_name = args.method
        model = load_for_training(model, peft_config)
        tok = processing_class
        enc = lambda p, a: encode_prompt_completion(tok, p, a, args.max_length)  # noqa: E731
        forget_ex = [enc(p, a) for p, a in forget]
        retain_ex = [enc(p, a) for p, a in retain]
        rng = random.Random(args.seed)
        order = list(range(len(retain_ex)))
        rng.shuffle(order)
        rows = []
        for i, (ids, labels) in enumerate(forget_ex):
            row = {"index": i, "forget_input_ids": ids, "forget_labels": labels}
            if retain_ex:
                r_ids, r_labels = retain_ex[order[i % len(order)]]
                row.update(retain_input_ids=r_ids, retain_labels=r_labels)
            rows.append(row)
        self.ref_cache_file = None
        if args.method.startswith("npo"):
            ref, self.ref_cache_file, self.ref_cache_hit = cached_reference_logps(
                model, forget_ex, tok.pad_token_id, args.ref_cache_dir)
            for row, value in zip(rows, ref):
                row["forget_ref_logps"] = value
        self.ref_model = None
        if args.method == "npo_kl" and not hasattr(model, "disable_adapter"):
            self.ref_model = ref_model if ref_model is not None else copy.deepcopy(model)
            self.ref_model.eval().requires_grad_(False)
        self._data_description = f"{len(forget)} forget examples, {len(retain)} retain examples"
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)
        if self.ref_model is not None:
            self.ref_model.to(self.args.device)

    def _nll_and_logps(self, model, inputs, prefix: str):
        """Answer-column logits (prompt columns never reach the output layer), summed log-probs, token counts, NLL."""
        logits, cols = target_logits(model, inputs[f"{prefix}_input_ids"], inputs[f"{prefix}_attention_mask"],
                                     inputs[f"{prefix}_labels"])
        tok_logps, mask = token_logps(logits, inputs[f"{prefix}_labels"][:, cols])
        logps, n_tok = tok_logps.sum(-1), mask.sum(-1)
        return (logits, cols), logps, n_tok, -logps.sum() / n_tok.sum().clamp(min=1)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.args
        _, logps, n_tok, forget_nll = self._nll_and_logps(model, inputs, "forget")
        retain_nll = retain_logits = None
        if "retain_input_ids" in inputs and a.method in ("graddiff", "npo_rt", "npo_kl", "simnpo"):
            retain_logits, _, _, retain_nll = self._nll_and_logps(model, inputs, "retain")
        if a.method == "ga":
            loss = a.forget_weight * ga_loss(logps, n_tok.sum())
        elif a.method == "graddiff":
            loss = graddiff_loss(forget_nll, retain_nll, a.forget_weight, a.retain_weight)
        elif a.method == "simnpo":
            loss = a.forget_weight * simnpo_loss(logps, n_tok, a.beta, a.simnpo_delta)
            if retain_nll is not None:
                loss = loss + a.retain_weight * retain_nll
        else:
            ref = inputs["forget_ref_logps"].to(logps.dtype)
            loss = a.forget_weight * npo_loss(logps, ref, a.beta)
            self.record(npo_weight_mean=npo_weight(logps, ref, a.beta), log_ratio_mean=(logps - ref).detach())
            if a.method == "npo_rt":
                loss = loss + a.retain_weight * retain_nll
            elif a.method == "npo_kl":
                loss = loss + a.retain_weight * self._retain_kl(model, inputs, retain_logits)
        self.record(forget_nll=forget_nll, retain_nll=retain_nll, forget_logp_mean=logps.detach())
        self.check_finite(loss, inputs)
        return loss

    def _retain_kl(self, model, inputs, retain_logits):
        pol, cols = retain_logits
        args = (inputs["retain_input_ids"], inputs["retain_attention_mask"], inputs["retain_labels"])
        with torch.no_grad():
            if self.ref_model is not None:
                ref, _ = target_logits(self.ref_model, *args)
            else:
                with self.accelerator.unwrap_model(model).disable_adapter():
                    ref, _ = target_logits(model, *args)
        kl = kl_ref_policy(pol, ref, inputs["retain_labels"][:, cols] != -100)
        self.record(retain_kl=kl)
        return kl
