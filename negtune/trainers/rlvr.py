"""One harness for the online RLVR methods, so baselines and negtune's methods share every setting.

The methods are the ``online_rlvr`` entries of :mod:`negtune.methods` (config class, trainer class and the
defaults that set each apart): ``grpo`` / ``dr_grpo``: TRL's GRPOTrainer (loss_type grpo; dr_grpo with
unscaled advantages); ``ngrpo``: NGRPOTrainer; ``nft`` / ``rft``: NFTTrainer (rft = neg_weight 0).
"""

from __future__ import annotations

import os
import re
from typing import Any

from negtune import methods
from negtune.trainers.rewards import VerifierReward
from negtune.trainers.vllm_sync import fit_cpu_colocate_sync

ONLINE_METHODS = methods.names("online_rlvr")


_GENERATION_BATCH = re.compile(r"generation_batch_size \((\d+)\) must be divisible by num_generations \((\d+)\)")


def explain_config_error(error: ValueError) -> ValueError:
    """TRL's "generation_batch_size (6) must be divisible by num_generations (4)" names a field the user rarely
    sets: say which flags make it and what to change. Other errors are returned as they are."""
    found = _GENERATION_BATCH.search(str(error))
    if not found:
        return error
    size, groups = int(found[1]), int(found[2])
    procs = int(os.environ.get("WORLD_SIZE", "1"))
    return ValueError(
        f"non-divisible batch: generation_batch_size ({size}) must be divisible by num_generations ({groups}). "
        f"The generation batch is --per_device_train_batch_size x {procs} process(es) x --steps_per_generation "
        f"(default: --updates_per_generation x --gradient_accumulation_steps), or --generation_batch_size when "
        f"given; it must hold whole "
        f"groups of --num_generations {groups} completions per prompt: make it a multiple of {groups} "
        f"(e.g. {', '.join(str(m) for m in (size // groups * groups, size // groups * groups + groups) if m)}) "
        f"or change --num_generations")


def check_generation_batch(args, train_dataset) -> None:
    """TRL's sampler yields whole generation batches only: a training set with fewer prompts than one rollout
    needs would train on nothing. Say so, with the flags that set the rollout's size."""
    if not hasattr(train_dataset, "__len__"):
        return
    prompts = args.generation_batch_size // args.num_generations
    if len(train_dataset) < prompts:
        raise ValueError(
            f"the training set has {len(train_dataset)} prompts but one rollout (generation batch) needs {prompts}: "
            f"--per_device_train_batch_size {args.per_device_train_batch_size} x processes x "
            f"--steps_per_generation {args.steps_per_generation} (= --updates_per_generation x "
            f"--gradient_accumulation_steps) / --num_generations {args.num_generations}; use more prompts or lower "
            f"--updates_per_generation")


def online_config(method: str, **kwargs: Any):
    """The method's config with the shared fields; method-specific defaults applied where not given."""
    if method not in ONLINE_METHODS:
        raise ValueError(f"unknown online method {method!r}; known: {', '.join(ONLINE_METHODS)}")
    try:
        return methods.make_config(method, **kwargs)
    except ValueError as e:
        raise explain_config_error(e) from None


def build_online_trainer(method: str, model, train_dataset, processing_class, args=None, verifier: str = "math",
                         peft_config=None, **config_kwargs: Any):
    """An online trainer for ``method`` with negtune's verifier as the reward function."""
    args = args if args is not None else online_config(method, **config_kwargs)
    cls = methods.get(method).trainer_class
    check_generation_batch(args, train_dataset)
    trainer = cls(model=model, reward_funcs=VerifierReward(verifier), args=args, train_dataset=train_dataset,
                  processing_class=processing_class, peft_config=peft_config)
    fit_cpu_colocate_sync(trainer)  # TRL's own GRPOTrainer too
    return trainer
