"""Online NFT: a GRPOTrainer whose policy loss is Negative-aware Fine-Tuning's."""

from __future__ import annotations

import torch

from negtune.losses.rlvr import group_pass_rates, nft_prompt_weight, nft_token_loss
from negtune.trainers.grpo_trainer import GRPOTrainer
from negtune.trainers.nft_config import NFTConfig
from negtune.trainers.rlvr_common import GroupRewardsMixin


class NFTTrainer(GroupRewardsMixin, GRPOTrainer):
    """``NFTTrainer(model, reward_funcs=VerifierReward("math"), args=NFTConfig(...), train_dataset=...)``.

    r-hat per group is computed from the gathered rewards *before* TRL shuffles and splits the batch, and
    travels with each sample (``nft_pass_rate``, ``nft_positive``). ``neg_weight=0`` gives RFT. pi_old is TRL's
    ``old_per_token_logps`` (the model that generated, recomputed once per rollout) whenever the run is
    off-policy (``updates_per_generation`` > 1) or samples with vLLM; under vLLM TRL's importance-sampling
    correction (trainer vs vLLM probabilities, ``vllm_importance_sampling_correction``) multiplies the per-token
    loss exactly as in GRPO.
    """

    _homogeneous_note = "NFT masks such groups (drop_homogeneous): no update from this batch"

    def __init__(self, *args, **kwargs):
        if not isinstance(kwargs.get("args"), NFTConfig):
            raise TypeError("NFTTrainer needs args=NFTConfig(...)")
        super().__init__(*args, **kwargs)
        self._check_train_dataset()

    def _check_rewards(self, rewards):
        graded = rewards[(rewards != 0) & (rewards != 1)]
        if graded.numel():
            raise ValueError(f"NFT: got a reward of {graded[0].item():g}; NFT labels every sample right (reward 1) or "
                             "wrong (0) and learns from both: use a 0/1 correctness reward (e.g. VerifierReward), "
                             "and GRPO for graded rewards")

    def _postprocess(self, output, rewards, all_correct, mode):
        g_size = self.num_generations
        rate = group_pass_rates(rewards, g_size)
        local = self._process_slice(output["completion_ids"].shape[0])
        device = output["completion_mask"].device
        output["nft_pass_rate"] = rate[local].to(device)
        output["nft_positive"] = (torch.nan_to_num(rewards, nan=0.0) > 0.5)[local].to(device)
        self._drop_rows(output, torch.isnan(rewards)[local].to(device))  # undecided samples: no label
        group_rate = rate.view(-1, g_size)[:, 0]
        if not self.args.drop_homogeneous:
            return torch.zeros_like(group_rate, dtype=torch.bool)
        return (group_rate == 0) | (group_rate == 1)

    def _compute_loss(self, model, inputs):
        a = self.args
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        mask = inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], mask], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, input_ids, attention_mask,
                                                              completion_ids.size(1))
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        rate = inputs["nft_pass_rate"].clamp(a.pass_rate_min, a.pass_rate_max)
        per_token = nft_token_loss(logps, old, inputs["nft_positive"], rate, eps=a.nft_eps,
                                   clip=(a.pass_rate_min, a.pass_rate_max), neg_weight=a.neg_weight)
        per_token = per_token * nft_prompt_weight(rate, a.prompt_weight).unsqueeze(1)
        if self.use_vllm and self.vllm_importance_sampling_correction:  # as TRL's GRPO loss: vLLM != trainer
            per_token = per_token * inputs["importance_sampling_ratio"]
        mode = "train" if self.model.training else "eval"
        accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        if self.loss_type == "token_sum":  # the NFT reference: each mini-batch's token sum / a constant
            loss = (per_token * mask).sum() / a.token_sum_divisor
        elif self.loss_type == "dr_grpo":
            loss = (per_token * mask).sum() / (per_token.size(0) * self.max_completion_length) / accum
        elif self.loss_type == "bnpo":
            loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0) / accum
        else:  # dapo: global token mean over the generation batch
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            loss = (per_token * mask).sum() / normalizer
        with torch.no_grad():
            ratio = torch.exp((logps - old).clamp(max=10.0))
            m = mask.bool()
            self._metrics[mode]["nft/ratio_mean"].append(ratio[m].mean().item() if m.any() else 1.0)
            self._metrics[mode]["nft/positive_frac"].append(inputs["nft_positive"].float().mean().item())
        return loss
