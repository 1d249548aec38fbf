"""The engine interface: ``generate(prompts, sampling) -> completions`` (n per prompt, same schema for all)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SamplingConfig:
    """Sampling settings, shared by every engine. ``temperature=0`` means greedy."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    logprobs: bool = False  # also return the sampler's per-token log-probs (raw model distribution)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"--n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Completion:
    text: str
    token_ids: list[int]  # generated tokens, the end-of-sequence token included when it was produced
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    logprobs: list[float] | None = None  # log pi_sampler(token) per token of token_ids (temperature 1)


class Engine(Protocol):
    name: str

    def generate(self, prompts: list[list[dict[str, Any]]], sampling: SamplingConfig) -> list[list[Completion]]:
        """``prompts``: chat message lists. Returns ``sampling.n`` completions per prompt, in prompt order."""
        ...
