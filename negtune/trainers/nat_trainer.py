"""NAT trainer: positives and negatives, each under its quality marker; the positive marker ships with the model."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import datasets

from negtune.data.io import DataError, atomic_write_text
from negtune.data.prompts import MARKER_FILE, add_marker, as_chat, strip_marker
from negtune.data.rows import training_rows
from negtune.losses.logps import mean_token_nll, target_logits, token_logps
from negtune.losses.nat import nat_loss
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    encode_rows,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.goldfish import goldfish_labels
from negtune.trainers.nat_config import NATConfig

logger = logging.getLogger(__name__)


class NATTrainer(NegtuneTrainer):
    """``NATTrainer(model, NATConfig(...), train_dataset=labeled, processing_class=tok, peft_config=None)``.

    ``train_dataset``: a labeled dataset (``negtune rollout`` output, a path to it, or rows with prompt,
    completion and a boolean ``label``). Prompts that already end with one of the two markers (a rollout of a
    NAT model stores its prompts as sampled) have it replaced by the row's own. ``save_model`` writes
    :data:`negtune.data.prompts.MARKER_FILE` next to the weights (or the adapter).
    """

    method_name = "nat"

    def __init__(self, model, args: NATConfig, train_dataset, processing_class=None, peft_config=None, **kwargs):
        processing_class = training_tokenizer("NATTrainer", processing_class, args, kwargs)
        rows = select_negatives(training_rows(train_dataset, "labeled"), args.negatives_per_positive, args.seed)
        tok = processing_class
        markers = (args.positive_marker, args.negative_marker)
        rows, pairs = encode_rows(rows, tok, args.max_length, f"{self.method_name} train dataset",
                                  prompt=lambda r: marked_prompt(r["prompt"], bool(r["label"]), markers))
        encoded = []
        for i, (row, (ids, labels)) in enumerate(zip(rows, pairs)):
            positive = bool(row["label"])
            encoded.append({"index": i, "input_ids": ids, "is_positive": positive,
                            "labels": goldfish_labels(args, ids, labels) if positive else labels})
        n_pos = sum(r["is_positive"] for r in encoded)
        self._data_description = (f"{n_pos} positive and {len(encoded) - n_pos} negative completions, markers "
                                  f"{args.positive_marker!r} / {args.negative_marker!r}")
        super().__init__(model=load_for_training(model, peft_config), args=args,
                         train_dataset=datasets.Dataset.from_list(encoded),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        labels = inputs["labels"][:, cols]
        logps, mask = token_logps(logits, labels)
        loss = nat_loss(logps, mask)
        pos = inputs["is_positive"].bool().unsqueeze(1)
        for name, part in (("positive_nll", mask & pos), ("negative_nll", mask & ~pos)):
            if part.any():
                self.record(**{name: mean_token_nll(logps.detach(), part)})
        self.check_finite(loss, inputs)
        return loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            save_marker(output_dir or self.args.output_dir, self.args.positive_marker)


def marked_prompt(prompt, positive: bool, markers: tuple[str, str]) -> list[dict]:
    """The row's prompt as a chat list ending with its marker (positive or negative), any old marker removed."""
    messages = strip_marker(as_chat(prompt), markers)
    return add_marker(messages, markers[0] if positive else markers[1])


def select_negatives(rows: list[dict], per_positive: float, seed: int) -> list[dict]:
    """Every positive and ``per_positive`` x as many negatives (a seeded random subset, in data order); -1 keeps
    every negative."""
    positives = [i for i, r in enumerate(rows) if r["label"]]
    negatives = [i for i, r in enumerate(rows) if not r["label"]]
    if not positives:
        raise DataError(f"nat: the labeled dataset has no positive completion ({len(rows)} rows, all negative): "
                        "NAT samples with the positive marker, which it would never have seen")
    if per_positive == -1 or len(negatives) <= per_positive * len(positives):
        if per_positive != -1 and len(negatives) < per_positive * len(positives):
            logger.info("nat: %d negatives for %d positives, fewer than --negatives_per_positive %g asks: all kept",
                        len(negatives), len(positives), per_positive)
        return rows
    keep = set(random.Random(seed).sample(negatives, round(per_positive * len(positives))))
    logger.info("nat: kept %d of %d negatives (--negatives_per_positive %g, %d positives)", len(keep),
                len(negatives), per_positive, len(positives))
    return [r for i, r in enumerate(rows) if r["label"] or i in keep]


def save_marker(folder: str, marker: str) -> None:
    """Write the positive marker next to the model, where rollout and evaluation look for it (``--marker auto``)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / MARKER_FILE, json.dumps({
        "marker": marker, "method": "nat",
        "about": "appended to the last user message of every prompt when sampling (negtune --marker auto)"},
        indent=2) + "\n")
