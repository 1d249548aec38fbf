"""Token-level forgetting trainer: positive answer tokens learned, negative ones forgotten with a rising weight."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import datasets
import torch

from negtune.data.io import DataError, atomic_write_text
from negtune.data.rows import training_rows
from negtune.losses.logps import mean_token_nll, target_logits, token_logps
from negtune.losses.token_forget import (
    forgetting_coefficient,
    influence_scores,
    split_tokens,
    token_forget_loss,
)
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    encode_rows,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.reference import compute_reference_logps
from negtune.trainers.token_forget_config import TokenForgetConfig

logger = logging.getLogger(__name__)

SPLIT_FILE = "token_split.json"


class TokenForgetTrainer(NegtuneTrainer):
    """``TokenForgetTrainer(model, TokenForgetConfig(...), train_dataset=rows, processing_class=tok,
    peft_config=None)``.

    ``train_dataset``: fine-tuning text (prompt/completion rows, a file or a ``negtune rollout`` folder; with a
    ``label`` column only the positive rows are used). Before training, the initial model (under LoRA: the
    base, the same) and ``args.reference_model`` score every answer token; the split is global over the
    dataset. ``save_model`` writes :data:`SPLIT_FILE` (counts, threshold, the tokens most often forgotten).
    """

    method_name = "token_forget"

    def __init__(self, model, args: TokenForgetConfig, train_dataset, processing_class=None, peft_config=None,
                 **kwargs):
        processing_class = training_tokenizer("TokenForgetTrainer", processing_class, args, kwargs)
        if args.rho < 1.0 and not args.reference_model:
            raise DataError(f"--rho {args.rho} splits tokens by their influence score, which needs "
                            "--reference_model (a model fine-tuned on a subset of the same data); --rho 1 is plain "
                            "SFT and needs none")
        tok = processing_class
        rows = training_rows(train_dataset, "sft")
        rows, encoded = encode_rows(rows, tok, args.max_length, f"{self.method_name} train dataset")
        model = load_for_training(model, None)  # unwrapped: the scores are the initial model's
        positive, self._split = self._split_tokens(model, encoded, args, tok)
        items = []
        for i, ((ids, labels), pos) in enumerate(zip(encoded, positive)):
            items.append({"index": i, "input_ids": ids,
                          "labels": [y if keep else -100 for y, keep in zip(labels, pos)],
                          "negative_labels": [y if y != -100 and not keep else -100 for y, keep in zip(labels, pos)]})
        s = self._split
        self._data_description = (f"{len(items)} completions; {s['positive_tokens']} positive / "
                                  f"{s['negative_tokens']} negative answer tokens (rho {args.rho}, negatives "
                                  f"{args.negative_tokens}{', reference ' + args.reference_model if args.rho < 1 else ''})")
        logger.info("token_forget: %s", self._data_description)
        super().__init__(model=load_for_training(model, peft_config), args=args,
                         train_dataset=datasets.Dataset.from_list(items),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    @staticmethod
    def _split_tokens(model, encoded, args: TokenForgetConfig, tok) -> tuple[list[list[bool]], dict]:
        """Per example, a flag per label position (True: learned); and a summary of the split."""
        answer = [[j > 0 and y != -100 for j, y in enumerate(labels)] for _, labels in encoded]  # 0: no context
        n_tokens = sum(map(sum, answer))
        if args.rho >= 1.0:
            return answer, {"rho": args.rho, "positive_tokens": n_tokens, "negative_tokens": 0}
        model.to(args.device)
        base = compute_reference_logps(model, encoded, tok.pad_token_id, args.score_batch_size, per_token=True)
        ref = _score_with_reference(args, encoded, tok, model)
        # per-token lists are aligned with labels[1:]; the first label of a row is never an answer target
        def answer_only(per_token):  # the answer tokens' values, in dataset order
            return torch.tensor([v for row, (_, labels) in zip(per_token, encoded)
                                 for v, y in zip(row, labels[1:]) if y != -100])

        scores = influence_scores(answer_only(base), answer_only(ref))
        if scores.numel() and float(scores.abs().max()) < 1e-6:
            logger.warning("token_forget: --reference_model %s scores every answer token as the model does (is it "
                           "the same model?), so the split falls back to token order; train the reference on a "
                           "subset of the data first (--rho 1)", args.reference_model)
        keep = split_tokens(scores, args.rho).tolist()
        out, k, forgotten = [], 0, Counter()
        for (ids, _), flags in zip(encoded, answer):
            row = []
            for j, is_answer in enumerate(flags):
                row.append(is_answer and keep[k])
                if is_answer:
                    if not keep[k]:
                        forgotten[ids[j]] += 1
                    k += 1
            out.append(row)
        n_pos = sum(keep)
        summary = {"rho": args.rho, "reference_model": args.reference_model, "positive_tokens": n_pos,
                   "negative_tokens": len(keep) - n_pos,
                   "threshold": float(scores[torch.tensor(keep)].min()) if n_pos else None,
                   "mean_score": {"positive": _mean(scores, keep, True), "negative": _mean(scores, keep, False)},
                   "most_forgotten": [[tok.decode([t]), c] for t, c in forgotten.most_common(20)]}
        return out, summary

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pos_labels, neg_labels = inputs["labels"], inputs["negative_labels"]
        every = torch.where(pos_labels != -100, pos_labels, neg_labels)
        logits, cols = target_logits(model, inputs["input_ids"], inputs["attention_mask"], every)
        logps, _ = token_logps(logits, every[:, cols])
        pos, neg = pos_labels[:, cols] != -100, neg_labels[:, cols] != -100
        lam = 0.0 if self.args.negative_tokens == "ignore" else forgetting_coefficient(
            self.state.global_step, self.state.max_steps, self.args.lambda_min, self.args.lambda_max)
        loss = token_forget_loss(logps, pos, neg, lam)
        detached = logps.detach()
        self.record(positive_nll=mean_token_nll(detached, pos), forget_weight=lam)
        if neg.any():
            self.record(negative_nll=mean_token_nll(detached, neg))
        self.check_finite(loss, inputs)
        return loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            folder = Path(output_dir or self.args.output_dir)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / SPLIT_FILE, json.dumps(self._split, indent=2) + "\n")


def _score_with_reference(args: TokenForgetConfig, encoded, tok, model) -> list[list[float]]:
    """The reference model's per-token log-probs (loaded safely in the model's dtype, so both scores round alike;
    freed after)."""
    from negtune.models.loading import ModelLoadError, load_model, resolve_adapter

    try:
        base, adapter = resolve_adapter(args.reference_model)
        dtype = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(model.dtype, "float32")
        ref = load_model(base, adapter=adapter, dtype=dtype)
    except (ModelLoadError, OSError, ValueError) as e:
        raise DataError(f"--reference_model {args.reference_model}: {e}") from None
    ref_vocab, vocab = ref.get_input_embeddings().num_embeddings, model.get_input_embeddings().num_embeddings
    if ref_vocab != vocab:
        raise DataError(f"--reference_model {args.reference_model}: its vocabulary has {ref_vocab} tokens, the "
                        f"model's {vocab}; the reference must share the model's tokenizer")
    ref.to(args.device)
    try:
        return compute_reference_logps(ref, encoded, tok.pad_token_id, args.score_batch_size, per_token=True)
    finally:
        del ref
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _mean(scores: torch.Tensor, keep: list[bool], which: bool) -> float | None:
    picked = scores[torch.tensor(keep) == which]
    return float(picked.mean()) if picked.numel() else None
