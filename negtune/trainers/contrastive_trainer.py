"""Contrastive rationale trainer (QCRD-style) with self-adversarial negatives and an online discriminator.

The discriminator is trained alongside the model, once per optimizer step: each micro-batch adds its BCE
gradient, and after the Trainer's optimizer step the mean over the step's micro-batches (of every process,
all-reduced under DDP, so all ranks keep identical weights) is applied by the discriminator's own Adam.
"""

from __future__ import annotations

import math
import random
from collections import deque

import datasets
import torch
from transformers import TrainerCallback

from negtune.data.prompts import encode_prompt_completion
from negtune.data.rows import training_rows
from negtune.losses import contrastive_rationale_loss
from negtune.losses.logps import target_logits, token_logps
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    keep_answered,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.contrastive_config import ContrastiveRationaleConfig
from negtune.trainers.generation import batch_prompts, generate_from_prompts, prompt_length
from negtune.trainers.goldfish import goldfish_labels

POSITIVE, NEGATIVE, ANSWER = 0, 1, 2


class RationaleDiscriminator(torch.nn.Module):
    """Scores (question, rationale) quality from mean-pooled token embeddings; trained online with BCE."""

    def __init__(self, vocab_size: int, dim: int = 64):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, dim)
        self.head = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.Tanh(), torch.nn.Linear(dim, 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head(pooled).squeeze(-1)


class _DiscriminatorStep(TrainerCallback):
    """Applies the discriminator gradient gathered over a step's micro-batches once the step is taken
    (``on_step_end`` follows the Trainer's optimizer step and comes before a checkpoint is saved)."""

    def __init__(self, trainer: ContrastiveRationaleTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._step_discriminator()


def _per_row_nll(model, batch):
    """Mean answer-token NLL of each row (only answer columns go through the output layer)."""
    logits, cols = target_logits(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    logps, mask = token_logps(logits, batch["labels"][:, cols])
    return -logps.sum(-1) / mask.sum(-1).clamp(min=1)


class QuestionGroupedSampler(torch.utils.data.Sampler):
    """Each question's rows one after another, the questions in a random order drawn from ``seed + epoch``
    (the Trainer calls ``set_epoch``), so a resumed run sees the same order."""

    def __init__(self, groups: list[int], seed: int):
        blocks: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            blocks.setdefault(int(g), []).append(i)
        self.blocks, self.n, self.seed, self.epoch = list(blocks.values()), len(groups), seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = torch.randperm(len(self.blocks), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        for q in order.tolist():
            yield from self.blocks[q]


class ContrastiveRationaleTrainer(NegtuneTrainer):
    """``ContrastiveRationaleTrainer(model, args, train_dataset=labeled, processing_class=tok)``.

    The labeled dataset gives positives (label True) and failed rollouts (label False); with an ``answer``
    column it also gives the gold-answer target ``\\boxed{answer}`` for L_answer.
    """

    method_name = "contrastive"

    def __init__(self, model, args: ContrastiveRationaleConfig, train_dataset, processing_class=None,
                 peft_config=None, **kwargs):
        processing_class = training_tokenizer("ContrastiveRationaleTrainer", processing_class, args, kwargs)
        tok = processing_class
        rows = training_rows(train_dataset, "labeled")
        items, answers_done, questions = [], set(), {}
        self._gold: list[str | None] = []  # per item: the gold answer (verifies self-adversarial samples)
        for row in rows:
            gold = str(row["answer"]) if row.get("answer") not in (None, "") else None
            key = str(row["prompt"])
            group = questions.setdefault(key, len(questions))  # QCRD's sets S+_i, S-_i are per question
            ids, labels = encode_prompt_completion(tok, row["prompt"], row["completion"], args.max_length)
            items.append({"input_ids": ids, "labels": labels, "kind": POSITIVE if row["label"] else NEGATIVE,
                          "group": group})
            self._gold.append(gold)
            if args.alpha_answer > 0 and gold is not None and key not in answers_done:
                answers_done.add(key)
                ids, labels = encode_prompt_completion(tok, row["prompt"], f"\\boxed{{{gold}}}", args.max_length)
                items.append({"input_ids": ids, "labels": labels, "kind": ANSWER, "group": group})
                self._gold.append(gold)
        answered = keep_answered([(x["input_ids"], x["labels"]) for x in items], "contrastive train dataset",
                                 args.max_length)
        if len(answered) < len(items):
            items, self._gold = [items[j] for j in answered], [self._gold[j] for j in answered]
        for i, item in enumerate(items):
            item["index"] = i
            item["prompt_len"] = prompt_length(item["labels"])
            if item["kind"] != NEGATIVE:  # Goldfish (when set) on the likelihood terms only
                item["labels"] = goldfish_labels(args, item["input_ids"], item["labels"])
        n_pos = sum(x["kind"] == POSITIVE for x in items)
        n_neg = sum(x["kind"] == NEGATIVE for x in items)
        self._data_description = f"{n_pos} positive and {n_neg} negative rationales, {len(answers_done)} answers"
        model = load_for_training(model, peft_config)
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)
        self.discriminator = None
        if args.use_discriminator:
            self.discriminator = RationaleDiscriminator(len(tok), args.disc_dim).to(self.args.device)
            self.disc_opt = torch.optim.Adam(self.discriminator.parameters(), lr=args.disc_lr)
            self._disc_micro_batches = 0  # micro-batches whose gradient the discriminator holds
            self.add_callback(_DiscriminatorStep(self))
            if self.accelerator.num_processes > 1:  # the same start on every rank; the updates are all-reduced
                from accelerate.utils import broadcast

                for p in self.discriminator.parameters():
                    p.data.copy_(broadcast(p.data, from_process=0))
        self._snapshots: deque = deque(maxlen=args.snapshot_lag + 1)
        self._adversarial: deque = deque(maxlen=args.adversarial_pool_size)
        self._last_snapshot_step = -1
        self._rng = random.Random(args.seed)

    def _get_train_sampler(self, train_dataset=None):
        """QCRD's per-question min / max need a question's rationales in one micro-batch: then the batches are
        whole questions in a seeded random order; otherwise the Trainer's own shuffle."""
        if self.args.positive_set == "mean" and self.args.negative_set == "mean":
            return super()._get_train_sampler(train_dataset)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return QuestionGroupedSampler(dataset["group"], seed)

    # --- checkpointed state (exact resume) ---------------------------------------------------------------
    def _extra_state(self):
        """The lagged snapshots, the self-adversarial pool, the discriminator with its optimizer and the
        sampling generator: none of them is in the model or the Trainer's optimizer, all of them shape later
        steps. (Snapshots are copies of the trainable weights: small under LoRA, model-sized otherwise.)"""
        state = {"snapshots": list(self._snapshots), "adversarial": [list(x) for x in self._adversarial],
                 "last_snapshot_step": self._last_snapshot_step, "rng": self._rng.getstate()}
        if self.discriminator is not None:
            state.update(discriminator=self.discriminator.state_dict(), disc_opt=self.disc_opt.state_dict())
        return state

    def _load_extra_state(self, state):
        self._snapshots.clear()
        self._snapshots.extend(state["snapshots"])
        self._adversarial.clear()
        self._adversarial.extend(tuple(x) for x in state["adversarial"])
        self._last_snapshot_step = state["last_snapshot_step"]
        self._rng.setstate(state["rng"])
        if self.discriminator is not None and "discriminator" in state:
            self.discriminator.load_state_dict(state["discriminator"])
            self.disc_opt.load_state_dict(state["disc_opt"])

    # --- self-adversarial negatives -------------------------------------------------------------------
    def _trainable(self, model):
        return {n: p for n, p in self.accelerator.unwrap_model(model).named_parameters() if p.requires_grad}

    def _maybe_snapshot_and_sample(self, model, inputs):
        a, step = self.args, self.state.global_step
        if not a.self_adversarial or step % a.snapshot_every or step == self._last_snapshot_step:
            return
        self._last_snapshot_step = step
        self._snapshots.append({n: p.detach().cpu().clone() for n, p in self._trainable(model).items()})
        if len(self._snapshots) == self._snapshots.maxlen:
            self._sample_from_snapshot(model, inputs, self._snapshots[0])

    @torch.no_grad()
    def _sample_from_snapshot(self, model, inputs, snapshot):
        from negtune.rollout.verify_pool import VerifierPool

        a, tok = self.args, self.processing_class
        params = self._trainable(model)
        current = {n: p.detach().clone() for n, p in params.items()}
        rows = [i for i, k in enumerate(inputs["kind"].tolist()) if k != ANSWER]
        prompts = batch_prompts(inputs, rows)
        if not prompts:
            return
        try:
            for n, p in params.items():
                p.copy_(snapshot[n].to(p.device))
            out, mask = generate_from_prompts(
                self.accelerator.unwrap_model(model), prompts, tok.pad_token_id, self.args.device, do_sample=True,
                temperature=a.adversarial_temperature, top_k=0, top_p=1.0,
                max_new_tokens=a.adversarial_max_new_tokens)
        finally:
            for n, p in params.items():
                p.copy_(current[n])
        texts = tok.batch_decode(out[:, mask.shape[1]:], skip_special_tokens=True)
        answers = [self._gold[int(inputs["index"][i])] for i in rows]
        keep = list(range(len(texts)))
        if a.adversarial_verifier and all(ans is not None for ans in answers):
            with VerifierPool(a.adversarial_verifier, workers=0, timeout=5.0) as pool:
                verdicts, _ = pool.verify(texts, answers)
            keep = [k for k, v in enumerate(verdicts) if not v.label]  # a correct sample is no negative
        for k in keep:
            completion_ids = tok(texts[k], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids_k = (prompts[k] + completion_ids)[: a.max_length]
            self._adversarial.append((ids_k, ([-100] * len(prompts[k]) + completion_ids)[: a.max_length],
                                      int(inputs["group"][rows[k]])))
        self.record(adversarial_sampled=len(texts), adversarial_kept=len(keep))

    def _adversarial_batch(self, device):
        if not self._adversarial:
            return None
        picked = self._rng.sample(list(self._adversarial), min(self.args.adversarial_per_batch, len(self._adversarial)))
        collate = PaddedCollator(self.processing_class.pad_token_id)
        batch = collate([{"input_ids": i, "labels": lab, "group": g} for i, lab, g in picked])
        return {k: v.to(device) for k, v in batch.items()}

    # --- online discriminator: gradient per micro-batch, one update per optimizer step -----------------------
    def _accumulate_discriminator(self, ids, mask, target):
        """Adds this micro-batch's BCE gradient (rationales only: positive = 1, negative = 0) to the
        discriminator's ``.grad``; :meth:`_step_discriminator` applies it after the optimizer step."""
        self.discriminator.train()
        scores = self.discriminator(ids, mask)
        d_loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, target)
        d_loss.backward()
        self._disc_micro_batches += 1
        self.record(discriminator_loss=d_loss)

    def _step_discriminator(self):
        """One discriminator update with the mean gradient of the step's micro-batches over all processes.

        Under DDP the gradient sums and micro-batch counts of the ranks are all-reduced first (every rank
        calls this once per step, so the collective always matches), so every rank takes the same update and
        the discriminators stay identical. No rank saw a rationale: no update (as before, no data no step)."""
        params = list(self.discriminator.parameters())
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        count = float(self._disc_micro_batches)
        if self.accelerator.num_processes > 1:
            flat = torch.cat([g.reshape(-1) for g in grads] + [grads[0].new_tensor([count])])
            flat = self.accelerator.reduce(flat, reduction="sum")
            grads = [g.view_as(p) for g, p in zip(flat[:-1].split([p.numel() for p in params]), params)]
            count = float(flat[-1])
        self._disc_micro_batches = 0
        if count > 0:
            for p, g in zip(params, grads):
                p.grad = g / count
            self.disc_opt.step()
        self.disc_opt.zero_grad(set_to_none=True)

    # --- loss ---------------------------------------------------------------------------------------------
    def _quality(self, model, inputs, kinds):
        """Trains the discriminator on this batch's rationales; returns its quality score s in (0, 1) per
        row (no gradient to the model), or None (no discriminator, or still in its warm-up: uniform weights)."""
        if self.discriminator is None:
            return None
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        is_rat = kinds != ANSWER
        if is_rat.any() and model.training:  # not in evaluation (no step follows it)
            self._accumulate_discriminator(ids[is_rat], mask[is_rat], (kinds[is_rat] == POSITIVE).float())
        if self.state.global_step < self.args.disc_warmup_steps:
            return None
        with torch.no_grad():
            return torch.sigmoid(self.discriminator(ids, mask))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.args
        self._maybe_snapshot_and_sample(model, inputs)
        kinds, groups = inputs["kind"], inputs["group"]
        pos, neg = kinds == POSITIVE, kinds == NEGATIVE
        nll = _per_row_nll(model, inputs)
        quality = self._quality(model, inputs, kinds)
        # QCRD's quality guidance: positives weighted by s, negatives by 1 - s (a confusable negative is
        # pushed less); the loss takes weighted means, so the weights' scale does not matter
        pos_w, neg_w = (None, None) if quality is None else (quality[pos], 1.0 - quality[neg])
        neg_nll, neg_groups = nll[neg], groups[neg]
        adv = self._adversarial_batch(nll.device)
        if adv is not None:
            neg_nll = torch.cat([neg_nll, _per_row_nll(model, adv)])
            neg_groups = torch.cat([neg_groups, adv["group"]])
            if neg_w is not None:  # self-adversarial negatives are scored by the same discriminator
                with torch.no_grad():
                    adv_q = torch.sigmoid(self.discriminator(adv["input_ids"], adv["attention_mask"]))
                neg_w = torch.cat([neg_w, 1.0 - adv_q])
        alpha_neg = a.alpha_neg * a.neg_decay ** math.floor(self.state.epoch or 0)
        loss, parts = contrastive_rationale_loss(
            nll[pos], neg_nll, nll[kinds == ANSWER], pos_w, neg_w, delta=a.delta,
            alpha_answer=a.alpha_answer, alpha_pos=a.alpha_pos, alpha_neg=alpha_neg,
            pos_groups=groups[pos], neg_groups=neg_groups, positive_set=a.positive_set, negative_set=a.negative_set,
        )
        self.record(positive_nll=parts["positive"], negative_margin=parts["negative"], answer_nll=parts["answer"],
                    alpha_neg=alpha_neg)
        self.check_finite(loss, inputs)
        return loss
