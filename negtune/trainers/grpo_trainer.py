"""TRL's ``GRPOTrainer`` with exact resume: the base of every online trainer (grpo, dr_grpo, rft, nft, ngrpo).

TRL generates one rollout every ``steps_per_generation`` micro-steps (``--updates_per_generation``) and hands
out its slices from ``_buffered_inputs``, counting micro-steps in ``_step``. Neither is in a checkpoint: a run
resumed from a checkpoint saved inside a rollout started with ``_step = 0`` and no buffer, so it regenerated
a rollout at once from the step's (repeated) prompts and then stayed out of phase with the data for the rest
of training, generating where the uninterrupted run reuses its buffer. Both are saved per process with every
checkpoint (:class:`ExtraStateMixin`), so a resumed run takes the rest of the same rollout and equals the
uninterrupted one (``benchmarks/faults.py``, stage ``train_ngrpo``; ``tests/test_resume.py``). Nothing else
of TRL's trainer changes: ``negtune train grpo`` is TRL's GRPO.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer as TRLGRPOTrainer

from negtune.trainers.base import ExtraStateMixin


class GRPOTrainer(ExtraStateMixin, TRLGRPOTrainer):
    def _extra_state(self) -> dict[str, Any]:
        # the buffer holds tensors, numbers and None (token ids, masks, advantages, old log-probs): a plain
        # weights-only load reads it back
        return {"micro_step": self._step, "buffered_inputs": self._buffered_inputs}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._step = state["micro_step"]
        self._buffered_inputs = state["buffered_inputs"]
