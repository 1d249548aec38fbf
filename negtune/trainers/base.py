"""What every negtune trainer shares, on top of ``transformers.Trainer``.

- the model may be a path (loaded safely) and is wrapped with a PEFT config when one is given;
- a padding collator for our paired fields (``forget_input_ids``, ``retain_labels``, ...);
- custom metrics averaged over the logging window and merged into ``Trainer.log`` (shown by every
  ``report_to`` integration);
- a non-finite loss stops training with the step and batch named (checkpoints already written stay);
- ``save_model`` also writes a model card (method, data, hyperparameters, final metrics);
- state a trainer keeps outside the model and optimizer (``_extra_state``: a discriminator, snapshots, its own
  random generator) is saved with every checkpoint and restored on resume, so a resumed run equals an
  uninterrupted one.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from negtune.utils import threads

logger = logging.getLogger(__name__)

EXTRA_STATE_FILE = "negtune_state_{rank}.pt"  # per process: each rank's extra state follows its own batches


class NonFiniteLossError(RuntimeError):
    pass


class AdaptiveThreads(TrainerCallback):
    """Lets the CPU thread count follow the machine during training (``negtune.utils.threads.adapt``: measured
    at most every few seconds, on optimizer-step boundaries), so a job that starts beside ours does not turn
    every op into a wait."""

    def on_step_end(self, args, state, control, **kwargs):
        threads.adapt()
        return control


class PaddedCollator:
    """Right-pads every ``*input_ids`` (pad token), ``*labels`` (-100) and ``*attention_mask`` (0) field and
    builds the attention masks; other fields become tensors as they are."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in features[0]:
            values = [f[key] for f in features]
            if key.endswith("input_ids") or key.endswith("labels"):
                pad = self.pad_token_id if key.endswith("input_ids") else -100
                width = max(len(v) for v in values)
                batch[key] = torch.tensor([list(v) + [pad] * (width - len(v)) for v in values])
                if key.endswith("input_ids"):
                    mask_key = key[: -len("input_ids")] + "attention_mask"
                    batch[mask_key] = torch.tensor([[1] * len(v) + [0] * (width - len(v)) for v in values])
            elif values[0] is not None:  # scalars per example (index, labels, pass rates)
                batch[key] = torch.tensor(values)
        return batch


def keep_answered(encoded: list[tuple[list[int], list[int]]], what: str, max_length: int | None) -> list[int]:
    """Indices of the encoded ``(input_ids, labels)`` that keep at least one answer token after truncation to
    ``max_length``. Rows whose prompt fills ``max_length`` are skipped with a warning naming them; if none is
    left, a DataError."""
    from negtune.data.io import DataError

    kept = [i for i, (_, labels) in enumerate(encoded) if any(t != -100 for t in labels)]
    kept_set = set(kept)
    lost = [i for i in range(len(encoded)) if i not in kept_set]
    if not lost:
        return kept
    rows = ", ".join(map(str, lost[:10])) + (f", ... ({len(lost)} in all)" if len(lost) > 10 else "")
    if not kept:
        raise DataError(f"{what}: every row's prompt fills --max_length {max_length}, so no answer token is left "
                        f"to train on (rows {rows}); raise --max_length or shorten the prompts")
    logger.warning("%s: skipped %d of %d rows whose prompt fills --max_length %s (no answer token left): rows %s",
                   what, len(lost), len(encoded), max_length, rows)
    return kept


def encode_rows(rows: list[dict[str, Any]], tok, max_length: int | None, what: str,
                prompt=None) -> tuple[list[dict[str, Any]], list[tuple[list[int], list[int]]]]:
    """The labeled rows that keep an answer token after encoding, and their ``(input_ids, labels)``: prompt
    (``prompt(row)`` when given, e.g. with a marker) + completion, truncated to ``max_length``
    (:func:`keep_answered` names the rows left out)."""
    from negtune.data.prompts import encode_prompt_completion

    pairs = [encode_prompt_completion(tok, prompt(r) if prompt else r["prompt"], r["completion"], max_length)
             for r in rows]
    keep = keep_answered(pairs, what, max_length)
    return [rows[j] for j in keep], [pairs[j] for j in keep]


def training_tokenizer(trainer: str, processing_class, args, kwargs: dict[str, Any]):
    """The tokenizer a negtune trainer encodes with, checked before any work: it is required (``tokenizer=``, its
    old name, is named in the error); without a pad token it pads with EOS, as ``negtune train`` does (padding
    positions are masked, so any id would do). Arguments a TRL user may pass that these trainers set themselves
    or do not run are refused by name: ``data_collator`` (built from the method's fields), ``eval_dataset`` and
    an ``eval_strategy`` (no evaluation loss: score a saved model with ``negtune eval`` or
    :mod:`negtune.evaluation`)."""
    if processing_class is None:
        hint = "; `tokenizer=` is its old name, pass processing_class=" if "tokenizer" in kwargs else ""
        raise ValueError(f"{trainer} needs processing_class (the tokenizer){hint}")
    if kwargs.get("data_collator") is not None:
        raise ValueError(f"{trainer} builds its own data_collator (it pads the method's fields); drop "
                         "data_collator=")
    strategy = getattr(args, "eval_strategy", "no")
    evaluating = getattr(strategy, "value", strategy) != "no"
    if kwargs.get("eval_dataset") is not None or evaluating:
        raise ValueError(f"{trainer} computes no evaluation loss (eval_dataset, eval_strategy): evaluate a saved "
                         "model with `negtune eval math|tofu` or negtune.evaluation (evaluate_math, evaluate_tofu), "
                         "or score it in a TrainerCallback's on_save")
    if getattr(args, "remove_unused_columns", False):
        raise ValueError(f"{trainer} keeps the method's own columns (index, labels, reference values): leave "
                         "remove_unused_columns False, its default in negtune's configs")
    if getattr(processing_class, "pad_token", None) is None and getattr(processing_class, "eos_token", None):
        logger.info("%s: the tokenizer has no pad token; padding with its EOS token %r", trainer,
                    processing_class.eos_token)
        processing_class.pad_token = processing_class.eos_token
    return processing_class


def load_for_training(model, peft_config=None, trust_remote_code: bool = False):
    """A model object or path (safetensors, no remote code by default), optionally wrapped with PEFT."""
    if isinstance(model, (str, Path)):
        from negtune.models.loading import load_model

        model = load_model(str(model), dtype="float32", trust_remote_code=trust_remote_code)
    if peft_config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft_config)
    return model


class ExtraStateMixin:
    """Exact resume for a Trainer (negtune's or TRL's) that keeps state outside the model, optimizer, scheduler
    and RNGs: ``_extra_state()`` is saved per process with every checkpoint, ``_load_extra_state`` gets it back."""

    def _extra_state(self) -> dict[str, Any] | None:
        """What a subclass must carry across a resume (tensors, numbers, lists, tuples, dicts); None: nothing."""
        return None

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _save_checkpoint(self, model, trial) -> None:
        extra = self._extra_state()
        if extra is not None:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)  # before the weights: a folder with weights is complete
            torch.save(extra, folder / EXTRA_STATE_FILE.format(rank=self.args.process_index))
        super()._save_checkpoint(model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)  # called once per resume, in every launch mode
        if checkpoint is None or self._extra_state() is None:
            return
        path = Path(checkpoint) / EXTRA_STATE_FILE.format(rank=self.args.process_index)
        if not path.exists():
            logger.warning("%s: no %s (saved with another number of processes, or by an older negtune); "
                           "%s state starts afresh, so the resumed run will not equal an uninterrupted one",
                           checkpoint, path.name, getattr(self, "method_name", type(self).__name__))
            return
        self._load_extra_state(torch.load(path, map_location=self.args.device, weights_only=True))


class NegtuneTrainer(ExtraStateMixin, Trainer):
    """Base class: metric bookkeeping, non-finite guard, model card, exact resume (:class:`ExtraStateMixin`).
    Subclasses set ``method_name``."""

    method_name = "negtune"
    _data_description = ""
    # our compute_loss returns a batch mean and ignores num_items_in_batch: the Trainer must divide it by the
    # gradient-accumulation steps (it would not for a model whose forward takes loss kwargs, e.g. Qwen2).
    # transformers >= 5.18 reads loss_is_scaled_for_ga; older releases (vLLM 0.31 pins < 5.18) decide from
    # model_accepts_loss_kwargs, which Trainer.__init__ sets from the model: both are set.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self._last_logged: dict[str, float] = {}

    def record(self, **values: float | torch.Tensor) -> None:
        for key, value in values.items():
            if value is None:
                continue
            self._metrics[key].append(float(value.detach().float().mean()) if torch.is_tensor(value) else float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training or "loss" in logs:
            for key, values in self._metrics.items():
                if values:
                    logs[key] = sum(values) / len(values)
            self._metrics.clear()
        self._last_logged.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        super().log(logs, start_time)

    def check_finite(self, loss: torch.Tensor, inputs: dict[str, Any]) -> None:
        if torch.isfinite(loss).all():
            return
        index = inputs.get("index")
        rows = index.tolist() if torch.is_tensor(index) else "unknown"
        last = self.state.best_model_checkpoint or _last_checkpoint(self.args.output_dir)
        raise NonFiniteLossError(
            f"{self.method_name}: loss is {loss.item()} at step {self.state.global_step + 1} "
            f"(batch rows {rows}); stopping. The last checkpoint is kept: {last or 'none written yet'}"
        )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            absolute_adapter_base(output_dir or self.args.output_dir)
            self.write_model_card(output_dir or self.args.output_dir)

    def write_model_card(self, output_dir: str) -> None:
        write_model_card(self, output_dir, self.method_name, self._data_description, self._last_logged)


_COMMON_HYPER = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "seed")


def write_model_card(trainer, output_dir: str, method: str, data_description: str = "",
                     last_logged: dict[str, float] | None = None) -> None:
    """README.md next to the weights: method, base model, adapter or not, data, hyperparameters, final metrics.

    Hyperparameters are the method's own fields (those its config adds to ``TrainingArguments``) plus the
    common optimisation ones."""
    args = trainer.args
    own = {f.name for f in fields(args)} - {f.name for f in fields(TrainingArguments)}
    hyper = {f.name: getattr(args, f.name) for f in fields(args) if f.name in own or f.name in _COMMON_HYPER}
    if last_logged is None:
        last_logged = next((h for h in reversed(trainer.state.log_history) if "loss" in h), {})
    metrics = {k: v for k, v in last_logged.items() if k != "epoch"}
    model = trainer.model
    base = getattr(getattr(model, "config", None), "_name_or_path", "unknown")
    from negtune.methods import METHODS

    spec = METHODS.get(method)
    about = [f"- objective: {spec.objective}", f"- loss: `{spec.loss_name}`", f"- paper: {spec.paper}"] if spec else []
    text = "\n".join([
        f"# {method} fine-tune (negtune)", "",
        f"- method: `{method}`",
        *about,
        f"- base model: `{base}`",
        f"- adapter: {'LoRA (PEFT)' if hasattr(model, 'peft_config') else 'none (full-parameter)'}",
        f"- data: {data_description or 'see training arguments'}", "",
        "## Hyperparameters", "", "```json", json.dumps(hyper, indent=2, default=str), "```", "",
        "## Final metrics", "", "```json", json.dumps(metrics, indent=2, default=str), "```", "",
    ])
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "README.md").write_text(text)


def absolute_adapter_base(folder: str) -> None:
    """PEFT stores a local base model as given (relative to the training's working directory): store it
    absolute, so the adapter folder works as ``--model`` from anywhere."""
    cfg_path = Path(folder) / "adapter_config.json"
    if not cfg_path.is_file():
        return
    cfg = json.loads(cfg_path.read_text())
    base = cfg.get("base_model_name_or_path")
    if base and not Path(base).is_absolute() and Path(base).is_dir():
        cfg["base_model_name_or_path"] = str(Path(base).resolve())
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _last_checkpoint(output_dir: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    try:
        return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    except Exception:  # noqa: BLE001 - only used in an error message
        return None
