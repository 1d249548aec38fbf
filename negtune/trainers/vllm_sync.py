"""Weight sync for TRL's colocated vLLM when vLLM runs its CPU build.

TRL's colocate mode pushes each trained parameter into the in-process engine with
``model.load_weights([(name, tensor)])``. On a GPU that writes into the engine's weight tensors. vLLM's CPU
backend instead repacks every linear weight for its GEMM kernels after loading
(``UnquantizedLinearMethod.process_weights_after_loading`` -> ``dispatch_cpu_unquantized_gemm(remove_weight=True)``):
the layer computes from a packed copy held by a closure, and its ``weight`` becomes an empty parameter with no
``weight_loader``. The first sync then fails (``'Parameter' object has no attribute 'weight_loader'``), and even
a write that succeeded would not reach the packed copy the kernels read.

vLLM's own in-place reload (``model_runner.reload_weights(weights_iterator, is_checkpoint_format=True)``,
its RL weight-update path) restores each layer's checkpoint-format parameters, loads the new values and runs
the layer's post-load processing again, so the kernels are repacked from the new weights. On a CPU, negtune
routes TRL's colocated sync through it; everything else in TRL's sync (PEFT merge/unmerge, the names vLLM
expects, DeepSpeed/FSDP gathering, the prefix-cache reset) is TRL's own.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def _colocated_cpu_engine(trainer) -> bool:
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or getattr(generation, "mode", None) != "colocate":
        return False
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def fit_cpu_colocate_sync(trainer) -> bool:
    """Make ``trainer``'s colocated vLLM take weight syncs on a CPU; returns True when it was needed.

    A no-op without vLLM, in server mode, on a GPU, and when already applied.
    """
    if not getattr(getattr(trainer, "args", None), "use_vllm", False) or not _colocated_cpu_engine(trainer):
        return False
    generation = trainer.vllm_generation
    if getattr(generation, "_negtune_cpu_sync", False):
        return True

    def sync_weights() -> None:
        if generation.enable_sleep_mode:  # as TRL: map the weights back before writing them
            generation.llm.wake_up(tags=["weights"])
            generation._llm_weights_sleeping = False
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)
        generation.llm.reset_prefix_cache()

    generation.sync_weights = sync_weights
    generation._negtune_cpu_sync = True
    logger.info("colocated vLLM on a CPU: weight syncs go through vLLM's in-place reload (kernels repacked)")
    return True


def close_colocated_vllm(trainer) -> None:
    """Stop a colocated vLLM engine while the process group it shares with the trainer still exists.

    Left to interpreter exit, vLLM's finalizer tears down its groups after negtune has destroyed the default
    one and prints a traceback (``Invalid process group specified``) after a successful run.
    """
    generation = getattr(trainer, "vllm_generation", None)
    llm = getattr(generation, "llm", None)
    if llm is None:
        return
    llm.llm_engine.engine_core.shutdown()
