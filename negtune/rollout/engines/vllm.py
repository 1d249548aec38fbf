"""Rollouts with vLLM (GPU only; ``pip install 'negtune[vllm]'``)."""

from __future__ import annotations

from typing import Any

from negtune.data.prompts import render_chat
from negtune.rollout.engines.base import Completion, SamplingConfig


def vllm_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def completion_from_vllm(output: Any) -> Completion:
    """One ``vllm.CompletionOutput`` in negtune's schema (the sampled token's log-prob when requested)."""
    token_ids = list(output.token_ids)
    logprobs = None
    if getattr(output, "logprobs", None):
        logprobs = [float(step[tok].logprob) for step, tok in zip(output.logprobs, token_ids)]
    reason = "length" if output.finish_reason == "length" else "stop"
    return Completion(output.text, token_ids, reason, logprobs)


class VLLMEngine:
    """``vllm.LLM`` with token-id prompts rendered by the same chat template as the HF engine and trainers.

    Each prompt gets its own seed (``sampling.seed + index``), so results do not depend on batching.
    LoRA adapters are served through ``LoRARequest`` (no merge).
    """

    name = "vllm"

    def __init__(self, model: str, adapter: str | None = None, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, dtype: str = "auto", max_model_len: int | None = None,
                 seed: int = 0, trust_remote_code: bool = False, max_lora_rank: int = 64, tokenizer=None):
        from vllm import LLM

        from negtune.models.loading import load_tokenizer

        self.tokenizer = tokenizer or load_tokenizer(model, trust_remote_code=trust_remote_code)
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       trust_remote_code=trust_remote_code, enable_lora=adapter is not None,
                       max_lora_rank=max_lora_rank)
        self.lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("negtune-adapter", 1, adapter)

    def generate(self, prompts: list[list[dict[str, Any]]], sampling: SamplingConfig) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=render_chat(self.tokenizer, p)) for p in prompts]
        params = [
            SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                           max_tokens=sampling.max_new_tokens, seed=sampling.seed + i,
                           logprobs=0 if sampling.logprobs else None, stop=sampling.stop or None,
                           include_stop_str_in_output=True)  # as HF generate: the stop string stays
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(requests, params, lora_request=self.lora, use_tqdm=False)
        return [[completion_from_vllm(c) for c in out.outputs] for out in outputs]
