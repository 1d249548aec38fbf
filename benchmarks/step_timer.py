"""Per-step wall time of a ``transformers.Trainer``, shared by the benchmark scripts."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Seconds per optimizer step; on CUDA the queue is drained first, so a step's time is its own."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if args.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t)
