"""Load a model and tokenizer by hub id or local folder, optionally with a PEFT adapter.

Safe by default: ``trust_remote_code`` is off unless asked for, and weights load from safetensors only.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

logger = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    pass


def _dtype(name: str | None):
    if name in (None, "auto"):
        return "auto"
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[name]
    except KeyError:
        raise ModelLoadError(f"--dtype {name!r}: expected one of auto, float32, bfloat16, float16") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")


def _from_pretrained(load, name_or_path: str, what: str, **kwargs):
    """``load(name_or_path, **kwargs)`` with a missing path or hub id said as a ModelLoadError."""
    try:
        return load(name_or_path, **kwargs)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        where = ("not a folder here, and the hub is offline (HF_HUB_OFFLINE is set: only models already in the "
                 "local cache load by hub id)" if offline else "not a folder here, nor a reachable hub model id") \
            if not Path(name_or_path).exists() else str(e).splitlines()[0][:300]
        raise ModelLoadError(f"--model {name_or_path}: cannot load the {what} ({where}); pass a local model "
                             "folder or a hub id") from None


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False):
    folder = Path(name_or_path)
    if folder.is_dir() and not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save the "
                             "tokenizer into the model folder (tokenizer.save_pretrained) or pass a folder that has one")
    tok = _from_pretrained(AutoTokenizer.from_pretrained, name_or_path, "tokenizer",
                           trust_remote_code=trust_remote_code)
    if tok.pad_token is None:  # many base models ship without one; generation and batching need it
        tok.pad_token = tok.eos_token
    return tok


def adapter_base(adapter: str | Path) -> str | None:
    """The base model an adapter was trained on (from its adapter_config.json)."""
    cfg_path = Path(adapter) / "adapter_config.json"
    if not cfg_path.exists():
        raise ModelLoadError(f"{adapter}: not a PEFT adapter folder (no adapter_config.json)")
    base = json.loads(cfg_path.read_text()).get("base_model_name_or_path")
    if base and not Path(base).is_absolute():  # a local base saved as a relative path (of the training's cwd)
        for candidate in (Path(base), Path(adapter) / base):
            if candidate.is_dir():
                return str(candidate.resolve())
    return base


def resolve_adapter(model: str, adapter: str | None = None) -> tuple[str, str | None]:
    """(base model, adapter): a PEFT adapter folder given as the model (a LoRA training output) is read as
    its base model plus that adapter, so ``--model runs/npo-lora`` works like ``--model BASE --adapter ...``."""
    if adapter is None and (Path(model) / "adapter_config.json").exists():
        base = adapter_base(model)
        if not base:
            raise ModelLoadError(f"{model}: adapter_config.json names no base model; pass --model BASE --adapter {model}")
        return base, model
    return model, adapter


def scored_model(model: str, adapter: str | None = None) -> dict[str, str | None]:
    """``{"base_model", "adapter"}`` as an evaluation scores them (:func:`resolve_adapter`), for its results: an
    adapter folder given as the model is recorded as its base model plus that adapter."""
    base, adapter = resolve_adapter(model, adapter)
    return {"base_model": base, "adapter": adapter}


def in_memory_record(model) -> dict[str, str | None]:
    """What an evaluation of a model passed as an object records in place of :func:`scored_model`: the folder or
    hub id it was loaded from, whether it carries a PEFT adapter, and its class (``cfg.model`` names nothing then)."""
    return {"base_model": getattr(getattr(model, "config", None), "_name_or_path", None),
            "adapter": "in memory (PEFT)" if hasattr(model, "peft_config") else None,
            "model_object": type(model).__name__}


def _weight_shapes(folder: Path, pattern: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors headers in ``folder`` (no weights are read)."""
    from safetensors import safe_open

    shapes = {}
    for path in sorted(folder.glob(pattern)):
        with safe_open(str(path), framework="pt") as f:
            shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    return shapes


def check_adapter_fits(model: str, adapter: str) -> int:
    """Refuse a LoRA adapter trained on another base, before an engine starts: each adapted module must exist in
    ``model`` with the adapter's input/output sizes (read from both safetensors headers). vLLM would otherwise
    fail inside its engine process or, for equal shapes under other names, serve a silently broken adapter.
    Returns the adapter's rank. A hub model (no local folder) is not checked."""
    adapter_dir, model_dir = Path(adapter), Path(model)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.exists():
        raise ModelLoadError(f"{adapter}: no adapter_config.json (not a PEFT adapter folder)")
    cfg = json.loads(cfg_path.read_text())
    rank = int(cfg.get("r") or 0)
    if not model_dir.is_dir():
        return rank
    model_shapes = _weight_shapes(model_dir, "*.safetensors")
    adapter_shapes = _weight_shapes(adapter_dir, "adapter_model.safetensors")
    if not model_shapes or not adapter_shapes:
        return rank
    trained_on = f" (it was trained on {cfg.get('base_model_name_or_path')})"
    for key, shape in adapter_shapes.items():
        part = ".lora_A." if ".lora_A." in key else ".lora_B." if ".lora_B." in key else None
        if part is None:
            continue
        module = key.split(part)[0].removeprefix("base_model.model.")
        base = model_shapes.get(f"{module}.weight")
        if base is None and module.endswith("lm_head"):  # tied to the input embeddings
            base = model_shapes.get(module.replace("lm_head", "model.embed_tokens") + ".weight")
        if base is None:
            raise ModelLoadError(f"{adapter}: this LoRA adapter does not fit {model}: it adapts {module}, which the "
                                 f"model does not have{trained_on}")
        side, want, have = (("input", shape[1], base[-1]) if part == ".lora_A." else ("output", shape[0], base[0]))
        if want != have:
            raise ModelLoadError(f"{adapter}: this LoRA adapter does not fit {model}: {module} has {side} size "
                                 f"{want} in the adapter, {have} in the model{trained_on}")
    return rank


def same_model(a: str, b: str) -> bool:
    """Whether two model references name the same model: the same resolved folder, else the same string."""
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a.rstrip("/") == b.rstrip("/")


def load_model(
    name_or_path: str,
    *,
    adapter: str | None = None,
    dtype: str | None = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    merge_adapter: bool = False,
):
    """``AutoModelForCausalLM`` (+ PEFT adapter when given). ``merge_adapter`` folds LoRA into the weights.
    A negative-assisted distillation folder (``negassist.json``) loads as its base with the dual-LoRA layers."""
    from negtune.models import integrate

    if adapter is None and integrate.is_negassist(name_or_path):
        model, _ = integrate.load(name_or_path, dtype=dtype or "auto")
        return model.to(device) if device else model
    model = _from_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, "model (safetensors weights)",
                             dtype=_dtype(dtype), trust_remote_code=trust_remote_code, use_safetensors=True)
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_model.safetensors").exists() and (Path(adapter) / "adapter_model.bin").exists():
            raise ModelLoadError(f"{adapter}: adapter_model.bin is a pickle file and negtune loads safetensors only; "
                                 "convert it (peft: save_pretrained(..., safe_serialization=True)) and retry")

        base = adapter_base(adapter)
        try:
            model = PeftModel.from_pretrained(model, adapter)
        except (RuntimeError, ValueError, KeyError) as e:  # shape/key mismatch: another base model
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
            detail = next((line for line in lines if "size mismatch" in line or "not found" in line), lines[0])
            raise ModelLoadError(
                f"{adapter}: adapter does not fit {name_or_path!r} (it was trained on {base!r}): {detail[:300]}"
            ) from None
        if base and not same_model(base, name_or_path):  # shapes fit, names differ: say so (it may be a rename)
            logger.warning("%s: adapter trained on %r, loaded onto %r: the shapes fit, but unless these are the same "
                           "model under two names the adapter's outputs are not what it learned", adapter, base,
                           name_or_path)
        if merge_adapter:
            model = model.merge_and_unload()
    if device:
        model = model.to(device)
    return model


def load_model_and_tokenizer(name_or_path: str, **kwargs):
    tokenizer = load_tokenizer(name_or_path, trust_remote_code=kwargs.get("trust_remote_code", False))
    return load_model(name_or_path, **kwargs), tokenizer
