"""Offline NFT / RFT from a labeled dataset made by ``negtune rollout``."""

from __future__ import annotations

import logging

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.prompts import as_chat, encode_prompt_completion, render_chat
from negtune.data.rows import training_rows
from negtune.losses.logps import target_logits, token_logps
from negtune.losses.rlvr import nft_prompt_weight, nft_token_loss
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    keep_answered,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.nft_config import OfflineNFTConfig
from negtune.trainers.reference import compute_reference_logps

logger = logging.getLogger(__name__)


class OfflineNFTTrainer(NegtuneTrainer):
    """``OfflineNFTTrainer(model, OfflineNFTConfig(...), train_dataset=labeled, processing_class=tok)``.

    r-hat comes from each row's ``group_pass_rate``. pi_old is the sampler: a row that carries the sampler's
    ``logprobs`` and ``token_ids`` (``negtune rollout --logprobs``) is trained on exactly those tokens with
    those log-probs (temperature-1 log-probs, as the trainer's own); other rows get pi_old computed once
    before training with the initial model, which is the sampler when the rollout used this model (text
    re-tokenised need not give the sampler's tokens back, so log-probs without token ids are not used). The
    log says which. Groups with r-hat in {0, 1} are dropped (``drop_homogeneous``).
    """

    method_name = "nft_offline"

    def __init__(self, model, args: OfflineNFTConfig, train_dataset, processing_class=None, peft_config=None,
                 **kwargs):
        processing_class = training_tokenizer("OfflineNFTTrainer", processing_class, args, kwargs)
        self.method_name = f"{args.method}_offline"  # the registry name: nft_offline or rft_offline
        rows = training_rows(train_dataset, "labeled", extra_columns=("group_pass_rate",))
        if args.neg_weight == 0:  # RFT: every positive (all-correct groups included); negatives weigh nothing
            kept = [r for r in rows if r["label"]]
        else:
            kept = [r for r in rows if not (args.drop_homogeneous and r["group_pass_rate"] in (0.0, 1.0))]
        if not kept:
            raise DataError(f"no usable samples: all {len(rows)} rows are in groups that are all right or all "
                            "wrong (drop_homogeneous) or are negatives under RFT")
        self.dropped_rows = len(rows) - len(kept)
        if self.dropped_rows:
            logger.warning("offline %s: dropped %d of %d rows (%s)", args.method, self.dropped_rows, len(rows),
                           "negatives" if args.neg_weight == 0 else "homogeneous groups")
        tok = processing_class
        model = load_for_training(model, peft_config)
        encoded, sampler_old = zip(*[_encode(tok, r, args.max_length) for r in kept])
        answered = keep_answered(list(encoded), f"{self.method_name} train dataset", args.max_length)
        encoded, sampler_old, kept = ([seq[j] for j in answered] for seq in (encoded, sampler_old, kept))
        missing = [j for j, o in enumerate(sampler_old) if o is None]
        computed = compute_reference_logps(model, [encoded[j] for j in missing], tok.pad_token_id, per_token=True)
        old = list(sampler_old)
        for j, o in zip(missing, computed):
            old[j] = [0.0] + o
        self.pi_old_source = {"sampler": len(old) - len(missing), "initial_model": len(missing)}
        logger.info("offline %s: pi_old from the sampler's stored log-probs for %d rows, computed once with the "
                    "initial model for %d rows", args.method, len(old) - len(missing), len(missing))
        items = [{"index": i, "input_ids": ids, "labels": labels, "old_logps": o,
                  "is_positive": bool(r["label"]), "pass_rate": float(r["group_pass_rate"])}
                 for i, ((ids, labels), o, r) in enumerate(zip(encoded, old, kept))]
        n_pos = sum(x["is_positive"] for x in items)
        self._data_description = (f"{n_pos} positive and {len(items) - n_pos} negative completions "
                                  f"({self.dropped_rows} rows dropped)")
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=_OldLogpsCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        a = self.args
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        logps, mask = token_logps(logits, inputs["labels"][:, cols])
        old = inputs["old_logps"][:, cols]
        rate = inputs["pass_rate"].float()
        per_token = nft_token_loss(logps, old, inputs["is_positive"], rate, eps=a.nft_eps,
                                   clip=(a.pass_rate_min, a.pass_rate_max), neg_weight=a.neg_weight)
        weight = nft_prompt_weight(rate.clamp(a.pass_rate_min, a.pass_rate_max), a.prompt_weight)
        loss = (per_token * weight.unsqueeze(1) * mask).sum() / mask.sum().clamp(min=1)
        with torch.no_grad():
            ratio = torch.exp((logps - old).clamp(max=10.0))[mask]
            self.record(ratio_mean=ratio.mean() if ratio.numel() else 1.0,
                        positive_frac=inputs["is_positive"].float().mean())
        self.check_finite(loss, inputs)
        return loss


def _encode(tok, row: dict, max_length: int) -> tuple[tuple[list[int], list[int]], list[float] | None]:
    """(input_ids, labels) and, when the row carries the sampler's tokens and log-probs, pi_old per position
    (aligned with input_ids: log pi_old(ids[t] | ids[<t]), 0 on prompt positions); else None."""
    token_ids, logprobs = row.get("token_ids"), row.get("logprobs")
    if not token_ids or not logprobs or len(token_ids) != len(logprobs):
        return encode_prompt_completion(tok, row["prompt"], row["completion"], max_length), None
    prompt_ids = render_chat(tok, as_chat(row["prompt"]))
    ids = (prompt_ids + list(token_ids))[:max_length]
    labels = ([-100] * len(prompt_ids) + list(token_ids))[:max_length]
    return (ids, labels), ([0.0] * len(prompt_ids) + [float(x) for x in logprobs])[:max_length]


class _OldLogpsCollator(PaddedCollator):
    def __call__(self, features):
        old = [f.pop("old_logps") for f in features]
        batch = super().__call__(features)
        width = batch["input_ids"].shape[1]
        batch["old_logps"] = torch.tensor([o + [0.0] * (width - len(o)) for o in old])
        return batch
