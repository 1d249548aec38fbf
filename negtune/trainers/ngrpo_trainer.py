"""NGRPO: TRL's GRPOTrainer with calibrated advantages (virtual max-reward sample) and asymmetric clipping."""

from __future__ import annotations

import torch

from negtune.losses.rlvr import ngrpo_advantages
from negtune.trainers.grpo_trainer import GRPOTrainer
from negtune.trainers.ngrpo_config import NGRPOConfig
from negtune.trainers.rlvr_common import GroupRewardsMixin


class NGRPOTrainer(GroupRewardsMixin, GRPOTrainer):
    """``NGRPOTrainer(model, reward_funcs=VerifierReward("math"), args=NGRPOConfig(...), train_dataset=...)``.

    Generation, rewards, clipping and the loss are TRL's (HF or vLLM colocate/server; TRL logs the low/high
    clip fractions as ``clip_ratio/low_mean`` / ``clip_ratio/high_mean``); only the advantages
    change: :func:`negtune.losses.ngrpo_advantages` over the gathered group rewards. All-wrong groups are
    kept (they now carry signal); all-correct ones (advantage 0) are filtered (``drop_all_correct``) and, with
    ``dynamic_sampling``, replaced by groups from further generation rounds, as the reference does.
    """

    _homogeneous_note = "all of them all-correct (advantage 0): no update from this batch"

    def __init__(self, *args, **kwargs):
        if not isinstance(kwargs.get("args"), NGRPOConfig):
            raise TypeError("NGRPOTrainer needs args=NGRPOConfig(...)")
        super().__init__(*args, **kwargs)
        self._check_train_dataset()

    def _check_rewards(self, rewards):
        if bool((rewards > self.args.r_max + 1e-6).any()):
            raise ValueError(f"NGRPO: a reward of {rewards.max().item():g} exceeds --r_max {self.args.r_max:g}, the "
                             "reward of the virtual sample that must be each group's maximum; set --r_max to the "
                             "largest reward your reward functions give")

    def _postprocess(self, output, rewards, all_correct, mode):
        advantages = ngrpo_advantages(rewards, self.num_generations, self.args.r_max).to(rewards.device)
        local = self._process_slice(output["completion_ids"].shape[0])
        self._metrics[mode]["ngrpo/zero_advantage_frac"].append((advantages.abs() < 1e-6).float().mean().item())
        output["advantages"] = advantages[local]
        return all_correct if self.args.drop_all_correct else torch.zeros_like(all_correct)
