"""What NGRPO and online NFT add to TRL's GRPOTrainer: access to the gathered group rewards.

TRL 1.16 computes the group advantages inline in ``_generate_and_score_completions`` from the rewards that
``_calculate_rewards`` gathers across processes; following the maintainers' advice (trl#4525) we keep that
gathered tensor and post-process the returned batch, before ``_prepare_inputs`` shuffles and splits it.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


class GroupRewardsMixin:
    _homogeneous_note = "it carries no learning signal"

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _group_rewards(self) -> torch.Tensor:
        """Weighted reward per completion over all processes, NaN where every reward function returned None."""
        per_func = self._gathered_rewards_per_func
        rewards = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(per_func).all(dim=1)] = torch.nan
        return rewards

    def _process_slice(self, n_local: int) -> slice:
        start = self.accelerator.process_index * n_local
        return slice(start, start + n_local)

    def _drop_rows(self, output: dict, drop: torch.Tensor) -> None:
        """Take this rank's rows ``drop`` (bool, (B,)) out of the loss: mask their tokens and remove them from
        the global token count that the ``dapo`` normaliser divides by."""
        dropped_tokens = (output["completion_mask"] * drop.unsqueeze(1)).sum()
        output["completion_mask"] = output["completion_mask"] * (~drop).unsqueeze(1)
        if "num_items_in_batch" in output:
            output["num_items_in_batch"] = output["num_items_in_batch"] - self.accelerator.gather(dropped_tokens).sum()

    def _log_group_kinds(self, rewards: torch.Tensor, mode: str) -> torch.Tensor:
        """Log all-correct / all-wrong / undecided counts; warn on a batch where every group is homogeneous."""
        g = rewards.view(-1, self.num_generations)
        decided = ~torch.isnan(g)
        pos = torch.where(decided, g > 0.5, False).sum(1)
        n = decided.sum(1)
        all_wrong = (pos == 0) & (n > 0)
        all_correct = (pos == n) & (n > 0)
        self._metrics[mode]["groups/all_wrong_frac"].append(all_wrong.float().mean().item())
        self._metrics[mode]["groups/all_correct_frac"].append(all_correct.float().mean().item())
        self._metrics[mode]["rewards/undecided"].append(float((~decided).sum().item()))
        if bool((all_wrong | all_correct).all()):
            logger.warning("every group in this generation batch is homogeneous (%d all wrong, %d all right): "
                           "%s", int(all_wrong.sum()), int(all_correct.sum()), self._homogeneous_note)
        return all_correct
