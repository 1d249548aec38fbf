"""Offline NFT / RFT from a labeled dataset made by ``negtune rollout``."""

from __future__ import annotations

import logging

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.prompts import encode_prompt_completion
from negtune.data.rows import training_rows
from negtune.losses.logps import target_logits, token_logps
from negtune.losses.rlvr import nft_prompt_weight, nft_token_loss
from negtune.trainers.base import NegtuneTrainer, PaddedCollator, keep_answered, load_for_training
from negtune.trainers.nft_config import OfflineNFTConfig
from negtune.trainers.reference import compute_reference_logps

logger = logging.getLogger(__name__)


class OfflineNFTTrainer(NegtuneTrainer):
    """``OfflineNFTTrainer(model, OfflineNFTConfig(...), train_dataset=labeled, processing_class=tok)``.

    r-hat comes from each row's ``group_pass_rate``; pi_old (the sampler) is computed once before training
    with the initial model, which is the sampler when the rollout used this model (the sampler's stored
    ``logprobs`` are token-aligned with the sampler's own tokens, which re-tokenising text need not
    reproduce, so they are not relied on). Groups with r-hat in {0, 1} are dropped (``drop_homogeneous``).
    """

    method_name = "nft_offline"

    def __init__(self, model, args: OfflineNFTConfig, train_dataset, processing_class=None, peft_config=None,
                 **kwargs):
        if processing_class is None:
            raise ValueError("OfflineNFTTrainer needs processing_class (the tokenizer)")
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
        encoded = [encode_prompt_completion(tok, r["prompt"], r["completion"], args.max_length) for r in kept]
        answered = keep_answered(encoded, f"{self.method_name} train dataset", args.max_length)
        if len(answered) < len(encoded):
            encoded, kept = [encoded[j] for j in answered], [kept[j] for j in answered]
        old = compute_reference_logps(model, encoded, tok.pad_token_id, per_token=True)
        items = [{"index": i, "input_ids": ids, "labels": labels, "old_logps": [0.0] + o,
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


class _OldLogpsCollator(PaddedCollator):
    def __call__(self, features):
        old = [f.pop("old_logps") for f in features]
        batch = super().__call__(features)
        width = batch["input_ids"].shape[1]
        batch["old_logps"] = torch.tensor([o + [0.0] * (width - len(o)) for o in old])
        return batch
