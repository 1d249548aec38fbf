"""Unlearning trainer: GA, GradDiff, NPO, NPO+RT, NPO+KL, SimNPO over paired forget/retain batches."""

from __future__ import annotations

import copy
import logging

import datasets
import numpy as np
import torch

from negtune import methods
from negtune.data.io import DataError
from negtune.data.prompts import encode_prompt_completion
from negtune.data.rows import training_rows
from negtune.losses import kl_ref_policy, npo_weight, token_logps
from negtune.losses.logps import target_logits
from negtune.losses.reweight import loreun_weights
from negtune.methods import UnlearnTerms
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    keep_answered,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.reference import cached_reference_logps, identity_adapter
from negtune.trainers.unlearn_config import UnlearnConfig

logger = logging.getLogger(__name__)


class UnlearnTrainer(NegtuneTrainer):
    """``UnlearnTrainer(model, args=UnlearnConfig(method="npo"), forget_dataset=..., retain_dataset=...)``.

    ``forget_dataset`` / ``retain_dataset``: anything :func:`negtune.data.rows.training_rows` reads as
    question/answer rows (a Dataset, a list of dicts, a file, a TOFU split name). The method's objective, and
    whether it needs reference log-probs or retain data, are its entry in :mod:`negtune.methods`.
    ``model``: a model or a path; ``peft_config``: LoRA through PEFT (the output is then an adapter).
    Each forget example meets a retain example drawn afresh at every access (:func:`retain_index`).
    Reference log-probs of the forget set are computed once and cached (no second model in memory);
    only ``npo_kl`` needs pi_ref on fresh retain batches: under a fresh LoRA adapter it runs the base with the
    adapter disabled; in full-parameter training, or from an adapter trained before (part of the starting model),
    it keeps a frozen copy (merged); pass ``ref_model`` to use your own.
    """

    method_name = "unlearn"

    def __init__(self, model, args: UnlearnConfig, forget_dataset, retain_dataset=None, processing_class=None,
                 peft_config=None, ref_model=None, **kwargs):
        processing_class = training_tokenizer("UnlearnTrainer", processing_class, args, kwargs)
        self.method_spec = methods.get(args.method)
        forget = training_rows(forget_dataset, "qa", "forget")
        if not forget:
            raise DataError("forget dataset is empty: nothing to unlearn")
        if retain_dataset is not None and self.method_spec.retain is None:
            logger.warning("method %r uses no retain set: retain_dataset is not read (%s train on one)", args.method,
                           ", ".join(methods.retain_methods()))
            retain_dataset = None
        retain = training_rows(retain_dataset, "qa", "retain") if retain_dataset is not None else []
        if self.method_spec.needs_retain and not retain:
            raise DataError(f"method {args.method!r} needs a retain set: pass --retain (retain_dataset in Python: a TOFU "
                            "retain split such as retain90, or a file; its default, the complement of a TOFU forget split name like "
                            "forget10, applies only to those names)")
        self.method_name = args.method
        model = load_for_training(model, peft_config)
        tok = processing_class
        enc = lambda p, a: encode_prompt_completion(tok, p, a, args.max_length,  # noqa: E731
                                                    system_prompt=args.system_prompt)
        forget_ex = [enc(r["prompt"], r["answer"]) for r in forget]
        retain_ex = [enc(r["prompt"], r["answer"]) for r in retain]
        forget_ex = [forget_ex[j] for j in keep_answered(forget_ex, "forget dataset", args.max_length)]
        if retain_ex:
            retain_ex = [retain_ex[j] for j in keep_answered(retain_ex, "retain dataset", args.max_length)]
        # the dataset holds the forget side only: the retain partner is drawn per step in compute_loss
        self._retain_ex = retain_ex if self.method_spec.retain is not None else []
        rows = [{"index": i, "forget_input_ids": ids, "forget_labels": labels}
                for i, (ids, labels) in enumerate(forget_ex)]
        self.ref_cache_file = None
        static_weights = args.reweight == "loreun" and args.reweight_loss == "reference"
        self._needs_reference = self.method_spec.needs_reference or static_weights
        if self._needs_reference:
            ref, self.ref_cache_file, self.ref_cache_hit = cached_reference_logps(
                model, forget_ex, tok.pad_token_id, args.ref_cache_dir)
            for row, value in zip(rows, ref):
                row["forget_ref_logps"] = value
        self.ref_model = None
        if self.method_spec.retain == "kl":
            fresh_adapter = hasattr(model, "disable_adapter") and identity_adapter(list(model.named_parameters()))
            if ref_model is None and not fresh_adapter:  # disabling a trained adapter would give its base
                ref_model = copy.deepcopy(model)
                ref_model = ref_model.merge_and_unload() if hasattr(ref_model, "merge_and_unload") else ref_model
            if ref_model is not None:
                self.ref_model = ref_model.eval().requires_grad_(False)
        self._data_description = f"{len(forget)} forget examples" + (f", {len(retain)} retain examples"
                                                                    if self.method_spec.retain else "")
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
        cached = inputs["forget_ref_logps"].to(logps.dtype) if self._needs_reference else None
        ref = cached if spec.needs_reference else None
        weights = self._forget_weights(logps, n_tok, cached)
        retain_nll = retain_kl = None
        if self._retain_ex:
            retain = self._retain_batch(inputs)
            if spec.retain == "kl":
                retain_kl, retain_nll = self._retain_kl(model, retain)
            else:
                retain_nll = self._nll_and_logps(model, retain, "retain")[3]
        terms = UnlearnTerms(logps=logps, n_tokens=n_tok, forget_nll=forget_nll, ref_logps=ref,
                             retain_nll=retain_nll, retain_kl=retain_kl, weights=weights)
        loss = spec.unlearn_objective(terms, a)
        if ref is not None:
            self.record(npo_weight_mean=npo_weight(logps, ref, a.beta), log_ratio_mean=(logps - ref).detach())
        self.record(forget_nll=forget_nll, retain_nll=retain_nll, forget_logp_mean=logps.detach())
        self.check_finite(loss, inputs)
        return loss

    def _forget_weights(self, logps, n_tok, ref_logps):
        """LoReUn's weights of this batch's forget examples (None without ``reweight``), from the mean answer-token
        NLL under the current model or, ``reweight_loss: reference``, under the model before unlearning."""
        if self.args.reweight == "none":
            return None
        source = ref_logps if self.args.reweight_loss == "reference" else logps
        weights = loreun_weights(-source / n_tok.clamp(min=1), self.args.reweight_temperature)
        self.record(reweight_max=weights.max(), reweight_min=weights.min())
        return weights

    def _retain_batch(self, inputs):
        """The retain partners of this batch's forget examples, collated on the batch's device."""
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        picks = [retain_index(seed, self.state.global_step, i, len(self._retain_ex)) for i in inputs["index"].tolist()]
        batch = self.data_collator([{"retain_input_ids": self._retain_ex[j][0], "retain_labels": self._retain_ex[j][1]}
                                    for j in picks])
        return {k: v.to(inputs["forget_input_ids"].device) for k, v in batch.items()}

    def _retain_kl(self, model, batch):
        """KL(pi_ref || pi_theta) on the retain batch, averaged as ``kl_reduction`` says, and the retain NLL (logged).
        "batchmean" averages over every position (open-unlearning's KL covers prompt and padding too), so it needs
        the full logits; "answer_mean" only the answer columns."""
        ids, att, labels = batch["retain_input_ids"], batch["retain_attention_mask"], batch["retain_labels"]
        every_position = self.args.kl_reduction == "batchmean"

        def run(m):
            if every_position:
                return m(input_ids=ids, attention_mask=att).logits, slice(1, None)
            return target_logits(m, ids, att, labels)

        pol, cols = run(model)
        with torch.no_grad():
            if self.ref_model is not None:
                ref, _ = run(self.ref_model)
            else:
                with self.accelerator.unwrap_model(model).disable_adapter():
                    ref, _ = run(model)
        answer = pol[:, :-1] if every_position else pol  # the columns that predict labels[:, cols]
        tok_logps, mask = token_logps(answer, labels[:, cols])
        kl = kl_ref_policy(pol, ref, mask, self.args.kl_reduction)
        self.record(retain_kl=kl)
        return kl, -tok_logps.sum() / mask.sum().clamp(min=1)


def retain_index(seed: int, step: int, forget_index: int, n_retain: int) -> int:
    """The retain example paired with forget example ``forget_index`` at optimizer step ``step``: uniform over the
    ``n_retain`` retain examples, drawn afresh at every access as open-unlearning's ``ForgetRetainDataset`` does
    (one fixed pairing would show a TOFU forget10 run only 400 of retain90's 3,600 examples).

    A pure function of (seed, step, index) rather than a draw from a running generator: an index is seen once per
    epoch and an optimizer step never spans two epochs, so each access gets its own draw, and the draws are the
    same whatever the process count, rank, dataloader workers or resume point (the Trainer restores
    ``global_step``). open-unlearning's ``torch.randint`` in ``__getitem__`` reads the global RNG instead, so its
    pairs depend on whatever else drew from it, on the dataloader workers, and on every rank being seeded alike.
    Keyed by step, not epoch, because the Trainer does not pass the epoch to a map-style dataset reliably
    (accelerate forwards ``set_epoch`` to the sampler instead).
    """
    return int(np.random.default_rng((seed, step, forget_index)).integers(n_retain))
