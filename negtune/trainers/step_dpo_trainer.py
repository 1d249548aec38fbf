"""Self-Explore's step-level DPO from a labeled rollout whose negatives carry Monte-Carlo step values."""

from __future__ import annotations

import json
import logging

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.prompts import as_chat, encode_text_completion, render_prompt_text
from negtune.data.rows import training_rows
from negtune.losses.logps import target_logits, token_logps
from negtune.losses.steps import first_pit, step_dpo_loss
from negtune.trainers.base import NegtuneTrainer, PaddedCollator, load_for_training, training_tokenizer
from negtune.trainers.reference import compute_reference_logps
from negtune.trainers.step_dpo_config import StepDPOConfig
from negtune.trainers.step_pg_trainer import check_steps, dataset_name, row_name

logger = logging.getLogger(__name__)


def self_explore_pair(row: dict, positive: str | None, first_step_pit: str = "pair") -> tuple[str, str, str] | None:
    """(prefix, chosen, rejected) of a wrong sample with step values: the prefix before its first pit, a correct
    continuation from there, the pit step; None when there is no chosen side (no right continuation was found
    from the prefix, or a first-step pit with ``skip``). A first-step pit's chosen side is the stage's right
    continuation of the prompt (``step_q0_continuation``), else ``positive`` (a right sample of the prompt)."""
    values, ends = list(row["step_values"]), list(row["step_ends"])
    pit = first_pit(values, row.get("step_samples"))
    if pit is None:
        return None
    start = ends[pit - 1] if pit > 0 else 0
    if pit > 0:
        chosen = row["step_continuation"][pit - 1]
    else:
        chosen = (row.get("step_q0_continuation") or positive) if first_step_pit == "pair" else None
    if chosen is None:
        return None
    return row["completion"][:start], chosen, row["completion"][start : ends[pit]]


class StepDPOTrainer(NegtuneTrainer):
    """``StepDPOTrainer(model, StepDPOConfig(...), train_dataset=annotated, processing_class=tok)``:
    ``train_dataset`` is the output of ``negtune step-values``."""

    method_name = "step_dpo"

    def __init__(self, model, args: StepDPOConfig, train_dataset, processing_class=None, peft_config=None, **kwargs):
        processing_class = training_tokenizer("StepDPOTrainer", processing_class, args, kwargs)
        tok = processing_class
        rows = training_rows(train_dataset, "labeled")
        if not any(r.get("step_values") is not None for r in rows):
            raise DataError("step_dpo needs step values: no row of the train dataset has a 'step_values' column "
                            "value; run `negtune step-values --rollout ROLLOUT --model MODEL --out OUT` first and "
                            "train on OUT")
        what = dataset_name("step_dpo", train_dataset)
        positives: dict[str, str] = {}
        for r in rows:
            if r["label"]:
                positives.setdefault(json.dumps(r["prompt"], sort_keys=True), r["completion"])
        items, missing = [], 0
        for i, r in enumerate(rows):
            if r["label"] or r.get("step_values") is None:
                continue
            where = row_name(what, i, r)
            check_steps(r, where)
            if r.get("step_continuation") is None or len(r["step_continuation"]) != len(r["step_values"]):
                raise DataError(f"{where}: 'step_continuation' must have one entry per step, as 'step_values' "
                                f"({len(r['step_values'])}); remake it with `negtune step-values`")
            pair = self_explore_pair(r, positives.get(json.dumps(r["prompt"], sort_keys=True)), args.first_step_pit)
            if pair is None:
                missing += 1
                continue
            prefix, chosen, rejected = pair
            ends_sample = len(prefix) + len(rejected) == len(r["completion"]) and r.get("finish_reason") == "stop"
            text, special = render_prompt_text(tok, as_chat(r["prompt"]))
            c_ids, c_labels = encode_text_completion(tok, text + prefix, chosen, args.max_length, True, special)
            r_ids, r_labels = encode_text_completion(tok, text + prefix, rejected, args.max_length, ends_sample,
                                                     special)
            if all(t == -100 for t in c_labels) or all(t == -100 for t in r_labels):
                missing += 1
                continue
            items.append({"index": i, "chosen_input_ids": c_ids, "chosen_labels": c_labels, "rejected_input_ids": r_ids,
                          "rejected_labels": r_labels})
        if not items:
            raise DataError(f"step_dpo: no pair: none of the wrong samples with step values has a correct "
                            f"continuation from the prefix before its first pit ({missing} without one)")
        if missing:
            logger.warning("step_dpo: %d wrong samples give no pair (no correct continuation from the prefix before "
                           "the pit, or --max_length left no token)", missing)
        model = load_for_training(model, peft_config)
        refs = compute_reference_logps(model, [(x["chosen_input_ids"], x["chosen_labels"]) for x in items]
                                       + [(x["rejected_input_ids"], x["rejected_labels"]) for x in items],
                                       tok.pad_token_id)
        for x, c, rj in zip(items, refs[: len(items)], refs[len(items):]):
            x["ref_chosen"], x["ref_rejected"] = c, rj
        self.pairs, self.unpaired = len(items), missing
        self._data_description = f"{len(items)} step-level pairs ({missing} wrong samples without one)"
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    def _sequence_logps(self, model, inputs, side: str) -> torch.Tensor:
        logits, cols = target_logits(model, inputs[f"{side}_input_ids"], inputs[f"{side}_attention_mask"],
                                     inputs[f"{side}_labels"])
        logps, mask = token_logps(logits, inputs[f"{side}_labels"][:, cols])
        return (logps * mask).sum(-1)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chosen, rejected = self._sequence_logps(model, inputs, "chosen"), self._sequence_logps(model, inputs, "rejected")
        losses = step_dpo_loss(chosen, rejected, inputs["ref_chosen"], inputs["ref_rejected"], self.args.beta)
        loss = losses.mean()
        with torch.no_grad():
            margin = (chosen - inputs["ref_chosen"]) - (rejected - inputs["ref_rejected"])
            self.record(reward_margin=self.args.beta * margin.mean(), reward_accuracy=(margin > 0).float().mean())
        self.check_finite(loss, inputs)
        return loss
