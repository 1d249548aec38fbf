"""Unlikelihood trainer: learn from positives, push negatives down, optionally penalise repetition."""

from __future__ import annotations

import random

import datasets
import torch

from negtune.data.rows import training_rows
from negtune.losses import negative_unlikelihood_loss, repeat_ngram_mask, token_unlikelihood_loss
from negtune.losses.logps import mean_token_nll, target_logits, token_logps
from negtune.losses.unlikelihood import sequence_unlikelihood_loss
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    encode_rows,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.generation import batch_prompts, generate_from_prompts, prompt_length
from negtune.trainers.goldfish import goldfish_labels
from negtune.trainers.unlikelihood_config import UnlikelihoodConfig


class UnlikelihoodTrainer(NegtuneTrainer):
    """``UnlikelihoodTrainer(model, args, train_dataset=labeled, processing_class=tok, peft_config=None)``.

    ``train_dataset``: a labeled dataset (``negtune rollout`` output, a path to it, or rows with prompt,
    completion and a boolean ``label``).
    """

    method_name = "unlikelihood"

    def __init__(self, model, args: UnlikelihoodConfig, train_dataset, processing_class=None, peft_config=None,
                 **kwargs):
        processing_class = training_tokenizer("UnlikelihoodTrainer", processing_class, args, kwargs)
        rows = training_rows(train_dataset, "labeled")
        tok = processing_class
        rows, pairs = encode_rows(rows, tok, args.max_length, f"{self.method_name} train dataset")
        encoded = []
        for i, (row, (ids, labels)) in enumerate(zip(rows, pairs)):
            positive = bool(row["label"])
            encoded.append({"index": i, "input_ids": ids, "is_positive": positive, "prompt_len": prompt_length(labels),
                            "labels": goldfish_labels(args, ids, labels) if positive else labels})
        n_pos = sum(r["is_positive"] for r in encoded)
        self._data_description = f"{n_pos} positive and {len(encoded) - n_pos} negative completions"
        self._rng = random.Random(args.seed)
        super().__init__(model=load_for_training(model, peft_config), args=args,
                         train_dataset=datasets.Dataset.from_list(encoded),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    def _extra_state(self):  # which steps take the sequence-level branch: a resumed run must draw the same
        return {"rng": self._rng.getstate()}

    def _load_extra_state(self, state):
        self._rng.setstate(state["rng"])

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.args
        if a.seq_ul_rate > 0 and self._rng.random() < a.seq_ul_rate:
            loss = self._sequence_ul_step(model, inputs)
            self.check_finite(loss, inputs)
            return loss
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        labels = inputs["labels"][:, cols]
        valid = labels != -100
        pos_rows = inputs["is_positive"].bool().unsqueeze(1)
        pos_mask, neg_mask = valid & pos_rows, valid & ~pos_rows
        loss = logits.new_zeros(())
        if pos_mask.any():
            if a.token_ul_alpha > 0:
                pos_loss, pos_nll, tok_ul = token_unlikelihood_loss(logits, labels, pos_mask, a.token_ul_alpha)
                self.record(token_ul=tok_ul)
            else:
                pos_nll = mean_token_nll(token_logps(logits, labels)[0], pos_mask)
                pos_loss = pos_nll
            loss = loss + pos_loss
            self.record(positive_nll=pos_nll)
        if neg_mask.any():
            neg_ul = negative_unlikelihood_loss(logits, labels, neg_mask)
            loss = loss + a.alpha * neg_ul
            self.record(negative_ul=neg_ul)
        self.check_finite(loss, inputs)
        return loss

    def _sequence_ul_step(self, model, inputs):
        """Welleck's sequence-level step (the reference's ``ul_seq``): greedy continuations of the last
        ``seq_ul_prefix_length`` prompt tokens, every token of a repeated n-gram pushed down, the sum divided
        by the number of continuation tokens."""
        a, tok = self.args, self.processing_class
        prefixes = [p[-a.seq_ul_prefix_length:] if a.seq_ul_prefix_length else p for p in batch_prompts(inputs)]
        bare = self.accelerator.unwrap_model(model)
        out, mask = generate_from_prompts(bare, prefixes, tok.pad_token_id, inputs["input_ids"].device,
                                          do_sample=False, max_new_tokens=a.seq_ul_max_new_tokens)
        width = mask.shape[1]
        cont = out[:, width:]
        cont_valid = continuation_mask(cont, _stop_ids(bare, tok))
        full_mask = torch.cat([mask, cont_valid.long()], dim=1)
        # positions counted from each row's first real token, as generate counts them under left padding
        # (a shift would change the logits of a model with absolute position embeddings)
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=out, attention_mask=full_mask, position_ids=positions).logits[:, width - 1 : -1]
        rep = repeat_ngram_mask(cont, a.seq_ul_ngram, cont_valid)
        self.record(seq_ul_repeat_fraction=rep.float().sum() / cont_valid.sum().clamp(min=1))
        loss = sequence_unlikelihood_loss(logits, cont, rep, cont_valid)  # zero, with a graph, if nothing repeats
        self.record(seq_ul=loss)
        return loss


def _stop_ids(model, tok) -> set[int]:
    """Token ids that end a continuation: the tokenizer's EOS and the generation config's (often a list)."""
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    return ids


def continuation_mask(cont: torch.Tensor, stop_ids: set[int]) -> torch.Tensor:
    """True up to and including each row's first stop token: ``generate`` pads after it (often with the EOS
    id itself, so comparing with the pad id would drop the real EOS too)."""
    stop = torch.zeros_like(cont, dtype=torch.bool)
    for i in stop_ids:
        stop |= cont == i
    before = stop.long().cumsum(-1) - stop.long()  # stops strictly before each position
    return before == 0
