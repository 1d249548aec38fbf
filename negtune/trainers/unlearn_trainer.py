"""Unlearning trainer: GA, GradDiff, NPO, NPO+RT, NPO+KL, SimNPO over paired forget/retain batches."""

from __future__ import annotations

import copy
import random

import datasets
import torch

from negtune import methods
from negtune.data.io import DataError
from negtune.data.prompts import encode_prompt_completion
from negtune.data.rows import training_rows
from negtune.losses import kl_ref_policy, npo_weight, token_logps
from negtune.losses.logps import target_logits
from negtune.methods import UnlearnTerms
from negtune.trainers.base import NegtuneTrainer, PaddedCollator, keep_answered, load_for_training
from negtune.trainers.reference import cached_reference_logps
from negtune.trainers.unlearn_config import UnlearnConfig


class UnlearnTrainer(NegtuneTrainer):
    """``UnlearnTrainer(model, args=UnlearnConfig(method="npo"), forget_dataset=..., retain_dataset=...)``.

    ``forget_dataset`` / ``retain_dataset``: anything :func:`negtune.data.rows.training_rows` reads as
    question/answer rows (a Dataset, a list of dicts, a file, a TOFU split name). The method's objective, and
    whether it needs reference log-probs or retain data, are its entry in :mod:`negtune.methods`.
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
        self.method_spec = methods.get(args.method)
        forget = training_rows(forget_dataset, "qa", "forget")
        if not forget:
            raise DataError("forget dataset is empty: nothing to unlearn")
        retain = training_rows(retain_dataset, "qa", "retain") if retain_dataset is not None else []
        if self.method_spec.needs_retain and not retain:
            raise DataError(f"method {args.method!r} needs a retain dataset (retain_dataset is empty or missing)")
        self.method_name = args.method
        model = load_for_training(model, peft_config)
        tok = processing_class
        enc = lambda p, a: encode_prompt_completion(tok, p, a, args.max_length)  # noqa: E731
        forget_ex = [enc(r["prompt"], r["answer"]) for r in forget]
        retain_ex = [enc(r["prompt"], r["answer"]) for r in retain]
        forget_ex = [forget_ex[j] for j in keep_answered(forget_ex, "forget dataset", args.max_length)]
        if retain_ex:
            retain_ex = [retain_ex[j] for j in keep_answered(retain_ex, "retain dataset", args.max_length)]
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
        if self.method_spec.needs_reference:
            ref, self.ref_cache_file, self.ref_cache_hit = cached_reference_logps(
                model, forget_ex, tok.pad_token_id, args.ref_cache_dir)
            for row, value in zip(rows, ref):
                row["forget_ref_logps"] = value
        self.ref_model = None
        if self.method_spec.retain == "kl" and not hasattr(model, "disable_adapter"):
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
        a, spec = self.args, self.method_spec
        _, logps, n_tok, forget_nll = self._nll_and_logps(model, inputs, "forget")
        ref = inputs["forget_ref_logps"].to(logps.dtype) if spec.needs_reference else None
        retain_nll = retain_kl = None
        if spec.retain is not None and "retain_input_ids" in inputs:
            retain_logits, _, _, retain_nll = self._nll_and_logps(model, inputs, "retain")
            if spec.retain == "kl":
                retain_kl = self._retain_kl(model, inputs, retain_logits)
        terms = UnlearnTerms(logps=logps, n_tokens=n_tok, forget_nll=forget_nll, ref_logps=ref,
                             retain_nll=retain_nll, retain_kl=retain_kl)
        loss = spec.unlearn_objective(terms, a)
        if ref is not None:
            self.record(npo_weight_mean=npo_weight(logps, ref, a.beta), log_ratio_mean=(logps - ref).detach())
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
