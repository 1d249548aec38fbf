"""Rollout engines: one interface, transformers ``generate`` anywhere, vLLM on a GPU."""

from __future__ import annotations

from negtune.rollout.engines.base import Completion, Engine, SamplingConfig
from negtune.rollout.engines.hf import HFEngine
from negtune.rollout.engines.vllm import VLLMEngine, vllm_available

ENGINES = ("auto", "hf", "vllm")


def make_engine(kind: str, model: str, adapter: str | None = None, **kwargs) -> Engine:
    """``auto`` picks vLLM when it is importable and a GPU is present, else transformers."""
    if kind not in ENGINES:
        raise ValueError(f"--engine {kind!r}: expected one of {', '.join(ENGINES)}")
    if kind == "auto":
        kind = "vllm" if vllm_available() else "hf"
    from negtune.models.loading import resolve_adapter

    model, adapter = resolve_adapter(model, adapter)
    if kind == "vllm":
        if not vllm_available():
            raise ValueError("--engine vllm: vLLM is not installed or no CUDA device is visible "
                             "(pip install 'negtune[vllm]' on a GPU machine, or use --engine hf)")
        vllm_keys = {"tensor_parallel_size", "gpu_memory_utilization", "dtype", "max_model_len", "seed",
                     "trust_remote_code"}
        return VLLMEngine(model, adapter=adapter, **{k: v for k, v in kwargs.items() if k in vllm_keys})
    hf_keys = {"dtype", "device", "batch_size", "trust_remote_code"}
    return HFEngine.from_pretrained(model, adapter=adapter, **{k: v for k, v in kwargs.items() if k in hf_keys})


__all__ = ["Completion", "ENGINES", "Engine", "HFEngine", "SamplingConfig", "VLLMEngine", "make_engine",
           "vllm_available"]
