"""Step-level policy gradient from a labeled rollout whose negatives carry Monte-Carlo step values."""

from __future__ import annotations

import logging

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.prompts import as_chat, encode_prompt_completion, render_prompt_text
from negtune.data.rows import training_rows
from negtune.losses.logps import target_logits, token_logps
from negtune.losses.steps import best_of_k, nsa_step_scale, step_advantages, step_pg_loss, token_steps
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    keep_answered,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.reference import compute_reference_logps
from negtune.trainers.step_pg_config import StepPGConfig

logger = logging.getLogger(__name__)


def step_credit(row: dict, args: StepPGConfig) -> list[float]:
    """The advantage of each step of ``row`` under ``args.credit`` (one entry: the whole completion, for a row
    without step values).

    ``outcome`` and ``nsa`` start from the outcome advantage r − r̂ (r̂ the rollout's ``group_pass_rate``);
    ``step`` uses the stage's values, Q_0 = ``step_q0`` (the prompt valued like the prefixes), all under
    best-of-``bok_k``; a row without values then gets r − Q_0 (r − r̂ where the prompt was not valued)."""
    values, r = row.get("step_values"), float(row["label"])
    if args.credit == "outcome" or (args.credit == "nsa" and values is None):
        return [r - float(row["group_pass_rate"])]
    if args.credit == "nsa":
        scale = nsa_step_scale(list(values), bool(row["label"]), args.nsa_beta, row.get("step_samples"))
        return [(r - float(row["group_pass_rate"])) * s for s in scale]
    q0 = row.get("step_q0")
    q0 = float(row["group_pass_rate"] if q0 is None else q0)
    if values is None:
        return [r - best_of_k(torch.tensor(q0, dtype=torch.float64), args.bok_k).item()]
    q = best_of_k(torch.tensor([q0, *values[:-1]], dtype=torch.float64), args.bok_k)
    return step_advantages(torch.tensor([*q[1:].tolist(), r], dtype=torch.float64), q[0]).tolist()


def dataset_name(method: str, train_dataset) -> str:
    """How errors name the train dataset: with its path when it was given one."""
    return f"{method} train dataset" + ("" if isinstance(train_dataset, (list, datasets.Dataset))
                                        else f" {train_dataset}")


def row_name(what: str, i: int, row: dict) -> str:
    return f"{what}, row {i} (prompt_id {row.get('prompt_id')}, sample_idx {row.get('sample_idx')})"


def check_steps(row: dict, where: str) -> None:
    """A row's step columns agree with each other and with its completion, or a DataError naming the row."""
    values, ends = row.get("step_values"), row.get("step_ends")
    if values is None:
        return
    problem = None
    if ends is None or len(ends) != len(values):
        problem = (f"'step_ends' and 'step_values' must have one entry per step (got "
                   f"{None if ends is None else len(ends)} and {len(values)})")
    elif list(ends) != sorted(set(ends)) or ends[-1] != len(row["completion"]) or ends[0] <= 0:
        problem = f"'step_ends' must rise to the completion's length {len(row['completion'])} (got {list(ends)})"
    elif any(not 0.0 <= v <= 1.0 for v in values):
        problem = f"'step_values' must be probabilities in [0, 1] (got {list(values)})"
    if problem:
        raise DataError(f"{where}: {problem}; remake it with `negtune step-values`")


def completion_offsets(tok, prompt, completion: str, ids: list[int]) -> list[int]:
    """Start offset in ``completion`` of every token of ``ids`` (as :func:`encode_prompt_completion` encoded
    them; the appended EOS sits at the end of the completion). Needs a fast tokenizer."""
    if not getattr(tok, "is_fast", False):
        raise DataError(f"step_pg maps tokens to steps with character offsets, which {type(tok).__name__} (a slow "
                        "tokenizer) does not give; load the model's fast tokenizer (tokenizer.json)")
    text, special = render_prompt_text(tok, as_chat(prompt))
    enc = tok(text + completion, add_special_tokens=special, return_offsets_mapping=True)
    offsets = [start - len(text) for start, _ in enc["offset_mapping"]] + [len(completion)]
    if list(enc["input_ids"][: len(ids)]) != list(ids[: len(enc["input_ids"])]):
        raise RuntimeError("re-tokenizing a row for its offsets gave other tokens than its encoding")
    return offsets[: len(ids)]


class StepPGTrainer(NegtuneTrainer):
    """``StepPGTrainer(model, StepPGConfig(...), train_dataset=annotated, processing_class=tok)``.

    ``train_dataset``: the output of ``negtune step-values`` (for ``credit outcome``, any labeled rollout with
    group pass rates). Rows whose every token has advantage 0 (a prompt all right or all wrong under outcome
    credit) are left out, as NFT and GRPO leave out groups without signal.
    """

    method_name = "step_pg"

    def __init__(self, model, args: StepPGConfig, train_dataset, processing_class=None, peft_config=None, **kwargs):
        processing_class = training_tokenizer("StepPGTrainer", processing_class, args, kwargs)
        tok = processing_class
        rows = training_rows(train_dataset, "labeled", extra_columns=("group_pass_rate",))
        annotated = sum(r.get("step_values") is not None for r in rows)
        if args.credit != "outcome" and not annotated:
            raise DataError(f"--credit {args.credit} needs step values: no row of the train dataset has a "
                            "'step_values' column value; run `negtune step-values --rollout ROLLOUT --model MODEL "
                            "--out OUT` first and train on OUT (or pass --credit outcome)")
        what = dataset_name("step_pg", train_dataset)
        encoded, items = [], []
        for i, r in enumerate(rows):
            check_steps(r, row_name(what, i, r))
            encoded.append(encode_prompt_completion(tok, r["prompt"], r["completion"], args.max_length))
        answered = keep_answered(encoded, what, args.max_length)  # before the zero filter: names the real cause
        zero = 0
        for i in answered:
            r, (ids, labels) = rows[i], encoded[i]
            credit = step_credit(r, args)
            if len(credit) == 1:
                adv = credit * len(ids)
            else:
                steps = token_steps(completion_offsets(tok, r["prompt"], r["completion"], ids), list(r["step_ends"]))
                adv = [credit[s] for s in steps]
            adv = [a if lab != -100 else 0.0 for a, lab in zip(adv, labels)]
            if not any(adv):
                zero += 1
                continue
            items.append({"index": i, "input_ids": ids, "labels": labels, "advantages": adv})
        if not items:
            raise DataError(f"{what}: no usable samples: every one of the {len(answered)} rows has advantage 0 on "
                            "every token (all its prompt's samples right or all wrong, and no step values that "
                            "differ)")
        if zero:
            logger.warning("step_pg (credit %s): left out %d of %d rows whose every token has advantage 0",
                           args.credit, zero, len(rows))
        model = load_for_training(model, peft_config)
        old = compute_reference_logps(model, [(x["input_ids"], x["labels"]) for x in items], tok.pad_token_id,
                                      per_token=True)
        for x, o in zip(items, old):  # pi_old: the initial model, aligned with input_ids like the advantages
            x["old_logps"] = [0.0] + o
        self.left_out_rows = zero
        n_neg = sum(not rows[x["index"]]["label"] for x in items)
        self._data_description = (f"{len(items) - n_neg} positive and {n_neg} negative completions, {annotated} "
                                  f"with step values (credit {args.credit}; {zero} rows without signal left out)")
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=_TokenFloatsCollator(tok.pad_token_id, ("old_logps", "advantages")),
                         processing_class=tok, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.args
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        logps, mask = token_logps(logits, inputs["labels"][:, cols])
        old, adv = inputs["old_logps"][:, cols], inputs["advantages"][:, cols]  # both aligned with input_ids
        per_token = step_pg_loss(logps, old, adv, a.epsilon, a.epsilon_high)
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
        with torch.no_grad():
            ratio = torch.exp((logps - old).clamp(max=10.0))[mask]
            clipped = ((ratio < 1 - a.epsilon) | (ratio > 1 + a.epsilon_high)).float()
            self.record(clip_frac=clipped.mean() if clipped.numel() else 0.0,
                        advantage_mean=adv[mask].mean() if mask.any() else 0.0)
        self.check_finite(loss, inputs)
        return loss


class _TokenFloatsCollator(PaddedCollator):
    """Pads the per-token float columns ``keys`` with 0 to the batch's width."""

    def __init__(self, pad_token_id: int, keys: tuple[str, ...]):
        super().__init__(pad_token_id)
        self.keys = keys

    def __call__(self, features):
        floats = {k: [f.pop(k) for f in features] for k in self.keys}
        batch = super().__call__(features)
        width = batch["input_ids"].shape[1]
        for k, values in floats.items():
            batch[k] = torch.tensor([v + [0.0] * (width - len(v)) for v in values])
        return batch
