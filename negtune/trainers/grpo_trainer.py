"""TRL's ``GRPOTrainer`` with exact resume: the base of every online trainer (grpo, dr_grpo, rft, nft, ngrpo).

TRL generates one rollout every ``steps_per_generation`` micro-steps (``--updates_per_generation``) and hands
out its slices from ``_buffered_inputs``, counting micro-steps in ``_step``. Neither is in a checkpoint: a run
resumed from a checkpoint saved inside a rollout started with ``_step = 0`` and no buffer, so it regenerated
a rollout at once from the step's (repeated) prompts and then stayed out of phase with the data for the rest
of training, generating where the uninterrupted run reuses its buffer. Both are saved per process with every
checkpoint (:class:`ExtraStateMixin`), so a resumed run takes the rest of the same rollout and equals the
uninterrupted one with transformers generation (``benchmarks/faults.py``, stage ``train_ngrpo``;
``tests/test_resume.py``; vLLM's sampler state is not in a checkpoint, so with vLLM the rest of the rollout is
the same and later rollouts are new samples). The buffer is taken back only under the layout it was made for
(process count, per-device batch, steps per generation, iterations): under another one every process starts a
new rollout, as TRL does, and none waits for a rollout the others skip. Nothing else of TRL's trainer changes:
``negtune train grpo`` is TRL's GRPO.
"""

from __future__ import annotations

import logging
from typing import Any

from trl import GRPOTrainer as TRLGRPOTrainer

from negtune.trainers.base import ExtraStateMixin

logger = logging.getLogger(__name__)


class GRPOTrainer(ExtraStateMixin, TRLGRPOTrainer):
    def _extra_state(self) -> dict[str, Any]:
        # the buffer holds tensors, numbers and None (token ids, masks, advantages, old log-probs): a plain
        # weights-only load reads it back
        return {"micro_step": self._step, "buffered_inputs": self._buffered_inputs, "layout": self._layout()}

    def _layout(self) -> list[int]:
        a = self.args
        return [a.world_size, a.per_device_train_batch_size, a.gradient_accumulation_steps, a.steps_per_generation,
                self.num_iterations]

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("layout") != self._layout():  # a process without a file never loads: all must agree
            logger.warning("the checkpoint's rollout was made for processes x batch x accumulation x steps per "
                           "generation x iterations %s, this run is %s: a new rollout starts here",
                           state.get("layout"), self._layout())
            return
        self._step = state["micro_step"]
        self._buffered_inputs = state["buffered_inputs"]
