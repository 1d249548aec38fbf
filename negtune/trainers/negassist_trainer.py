"""Negative-assisted distillation trainer: one stage per run (negative assistant, integration, distillation)."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import torch

from negtune.data.io import DataError
from negtune.data.rows import training_rows
from negtune.losses.logps import mean_token_nll, target_logits, token_logps
from negtune.losses.negassist import nce_calibration, nce_loss
from negtune.models import integrate
from negtune.trainers.base import (
    NegtuneTrainer,
    PaddedCollator,
    encode_rows,
    load_for_training,
    training_tokenizer,
)
from negtune.trainers.negassist_config import NegAssistConfig

logger = logging.getLogger(__name__)


class NegAssistTrainer(NegtuneTrainer):
    """``NegAssistTrainer(model, NegAssistConfig(stage=...), train_dataset=labeled, processing_class=tok,
    peft_config=None)``: stage ``negative`` trains on the dataset's negatives, ``integrate`` and ``distill`` on
    its positives. ``peft_config`` (a LoraConfig) sets the branches' shape in stage ``negative`` and makes the
    student a LoRA adapter in stage ``distill``."""

    method_name = "negassist"

    def __init__(self, model, args: NegAssistConfig, train_dataset, processing_class=None, peft_config=None,
                 **kwargs):
        processing_class = training_tokenizer("NegAssistTrainer", processing_class, args, kwargs)
        tok = processing_class
        want = args.stage == "negative"
        rows = [r for r in training_rows(train_dataset, "labeled") if bool(r["label"]) != want]
        if not rows:
            raise DataError(f"negassist --stage {args.stage}: the labeled dataset has no "
                            f"{'negative' if want else 'positive'} completion to train on")
        rows, encoded = encode_rows(rows, tok, args.max_length, f"{self.method_name} train dataset")
        model = load_for_training(model)
        self._teacher = None
        if args.stage == "negative":
            self._layer_cfg = _layer_config(model, args, peft_config)
            integrate.attach(model, self._layer_cfg)
            integrate.set_stage(model, "negative")
        elif args.stage == "integrate":
            if not args.negative_adapter or not integrate.is_negassist(args.negative_adapter):
                raise DataError(f"--stage integrate needs --negative_adapter: the output folder of --stage negative "
                                f"(with {integrate.CONFIG_FILE}); got {args.negative_adapter!r}")
            _check_stage_one(args, model)
            model, self._layer_cfg = integrate.load(args.negative_adapter, model=model)
            model.train()
            # the gate trains in this stage: its beta and temperature are this run's (the layers share this cfg)
            self._layer_cfg.beta, self._layer_cfg.temperature = args.gate_beta, args.gate_temperature
            self._layer_cfg.stage = "integrate"
            integrate.set_stage(model, "integrate")
        else:
            if not args.teacher or not integrate.is_negassist(args.teacher):
                raise DataError(f"--stage distill needs --teacher: the output folder of --stage integrate (with "
                                f"{integrate.CONFIG_FILE}); got {args.teacher!r}")
            self._teacher, cfg = integrate.load(args.teacher, mode="integrate")
            if cfg.stage != "integrate":
                raise DataError(f"--teacher {args.teacher}: trained to stage {cfg.stage!r}, not integrate")
            t_vocab = self._teacher.get_output_embeddings().out_features
            s_vocab = model.get_output_embeddings().out_features
            if t_vocab != s_vocab:
                raise DataError(f"--teacher {args.teacher}: its vocabulary has {t_vocab} tokens, the student's "
                                f"{s_vocab}; distillation needs the same tokenizer")
            self._teacher.to(args.device)
            model = load_for_training(model, peft_config)
        self._data_description = (f"{len(encoded)} {'negative' if want else 'positive'} completions (stage "
                                  f"{args.stage})")
        items = [{"index": i, "input_ids": ids, "labels": labels} for i, (ids, labels) in enumerate(encoded)]
        super().__init__(model=model, args=args, train_dataset=datasets.Dataset.from_list(items),
                         data_collator=PaddedCollator(tok.pad_token_id), processing_class=tok, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids, attn, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        logits, cols = target_logits(model, ids, attn, labels)
        logps, mask = token_logps(logits, labels[:, cols])
        ce = mean_token_nll(logps, mask)
        if self._teacher is None:
            loss = ce
        else:
            with torch.no_grad():
                integrate.use(self._teacher, "integrate")
                nat, _ = target_logits(self._teacher, ids, attn, labels)
                integrate.use(self._teacher, "negative")
                neg, _ = target_logits(self._teacher, ids, attn, labels)
                integrate.use(self._teacher, "integrate")
            calibration = nce_calibration(neg, nat, mask)
            loss = nce_loss(logits, nat, mask, ce, calibration, self.args.kd_weight)
            self.record(nce_beta=calibration.mean(), ce=ce.detach())
        self.check_finite(loss, inputs)
        return loss

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Stages 1-2 checkpoint the dual-LoRA layers in their own format (``save_model``): load them back."""
        if self.args.stage == "distill":
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        if not integrate.is_negassist(resume_from_checkpoint):
            raise DataError(f"{resume_from_checkpoint}: no {integrate.WEIGHTS_FILE} to resume stage {self.args.stage} "
                            "from")
        integrate.load_weights(self.model, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        if self.args.stage == "distill":
            return super()._load_best_model()
        integrate.load_weights(self.model, self.state.best_model_checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if self.args.stage == "distill":  # a plain model or PEFT adapter
            return super().save_model(output_dir, _internal_call)
        folder = Path(output_dir or self.args.output_dir)
        if self.args.should_save:
            integrate.save(self.model, folder, self._layer_cfg)
            self.processing_class.save_pretrained(folder)
            self.write_model_card(str(folder))


def _check_stage_one(args: NegAssistConfig, model) -> None:
    """Stage 2 continues a stage-1 folder made on this base model, with the gate width it was built with."""
    from negtune.models.loading import same_model

    cfg = integrate.read_config(args.negative_adapter)
    if cfg.stage != "negative":
        raise DataError(f"--negative_adapter {args.negative_adapter}: trained to stage {cfg.stage!r}; give the output "
                        "of --stage negative")
    base = getattr(model.config, "_name_or_path", "")
    if base and cfg.base_model and not same_model(cfg.base_model, base):
        raise DataError(f"--negative_adapter {args.negative_adapter}: made on {cfg.base_model!r}, this run's model is "
                        f"{base!r}")
    if args.gate_width != cfg.width:
        raise DataError(f"--gate_width {args.gate_width}: the layers of --negative_adapter were built {cfg.width} wide; "
                        "set --gate_width at --stage negative")


def _layer_config(model, args: NegAssistConfig, peft_config) -> integrate.IntegrateConfig:
    base = getattr(model.config, "_name_or_path", "")
    if not base or not Path(base).exists() and "/" not in base:
        raise DataError("negassist: the base model has no path to record (load it from a folder or a hub id)")
    cfg = integrate.IntegrateConfig(base_model=str(Path(base).resolve()) if Path(base).exists() else base,
                                    width=args.gate_width, beta=args.gate_beta, temperature=args.gate_temperature)
    if peft_config is not None:
        cfg.r, cfg.lora_alpha, cfg.dropout = peft_config.r, peft_config.lora_alpha, peft_config.lora_dropout
        if peft_config.target_modules:
            cfg.target_modules = sorted(peft_config.target_modules) if not isinstance(
                peft_config.target_modules, str) else [peft_config.target_modules]
    return cfg
