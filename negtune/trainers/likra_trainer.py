"""Likra trainer: a positive and a negative LoRA head on one base, each learning its own examples."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import datasets
import torch
from transformers import TrainerCallback

from negtune.data.io import DataError, atomic_write_text
from negtune.data.rows import training_rows
from negtune.losses.logps import mean_token_nll, target_logits, token_logps
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    absolute_adapter_base,
    encode_rows,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.likra_config import HEADS, MANIFEST, LikraConfig


class LikraTrainer(NegtuneTrainer):
    """``LikraTrainer(model, LikraConfig(...), train_dataset=labeled, processing_class=tok, peft_config=lora)``.

    ``train_dataset``: a labeled dataset (``negtune rollout`` output, a path to it, or rows with prompt,
    completion and a boolean ``label``): positives train the positive head, negatives the negative head. A head
    without examples stays at LoRA's initialisation, i.e. equals the base (negatives only: the authors'
    BASE-LIKRA). Saved: ``OUTPUT/positive`` and ``OUTPUT/negative`` (PEFT adapter folders: either works as
    ``--model`` alone) and ``OUTPUT/likra.json`` (heads, beta, base).
    """

    method_name = "likra"

    def __init__(self, model, args: LikraConfig, train_dataset, processing_class=None, peft_config=None, **kwargs):
        processing_class = training_tokenizer("LikraTrainer", processing_class, args, kwargs)
        if peft_config is None:
            raise DataError("likra trains two LoRA adapters on one base: pass a LoRA config (--use_peft, "
                            "--lora_r, --lora_target_modules ...)")
        rows = training_rows(train_dataset, "labeled")
        tok = processing_class
        rows, pairs = encode_rows(rows, tok, args.max_length, f"{self.method_name} train dataset")
        items = [{"index": i, "input_ids": ids, "labels": labels, "is_positive": bool(r["label"])}
                 for i, (r, (ids, labels)) in enumerate(zip(rows, pairs))]
        n_pos = sum(x["is_positive"] for x in items)
        self._data_description = (f"{n_pos} positive completions (positive head) and {len(items) - n_pos} "
                                  "negative ones (negative head)")
        from peft import get_peft_model

        model = get_peft_model(load_for_training(model), peft_config, adapter_name=HEADS[0])
        model.add_adapter(HEADS[1], peft_config)
        _train_both_heads(model)
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)
        self._head_sampler: HeadBatchSampler | None = None
        self.add_callback(_SamplerEpoch(self))

    def _get_train_sampler(self, train_dataset=None):
        data = train_dataset if train_dataset is not None else self.train_dataset
        # the loader's own batch size (auto_find_batch_size may have lowered it) and one head per optimizer step
        self._head_sampler = HeadBatchSampler(data["is_positive"], self._train_batch_size, self.args.world_size,
                                              self.args.seed, self.args.gradient_accumulation_steps)
        return self._head_sampler

    def create_optimizer(self, *args, **kwargs):
        # a resumed run loads the heads with PEFT's set_adapter, which freezes the inactive one: both must be in
        # the optimizer (and in the saved optimizer state it reloads)
        _train_both_heads(self.model)
        return super().create_optimizer(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        positive = inputs["is_positive"].bool()
        if positive.any() and not positive.all():
            raise RuntimeError("likra: a micro-batch mixes positive and negative examples; LikraTrainer's sampler "
                               "gives each training micro-batch one head (evaluation batches are not supported)")
        head = HEADS[0] if positive[0] else HEADS[1]
        peft_model = self.accelerator.unwrap_model(model)
        if peft_model.active_adapter != head:
            peft_model.set_adapter(head)
            _train_both_heads(peft_model)  # set_adapter freezes the other head: both stay in the optimizer
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        logps, mask = token_logps(logits, inputs["labels"][:, cols])
        loss = mean_token_nll(logps, mask)
        self.record(**{f"{head}_nll": loss.detach()})
        self.check_finite(loss, inputs)
        return loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        folder = Path(output_dir or self.args.output_dir)
        if self.args.should_save:
            for head in HEADS:
                absolute_adapter_base(str(folder / head))
            model = self.accelerator.unwrap_model(self.model)
            base = getattr(model.peft_config[HEADS[0]], "base_model_name_or_path", None)
            atomic_write_text(folder / MANIFEST, json.dumps({
                "method": "likra", "positive": HEADS[0], "negative": HEADS[1], "beta": self.args.beta,
                "base": str(Path(base).resolve()) if base and Path(base).is_dir() else base}, indent=2) + "\n")


def _train_both_heads(model) -> None:
    """Every parameter of either head trainable (LoRA matrices, and modules_to_save copies), the base frozen."""
    for name, p in model.named_parameters():
        if any(f".{head}." in name for head in HEADS):
            p.requires_grad_(True)


class _SamplerEpoch(TrainerCallback):
    """Tells the sampler which epoch starts, from the trainer's state: accelerate's sharded loader does not
    forward ``set_epoch`` to it, and a resumed run must draw the resumed epoch's order."""

    def __init__(self, trainer: LikraTrainer):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.trainer._head_sampler is not None:
            self.trainer._head_sampler.set_epoch(math.floor(state.epoch + 1e-6))
        return control


class HeadBatchSampler(torch.utils.data.Sampler):
    """Indices in blocks of ``batch_size`` examples of one head, ``world_size x accumulation`` blocks of a head in
    a row (each process gets ``accumulation`` of them: every process trains the same head, and each optimizer
    step one head), the heads alternating while both have blocks left. A head's last round is filled with others
    of its examples drawn again, so no micro-batch mixes heads. Shuffled per epoch from ``seed`` (``set_epoch``;
    a resumed run draws the same order)."""

    def __init__(self, is_positive, batch_size: int, world_size: int, seed: int, accumulation: int = 1):
        self.groups = [[i for i, p in enumerate(is_positive) if p], [i for i, p in enumerate(is_positive) if not p]]
        self.round = batch_size * world_size * accumulation
        self.seed, self.epoch = seed, 0

    def _rounds(self, n: int) -> int:
        return math.ceil(n / self.round) if n else 0

    def __len__(self) -> int:
        return sum(self._rounds(len(g)) for g in self.groups) * self.round

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = random.Random(f"likra-{self.seed}-{self.epoch}")
        self.epoch += 1  # a loader that never calls set_epoch still gets a new order each epoch
        rounds = []
        for group in self.groups:
            order = rng.sample(group, len(group))
            size = self._rounds(len(group)) * self.round
            order += [rng.choice(group) for _ in range(size - len(order))]
            rounds.append([order[k : k + self.round] for k in range(0, size, self.round)])
        pos, neg = rounds
        for k in range(max(len(pos), len(neg))):
            for head in (pos, neg):
                if k < len(head):
                    yield from head[k]
