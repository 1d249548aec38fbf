"""negtune verifiers as TRL reward functions, and prompt datasets for online RL."""

from __future__ import annotations

import datasets

from negtune.data.loaders import load_records
from negtune.data.prompts import format_prompt


def _text(completion) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


class VerifierReward:
    """A TRL reward function ``f(prompts, completions, answer, **kw) -> list[float | None]``.

    Runs the named verifier with a per-sample time limit; an undecidable sample returns None, which TRL
    excludes from the group statistics (and negtune's advantage functions do too). Counts are kept in
    ``self.undecided`` for logging.
    """

    def __init__(self, verifier: str = "math", timeout: float = 5.0):
        from negtune.rollout.verifiers import load

        load(verifier)
        self.verifier, self.timeout = verifier, timeout
        self.__name__ = f"verifier_{verifier}"
        self.undecided = 0

    def __call__(self, prompts, completions, answer, **kwargs) -> list[float | None]:
        from negtune.rollout.verify_pool import VerifierPool

        with VerifierPool(self.verifier, workers=0, timeout=self.timeout) as pool:
            verdicts, stats = pool.verify([_text(c) for c in completions], [str(a) for a in answer])
        self.undecided += stats.undecidable
        return [v.reward for v in verdicts]


def prompt_dataset(source: str, template: str = "qwen-math-cot", limit: int | None = None, **load_kwargs):
    """Records from any supported source as TRL's prompt dataset: chat ``prompt`` + ``answer`` (+ ``id``)."""
    loaded = load_records(source, limit=limit, **load_kwargs)
    return datasets.Dataset.from_list([{"prompt": format_prompt(r["prompt"], template), "answer": r["answer"],
                                        "id": r["id"]} for r in loaded.records])
