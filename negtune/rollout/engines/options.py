"""The engine flags that ``negtune rollout`` and ``negtune eval math`` share, and the engine they build."""

from __future__ import annotations

from dataclasses import dataclass, field

from negtune.rollout.engines import ENGINES, Engine, make_engine


@dataclass(kw_only=True)
class EngineOptions:
    """Which engine samples, and its settings (each flag names the engine it acts on)."""

    engine: str = field(default="auto", metadata={
        "help": "auto (vLLM when importable and a GPU is visible, else hf), hf (transformers generate), vllm "
                "(in-process; on a CPU with vLLM's CPU build) or openai (OpenAI-compatible servers at --base-url)",
        "choices": list(ENGINES)})
    batch_size: int = field(default=16, metadata={"help": "prompts per generate call (hf engine)"})
    dtype: str = field(default="auto", metadata={"help": "model dtype (auto, bfloat16, float32, ...)"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm engine: GPUs per model"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm engine: GPU memory fraction"})
    kv_cache_gib: float | None = field(default=None, metadata={
        "help": "vllm engine: KV-cache size in GiB (default on a CPU: 1; on a GPU: from --gpu-memory-utilization)"})
    enforce_eager: bool | None = field(default=None, metadata={
        "help": "vllm engine: skip vLLM's torch.compile and CUDA graphs (default: on a CPU, where compiling costs "
                "about a minute per start and decoded at most 1.05x as fast on SmolLM2; off on a GPU)"})
    max_model_len: int | None = field(default=None, metadata={
        "help": "vllm engine: context length (default: the model's)"})
    base_url: str | None = field(default=None, metadata={
        "help": "openai engine: server roots, comma-separated (http://host:8000,http://host2:8000); replicas share "
                "the prompts, failed requests retry on the next one"})
    served_model: str | None = field(default=None, metadata={
        "help": "openai engine: the model name the servers serve (default: the first they list; a LoRA module "
                "name to sample from an adapter the server loaded)"})
    request_retries: int = field(default=5, metadata={
        "help": "openai engine: retries of a failed request (backoff 1, 2, 4, ... s, each on the next server) "
                "before the run stops; finished shards are kept and a rerun resumes"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run the model repository's own code (off)"})

    def base_urls(self) -> list[str]:
        return [u.strip() for u in (self.base_url or "").split(",") if u.strip()]

    def build_engine(self, model: str, adapter: str | None, seed: int) -> Engine:
        return make_engine(self.engine, model, adapter, base_urls=self.base_urls(), dtype=self.dtype,
                           batch_size=self.batch_size, tensor_parallel_size=self.tensor_parallel_size, seed=seed,
                           gpu_memory_utilization=self.gpu_memory_utilization, kv_cache_gib=self.kv_cache_gib,
                           enforce_eager=self.enforce_eager,
                           max_model_len=self.max_model_len, served_model=self.served_model,
                           request_retries=self.request_retries,
                           trust_remote_code=self.trust_remote_code)
