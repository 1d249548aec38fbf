"""NGRPO: TRL's GRPOTrainer with calibrated advantages (virtual max-reward sample) and asymmetric clipping."""

from __future__ import annotations

from trl import GRPOTrainer

from negtune.losses.rlvr import ngrpo_advantages
from negtune.trainers.ngrpo_config import NGRPOConfig
from negtune.trainers.rlvr_common import GroupRewardsMixin


class NGRPOTrainer(GroupRewardsMixin, GRPOTrainer):
    """``NGRPOTrainer(model, reward_funcs=VerifierReward("math"), args=NGRPOConfig(...), train_dataset=...)``.

    Generation, rewards, clipping and the loss are TRL's (HF or vLLM colocate/server; TRL logs the low/high
    clip fractions as ``clip_ratio/low_mean`` / ``clip_ratio/high_mean``); only the advantages
    change: :func:`negtune.losses.ngrpo_advantages` over the gathered group rewards. All-wrong groups are
    kept (they now carry signal); ``drop_all_correct`` optionally removes all-correct ones.
    """

    _homogeneous_note = "NGRPO still learns from the all-wrong groups; all-correct ones give no signal"

    def __init__(self, *args, **kwargs):
        if not isinstance(kwargs.get("args"), NGRPOConfig):
            raise TypeError("NGRPOTrainer needs args=NGRPOConfig(...)")
        super().__init__(*args, **kwargs)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        rewards = self._group_rewards()
        advantages = ngrpo_advantages(rewards, self.num_generations, self.args.r_max).to(rewards.device)
        local = self._process_slice(output["completion_ids"].shape[0])
        all_correct = self._log_group_kinds(rewards, mode)
        self._metrics[mode]["ngrpo/zero_advantage_frac"].append((advantages.abs() < 1e-6).float().mean().item())
        output["advantages"] = advantages[local]
        if self.args.drop_all_correct:
            drop = all_correct.repeat_interleave(self.num_generations)[local].to(output["completion_mask"].device)
            self._drop_rows(output, drop)
            self._metrics[mode]["ngrpo/dropped_all_correct"].append(float(drop.sum().item()))
        return output
