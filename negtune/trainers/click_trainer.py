"""Click trainer: the LM loss on positives plus a sequence-likelihood margin between ranked pairs."""

from __future__ import annotations

import json
import logging
import random

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.rows import training_rows
from negtune.losses.click import click_loss, likelihood_ranked_pairs
from negtune.losses.logps import mean_token_nll, target_logits, token_logps
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    encode_rows,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.click_config import ClickConfig
from negtune.trainers.reference import compute_reference_logps

logger = logging.getLogger(__name__)


class ClickTrainer(NegtuneTrainer):
    """``ClickTrainer(model, ClickConfig(...), train_dataset=labeled, processing_class=tok, peft_config=None)``.

    ``train_dataset``: a labeled dataset (``negtune rollout`` output, a path to it, or rows with prompt,
    completion and a boolean ``label``); rows with the same prompt are one prompt's continuations. The LM term
    learns its positives, or ``lm_dataset`` when given (prompt/completion or question/answer rows: the
    authors' setting, gold text for the LM term and the model's own labeled samples for the pairs). The pairs
    are spread over the LM examples, one prompt's pairs each, so every batch contrasts a few prompts.
    """

    method_name = "click"

    def __init__(self, model, args: ClickConfig, train_dataset, processing_class=None, peft_config=None,
                 lm_dataset=None, **kwargs):
        processing_class = training_tokenizer("ClickTrainer", processing_class, args, kwargs)
        rows = training_rows(train_dataset, "labeled")
        tok = processing_class
        rows, encoded = encode_rows(rows, tok, args.max_length, f"{self.method_name} train dataset")
        model = load_for_training(model, peft_config)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(json.dumps(r["prompt"], sort_keys=True), []).append(i)
        likelihood = [0.0] * len(encoded)
        if args.pairing == "likelihood":  # the initial model ranks the samples (under LoRA: the base, the same)
            ranked = [i for members in groups.values() if len({bool(rows[i]["label"]) for i in members}) == 2
                      for i in members]  # only prompts with both labels can give a pair
            model.to(args.device)
            for i, value in zip(ranked, compute_reference_logps(model, [encoded[i] for i in ranked],
                                                                tok.pad_token_id)):
                likelihood[i] = value
        rng = random.Random(args.seed)
        group_pairs = []
        for members in groups.values():
            labels = [bool(rows[i]["label"]) for i in members]
            local = likelihood_ranked_pairs([likelihood[i] for i in members], labels, args.max_pairs) \
                if args.pairing == "likelihood" else _random_pairs(labels, args.max_pairs, rng)
            if local:
                group_pairs.append([(encoded[members[p]], encoded[members[n]]) for p, n in local])
        n_pairs = sum(map(len, group_pairs))
        if not n_pairs:
            raise DataError(f"click: no prompt of the {len(rows)} rows has both a positive and a negative "
                            "continuation, so there is no pair to contrast")
        if lm_dataset is None:
            lm = [encoded[i] for i, r in enumerate(rows) if r["label"]]
            lm_what = "positive completions"
        else:
            lm_rows = training_rows(lm_dataset, "qa", "lm", flag="lm_dataset")
            _, lm = encode_rows([{"prompt": r["prompt"], "completion": r["answer"]} for r in lm_rows], tok,
                                args.max_length, f"{self.method_name} lm dataset")
            lm_what = "lm_dataset rows"
        # one prompt's pairs per LM example at most (memory stays bounded); with more prompts than LM examples,
        # the LM examples are cycled so each prompt's pairs still get an item of their own
        n_items = max(len(lm), len(group_pairs))
        items = [{"index": k, "input_ids": lm[k % len(lm)][0], "labels": lm[k % len(lm)][1], "pair_pos": [],
                  "pair_neg": []} for k in range(n_items)]
        for g, pairs_of_prompt in enumerate(group_pairs):  # spread evenly: every batch contrasts a few prompts
            items[g]["pair_pos"] = [p for p, _ in pairs_of_prompt]
            items[g]["pair_neg"] = [n for _, n in pairs_of_prompt]
        if n_items > len(lm):
            logger.warning("click: %d prompts with pairs and %d LM examples: the LM examples are repeated to carry "
                           "every prompt's pairs (each epoch sees them %.1f times)", len(group_pairs), len(lm),
                           n_items / len(lm))
        self._data_description = (f"{len(lm)} {lm_what} (LM targets), {n_pairs} ranked pairs over "
                                  f"{len(group_pairs)} of {len(groups)} prompts ({args.pairing} pairing)")
        logger.info("click: %s", self._data_description)
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=_ClickCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        n_lm, n_pairs = inputs["n_lm"], inputs["n_pairs"]
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        logps, mask = token_logps(logits, inputs["labels"][:, cols])
        lm = mean_token_nll(logps[:n_lm], mask[:n_lm])
        seq = (logps * mask)[n_lm:].sum(-1)  # summed continuation log-likelihoods: positives, then negatives
        contrast = click_loss(seq[:n_pairs], seq[n_pairs:], self.args.margin)
        loss = lm + self.args.contrast_weight * contrast
        self.record(lm_nll=lm.detach(), click_hinge=contrast.detach())
        if n_pairs:
            self.record(pair_margin=(seq[:n_pairs] - seq[n_pairs:]).detach().mean())
        self.check_finite(loss, inputs)
        return loss


def _random_pairs(labels: list[bool], max_pairs: int, rng: random.Random) -> list[tuple[int, int]]:
    """The ablation: a random positive with up to ``max_pairs`` random negatives."""
    pos = [i for i, y in enumerate(labels) if y]
    neg = [i for i, y in enumerate(labels) if not y]
    if not pos or not neg:
        return []
    best = rng.choice(pos)
    return [(best, j) for j in rng.sample(neg, min(max_pairs, len(neg)))]


class _ClickCollator(PaddedCollator):
    """One padded batch: the LM rows, then every pair's positive, then every pair's negative (one forward)."""

    def __call__(self, features):
        rows = [(f["input_ids"], f["labels"]) for f in features]
        pos = [tuple(p) for f in features for p in f["pair_pos"]]
        neg = [tuple(n) for f in features for n in f["pair_neg"]]
        flat = [{"input_ids": list(ids), "labels": list(lab)} for ids, lab in rows + pos + neg]
        batch = super().__call__(flat)
        batch["index"] = torch.tensor([f["index"] for f in features])
        batch["n_lm"], batch["n_pairs"] = len(rows), len(pos)
        return batch
