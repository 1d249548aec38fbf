"""What NGRPO and online NFT add to TRL's GRPOTrainer: the gathered group rewards, and dynamic sampling.

TRL 1.16 computes the group advantages inline in ``_generate_and_score_completions`` from the rewards that
``_calculate_rewards`` gathers across processes; following the maintainers' advice (trl#4525) we keep that
gathered tensor and post-process the returned batch, before ``_prepare_inputs`` shuffles and splits it.

Dynamic sampling (DAPO's filter, used by both reference implementations): groups that carry no signal for the
method are replaced by groups from further generation rounds until the generation batch is full. Every
decision is taken on gathered (global) rewards, so all processes agree; rows are then re-distributed from the
gathered rounds so each process keeps its share of the full batch.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


class GroupRewardsMixin:
    _homogeneous_note = "it carries no learning signal"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from negtune.trainers.vllm_sync import fit_cpu_colocate_sync

        fit_cpu_colocate_sync(self)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards_per_func = rewards_per_func
        return rewards_per_func

    def _postprocess(self, output: dict, rewards: torch.Tensor, all_correct: torch.Tensor,
                     mode: str) -> torch.Tensor:
        """The method's changes to one round's batch; returns a global bool per group: True where the group
        carries no signal (replaced by dynamic sampling, else masked)."""
        raise NotImplementedError

    def _check_rewards(self, rewards: torch.Tensor) -> None:
        """Refuse rewards the method's formula does not hold for (named with the first offending value)."""

    def _check_train_dataset(self) -> None:
        """One rollout's prompts must fit in the training set; dynamic sampling needs indexable data."""
        from negtune.trainers.rlvr import check_generation_batch

        check_generation_batch(self.args, self.train_dataset)
        if self.args.dynamic_sampling and not hasattr(self.train_dataset, "__getitem__"):
            raise ValueError("dynamic_sampling draws refill prompts from the training dataset by index: it needs a "
                             "map-style dataset (not an IterableDataset); pass --dynamic_sampling false")

    def _generate_and_score_completions(self, inputs):
        output, filtered = self._score_round(inputs)
        mode = "train" if self.model.training else "eval"
        rounds = 1
        if mode == "train" and self.args.dynamic_sampling and bool(filtered.any()):
            output, filtered, rounds = self._resample(inputs, output, filtered)
            self._metrics[mode]["sampling/rounds"].append(float(rounds))
        self._metrics[mode]["groups/filtered_frac"].append(filtered.float().mean().item())
        if bool(filtered.all()):
            logger.warning("every group in this generation batch is homogeneous after %d generation round(s): %s",
                           rounds, self._homogeneous_note)
        local = self._process_slice(output["completion_ids"].shape[0])
        drop = filtered.repeat_interleave(self.num_generations)[local].to(output["completion_mask"].device)
        self._drop_rows(output, drop)  # every rank calls it: the token count is gathered across ranks
        return output

    def _score_round(self, inputs) -> tuple[dict, torch.Tensor]:
        """One generation round: TRL's generation, scoring and old log-probs, then the method's post-processing."""
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        rewards = self._group_rewards()
        self._check_rewards(rewards[~torch.isnan(rewards)])
        all_correct = self._log_group_kinds(rewards, mode)
        return output, self._postprocess(output, rewards, all_correct, mode).to(torch.bool).cpu()

    def _resample(self, inputs, output: dict, filtered: torch.Tensor) -> tuple[dict, torch.Tensor, int]:
        need = filtered.numel()
        rounds = [(output, filtered)]
        kept = int((~filtered).sum())
        while kept < need and len(rounds) < self.args.max_sampling_rounds:
            more = self._score_round(self._refill_inputs(len(inputs), len(rounds)))
            rounds.append(more)
            kept += int((~more[1]).sum())
        if kept < need:
            logger.warning("dynamic sampling: %d of %d groups carry signal after %d generation rounds "
                           "(max_sampling_rounds); the other %d are masked out of this batch",
                           kept, need, len(rounds), need - kept)
        picks = [(r, g) for r, (_, f) in enumerate(rounds) for g in range(f.numel()) if not f[g]][:need]
        filler = [(0, g) for g in range(need) if filtered[g]][: need - len(picks)]
        new_filtered = torch.tensor([False] * len(picks) + [True] * len(filler))
        return self._assemble([o for o, _ in rounds], picks + filler), new_filtered, len(rounds)

    def _refill_inputs(self, n_local: int, round_no: int) -> list[dict]:
        """Prompts for another round, laid out as TRL lays out a generation batch: each prompt repeated
        num_generations times in global order, this process's slice. Drawn at random from the training set
        with a generator seeded by (seed, step, round), identical on every process and on a resumed run (the
        references draw the next batches of their data stream instead)."""
        g_size, data = self.num_generations, self.train_dataset
        n_prompts = n_local * self.accelerator.num_processes // g_size
        gen = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.state.global_step * 1009 + round_no)
        if len(data) >= n_prompts:
            order = torch.randperm(len(data), generator=gen)[:n_prompts]
        else:
            order = torch.randint(len(data), (n_prompts,), generator=gen)
        rows = [data[int(i)] for i in order for _ in range(g_size)]
        start = self.accelerator.process_index * n_local
        return rows[start:start + n_local]

    def _assemble(self, outputs: list[dict], picks: list[tuple[int, int]]) -> dict:
        """A generation batch made of the picked (round, group) groups, this process's rows of it."""
        g_size = self.num_generations
        n_local = outputs[0]["completion_ids"].shape[0]
        local = self._process_slice(n_local)
        assembled = dict(outputs[0])
        keys = [k for k, v in outputs[0].items()
                if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == n_local]
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        for key in keys:
            left = key.startswith("prompt")
            pad = pad_id if key.endswith("_ids") else 0
            every = [self._gather_rows(o[key], left, pad) for o in outputs]
            if every[0].dim() > 1:
                width = max(t.shape[1] for t in every)
                every = [_pad_width(t, width, left, pad) for t in every]
            rows = torch.cat([every[r][g * g_size:(g + 1) * g_size] for r, g in picks])
            assembled[key] = rows[local].to(outputs[0][key].device)
        mask = assembled["completion_mask"]
        assembled["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        return assembled

    def _gather_rows(self, t: torch.Tensor, left: bool, pad) -> torch.Tensor:
        dtype = t.dtype
        if dtype == torch.bool:  # not every collective backend reduces bools
            t = t.to(torch.uint8)
        if t.dim() > 1:
            t = self.accelerator.pad_across_processes(t, dim=1, pad_index=pad, pad_first=left)
        return self.accelerator.gather(t).to(dtype)

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
        """Log all-correct / all-wrong / undecided counts of one generation round; returns all-correct per group."""
        g = rewards.view(-1, self.num_generations)
        decided = ~torch.isnan(g)
        pos = torch.where(decided, g > 0.5, False).sum(1)
        n = decided.sum(1)
        all_wrong = (pos == 0) & (n > 0)
        all_correct = (pos == n) & (n > 0)
        self._metrics[mode]["groups/all_wrong_frac"].append(all_wrong.float().mean().item())
        self._metrics[mode]["groups/all_correct_frac"].append(all_correct.float().mean().item())
        self._metrics[mode]["rewards/undecided"].append(float((~decided).sum().item()))
        return all_correct


def _pad_width(t: torch.Tensor, width: int, left: bool, pad) -> torch.Tensor:
    extra = width - t.shape[1]
    if extra <= 0:
        return t
    filler = torch.full((t.shape[0], extra, *t.shape[2:]), pad, dtype=t.dtype, device=t.device)
    return torch.cat([filler, t] if left else [t, filler], dim=1)
