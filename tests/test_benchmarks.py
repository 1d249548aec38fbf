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
_DIFF = {"mean": 0.1, "low": 0.05, "high": 0.15, "n": 2, "confidence": 0.95, "per_seed": [0.1, 0.1],
         "excludes_zero": True}
_TRAP_REPLICATION = {
    "seeds": [1], "settings": {"trap": 0.8, "trap_steps": 5, "steps": 2, "batch": 16, "prompts": 8, "eval": 8,
                               "lrs": [1e-3], "tune_seed": 100, "problem_seed": 2000, "eval_seed": 3000},
    "start": {"avg@8": 0.2, "pass@8": 0.5, "trap_rate": 0.05, "arith_error_rate": 0.3},
    "base": {"avg@8": 0.05, "pass@8": 0.2, "trap_rate": 0.5, "arith_error_rate": 0.3},
    "rollout": {"pass@1": 0.1, "positives": 6.0, "negatives": 58.0, "trap_negatives": 20.0},
    "tuning": {"nft_offline": {"0.001": 0.1}},
    "methods": {m: {"lr": 1e-3, "per_seed": [0.2], "mean": 0.2, "mean_pass8": 0.4, "trap_per_seed": [0.1],
                    "mean_trap": 0.1, **dict.fromkeys(("mean_no_answer_rate", "mean_answer_only_rate",
                                                       "mean_arith_error_rate"), 0.1)}
                for m in ("nft_offline", "rft_offline")},
    "differences": {"nft_offline:rft_offline": {**_DIFF, "low": None, "high": None, "n": 1}},
    "trap_differences": {"nft_offline:rft_offline": {**_DIFF, "low": None, "high": None, "n": 1}},
    "train_seconds": 10.0, "seconds": 12.0}
_RLVR = {"pair": ["ngrpo", "grpo"], "metric": "pass@8", "seeds": [0, 1],
         "settings": {"steps": 1, "difficulty": 3, "eval": 4, "updates": 4, "lrs": [2e-4], "tune_seed": 100},
         "base": {"avg@8": 0.1, "pass@8": 0.4}, "tuning": {"ngrpo": {"0.0002": 0.5}},
         "methods": {m: {"lr": 2e-4, "per_seed": [0.5, 0.4], "mean": 0.45, "mean_avg8": 0.1, "mean_pass8": 0.45,
                         "all_wrong_frac": None} for m in ("ngrpo", "grpo")},
         "difference": _DIFF, "seconds": 5.0}
_STEPS = {
    "seeds": [0, 1], "settings": {"steps": 2, "batch": 16, "prompts": 16, "n": 4, "k": 2, "difficulty": 1,
                                  "eval": 8, "lrs": [3e-4], "tune_seed": 100},
    "base": {"avg@8": 0.1, "pass@8": 0.4},
    "data": {"n_budget": 20.0, "small_pass@1": 0.1, "budget_pass@1": 0.1, "samples_small": 64.0,
             "continuations": 256.0, "samples_budget": 320.0, "tokens_small": 2000.0,
             "tokens_continuations": 4000.0, "tokens_budget": 10000.0, "negative_steps_before_pit": 0.2,
             "pits": {"same": 50, "earlier": 5, "later": 10, "no_true_error": 1}},
    "tuning": {"step": {"0.0003": 0.1}},
    "methods": {m: {"lr": 3e-4, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4, "samples_drawn": 320.0,
                    "trained_rows": 30.0} for m in ("step", "nft")},
    "differences": {"step:nft": _DIFF}, "train_seconds": 10.0, "seconds": 12.0}
_TOFU_EVAL = {"forget_prob": 0.9, "forget_rouge": 0.8, "forget_truth_ratio": 0.6, "forget_quality": 0.01, "model_utility": 0.4}
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
    "npo_memory_smollm2_checkpointing": _NPO | {"shape": "smollm2-135m-instruct", "vocab": 49152,
                                                "floor_mb": 2052.0, "above_floor_ratio": 0.4,
                                                "gradient_checkpointing": True},
    "rlvr_speed": {"settings": {"steps": 2, "repeats": 1}, "median_step_s": {"grpo": 1.0, "ngrpo": 1.0, "nft": 1.0},
                   "ngrpo_over_grpo": 1.0, "nft_over_grpo": 1.0, "per_repeat_ratios": {"ngrpo": [1.0], "nft": [1.0]}},
    "rlvr_quality": {"base_accuracy": 0.3, "seeds": [0], "methods": {"nft": {"accuracy_after": 0.4, "per_seed": [0.4]}},
                     "settings": {"steps": 2, "prompts_per_step": 4, "num_generations": 8, "lr": 2e-4,
                                  "eval_problems": 20}},
    "negatives_unlearning": {
        "seeds": [0, 1], "settings": {"steps": 4, "eval_every": 2, "facts_steps": 30, "lrs": [2e-3], "tune_seed": 100},
        "retain_forget_prob": 0.3, "start_forget_prob": 0.9, "start_utility": 0.8, "tuning": {"ga": {"0.002": 0.5}},
        "methods": {m: {"lr": 2e-3, "matched_utility": [0.5, None], "mean_matched_utility": None, "reached": "1/2",
                        "mean_final": {"forget_prob": 0.2, "forget_quality": 1e-3, "model_utility": 0.5}}
                    for m in ("ga", "npo")},
        "differences": {"npo:ga": None}, "seconds": 60.0},
    "loreun_unlearning": {
        "seeds": [0, 1], "settings": {"steps": 4, "eval_every": 2, "facts_steps": 30, "lrs": [2e-3], "tune_seed": 100},
        "retain_forget_prob": 0.3, "start_forget_prob": 0.9, "start_utility": 0.8, "tuning": {"npo": {"0.002": 0.5}},
        "methods": {m: {"lr": 2e-3, "matched_utility": [0.5, 0.4], "mean_matched_utility": 0.45, "reached": "2/2",
                        "mean_final": {"forget_prob": 0.2, "forget_quality": 1e-3, "model_utility": 0.5}}
                    for m in ("npo", "npo+loreun")},
        "differences": {"npo+loreun:npo": _DIFF}, "seconds": 60.0},
    "negatives_unlearning_smollm2": {
        "seeds": [0, 1], "settings": {"base": "tofu-subset", "steps": 4, "eval_every": 2, "facts_steps": 500,
                                      "lrs": [1e-3], "tune_seed": 100, "model": "smollm2-135m-instruct",
                                      "max_new_tokens": 64, "finetune": {"epochs": 10, "lr": 1e-4},
                                      "subset": {"forget_authors": 1, "retain_authors": 4, "general": 20,
                                                 "retain_eval": 40}},
        "retain_forget_prob": 0.05, "start_forget_prob": 0.99, "start_utility": 0.4, "tuning": {"ga": {"0.001": 0.3}},
        "methods": {m: {"lr": 1e-3, "matched_utility": [0.3, 0.35], "mean_matched_utility": 0.325, "reached": "2/2",
                        "mean_final": {"forget_prob": 0.02, "forget_quality": 1e-2, "model_utility": 0.3}}
                    for m in ("ga", "npo")},
        "differences": {"npo:ga": _DIFF}, "seconds": 60.0},
    "open_unlearning_tofu": {
        "frameworks": ["negtune", "open-unlearning"], "methods": ["npo"], "seeds": [0, 1],
        "settings": {"model": "smollm2-135m-instruct", "forget_authors": 1, "retain_authors": 4, "finetune_epochs": 10,
                     "finetune_lr": 1e-4, "epochs": 5, "lr": 1e-5, "batch": 4, "accumulation": 1,
                     "warmup_epochs": 1.0, "max_new_tokens": 128, "threads": 2},
        "subset": {"forget": 20, "retain": 80, "general": 20},
        "base_evals": {fw: {"full": _TOFU_EVAL, "retain": _TOFU_EVAL | {"forget_quality": None}}
                       for fw in ("negtune", "open-unlearning")},
        "summary": {"npo": {**{fw: {k: {"mean": 0.5, "per_seed": [0.5, 0.5]} for k in (*_TOFU_EVAL, "wall_s", "loop_s", "eval_s")}
                               for fw in ("negtune", "open-unlearning")},
                            "difference": {k: _DIFF for k in _TOFU_EVAL}, "time_ratio": {"wall_s": 0.5, "loop_s": 0.4, "eval_s": 0.5},
                            "same_evaluator": {ev: {"negtune": _TOFU_EVAL, "open-unlearning": _TOFU_EVAL,
                                                    "difference": {k: _DIFF for k in _TOFU_EVAL}}
                                               for ev in ("negtune", "open-unlearning")}}},
        "seconds": 10.0},
    "negatives_unlikelihood": {
        "seeds": [0, 1], "settings": {"base_steps": 10, "steps": 2, "lrs": [1e-3], "tune_seed": 100},
        "base": {"seq_rep_4": 0.6, "ppl": 8.0}, "tuning": {"mle": {"0.001": {"seq_rep_4": 0.5, "ppl": 8.0}}},
        "methods": {m: {"lr": 1e-3, "seq_rep_4": [0.5, 0.4], "rep_128": [0.6, 0.5], "ppl": [8.0, 8.2]}
                    for m in ("mle", "seq_ul")},
        "difference": _DIFF, "ppl_difference": _DIFF, "seq_rep_ratio": 0.5, "ppl_increase": 0.05, "seconds": 9.0},
    "negatives_ngrpo_grpo": _RLVR,
    "negatives_nft_rft": _RLVR | {"pair": ["nft", "rft"], "metric": "avg@8"},
    "negatives_nat": {
        "seeds": [0, 1], "settings": {"steps": 2, "batch": 16, "prompts": 8, "difficulty": 2, "eval": 8,
                                      "lrs": [3e-4], "tune_seed": 100},
        "base": {"avg@8": 0.1, "pass@8": 0.4}, "rollout": {"pass@1": 0.1, "positives": 6.0, "negatives": 58.0},
        "tuning": {"nat": {"0.0003": 0.1}},
        "methods": {m: {"lr": 3e-4, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4, "positives": 6.0,
                        "negatives": 12.0} for m in ("nat", "sft")},
        "differences": {"nat:sft": _DIFF}, "train_seconds": 10.0, "seconds": 12.0},
    "negatives_token_forget": {
        "seeds": [0, 1], "settings": {"steps": 2, "batch": 16, "train": 24, "noise": 0.3, "ref_fraction": 0.2,
                                      "ref_steps": 2, "eval": 8, "lrs": [1e-3], "tune_seed": 100},
        "base": {"avg@8": 0.1, "pass@8": 0.4}, "tuning": {"forget": {"0.001": 0.1}},
        "methods": {m: {"lr": 1e-3, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4} for m in ("forget", "sft")},
        "split": {"negative_share_corrupted": 0.4, "negative_share_clean": 0.25},
        "differences": {"forget:sft": _DIFF}, "train_seconds": 10.0, "seconds": 12.0},
    "negatives_token_forget_d3": {
        "seeds": [0, 1], "settings": {"difficulty": 3, "steps": 2, "batch": 16, "train": 24, "noise": 0.3,
                                      "ref_fraction": 0.2, "ref_steps": 2, "eval": 8, "lrs": [1e-3], "tune_seed": 100},
        "base": {"avg@8": 0.1, "pass@8": 0.4}, "tuning": {"forget": {"0.001": 0.1}},
        "methods": {m: {"lr": 1e-3, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4} for m in ("forget", "sft")},
        "split": None, "differences": {"forget:sft": _DIFF}, "train_seconds": 10.0, "seconds": 12.0},
    "negatives_negassist": {
        "seeds": [0, 1], "settings": {"steps": 2, "batch": 16, "prompts": 8, "eval": 8, "lrs": [3e-3], "tune_seed": 100},
        "base": {"avg@8": 0.1, "pass@8": 0.4}, "rollout": {"pass@1": 0.1, "positives": 6.0, "negatives": 58.0},
        "tuning": {"sft": {"0.003": 0.1}},
        "methods": {m: {"lr": 3e-3, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4} for m in ("student", "sft")},
        "differences": {"student:sft": _DIFF}, "train_seconds": 10.0, "seconds": 12.0},
    "negatives_negassist_teacher": {
        "seeds": [0, 1], "settings": {"student_steps": 20, "steps": 2, "batch": 16, "prompts": 8, "eval": 8,
                                      "lrs": [3e-3], "tune_seed": 100},
        "base": {"avg@8": 0.05, "pass@8": 0.2}, "teacher": {"avg@8": 0.1, "pass@8": 0.4},
        "rollout": {"pass@1": 0.1, "positives": 6.0, "negatives": 58.0}, "tuning": {"sft": {"0.003": 0.1}},
        "methods": {m: {"lr": 3e-3, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4} for m in ("student", "sft")},
        "differences": {"student:sft": _DIFF}, "train_seconds": 10.0, "seconds": 12.0},
    "negatives_trap": {
        "seeds": [0, 1], "settings": {"trap": 0.8, "trap_steps": 5, "steps": 2, "batch": 16, "prompts": 8, "eval": 8,
                                      "lrs": [1e-3], "tune_seed": 100},
        "start": {"avg@8": 0.2, "pass@8": 0.5, "trap_rate": 0.05, "arith_error_rate": 0.3},
        "base": {"avg@8": 0.05, "pass@8": 0.2, "trap_rate": 0.5, "arith_error_rate": 0.3},
        "rollout": {"pass@1": 0.1, "positives": 6.0, "negatives": 58.0, "trap_negatives": 20.0},
        "tuning": {"qcrd": {"0.001": 0.1}},
        "methods": {m: {"lr": 1e-3, "per_seed": [0.2, 0.1], "mean": 0.15, "mean_pass8": 0.4, "trap_per_seed": [0.1, 0.2],
                        "mean_trap": 0.15, **dict.fromkeys(("mean_no_answer_rate", "mean_answer_only_rate",
                                                            "mean_arith_error_rate"), 0.1)} for m in ("qcrd", "qcrd_pos")},
        "differences": {"qcrd:qcrd_pos": _DIFF}, "trap_differences": {"qcrd:qcrd_pos": _DIFF},
        "train_seconds": 10.0, "seconds": 12.0},
    "negatives_trap_replication": _TRAP_REPLICATION,
    "negatives_trap_confirm": {**_TRAP_REPLICATION, "settings": {
        **_TRAP_REPLICATION["settings"], "problem_seed": 4000, "eval_seed": 5000}},
    "negatives_steps": _STEPS,
    "negatives_steps_d1": _STEPS,
    "likra_learning": {
        "seeds": [0, 1], "settings": {"sizes": [8], "lrs": [3e-3], "epochs": 1, "eval": 6, "tune_seed": 100},
        "chosen_lr": {"likra": "0.003"},
        "curves": {"8": {k: [0.2, 0.3] for k in ("base", "positive", "likra_near", "likra_random", "base_likra_near",
                                                  "base_likra_random")}},
        "differences": {"N=8: Likra (near) - SFT": _DIFF}, "train_seconds": 4.0, "seconds": 26.0},
    "likra_rerank": {
        "benchmark": "likra_rerank", "seeds": [0, 1], "settings": {"prompts": 8, "eval": 6, "epochs": 1, "lr": 3e-3},
        "held_out": {"avg@8": 0.2, "pass@8": 0.5},
        "accuracy": {k: [0.2, 0.3] for k in ("likra", "positive", "base_likra", "base", "mean")},
        "differences": {"Likra pick - avg@8": _DIFF}, "train_seconds": 4.0, "seconds": 27.0},
    "goldfish_memorisation": {
        "seeds": [0, 1], "settings": {"steps": 6, "lr": 3e-3, "k": 4, "h": 13, "suffix": 8},
        "methods": {m: {"exact_match": [1.0, 0.5], "matched_prefix": [8.0, 4.0], "held_out_ppl": [8.0, 9.0]}
                    for m in ("standard", "goldfish")},
        "difference": _DIFF, "ppl_difference": _DIFF, "train_seconds": 10.0, "seconds": 12.0},
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


def test_negatives_unlearning_smoke_runs_resumes_and_reports(tmp_path):
    """The experiment end to end at smoke size (tiny bases, 4 steps, one seed): curves, matched utility, the
    paired difference, the figure; a rerun reuses every run (nothing retrained)."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_unlearning.py"
    cmd = [sys.executable, str(script), "--seeds", "0", "--tune-seed", "100", "--lrs", "5e-3", "--steps", "4",
           "--eval-every", "2", "--facts-steps", "30", "--work", str(tmp_path / "work"),
           "--methods", "ga,npo,npo+loreun", "--compare", "npo:ga,npo+loreun:npo",
           "--plot", str(tmp_path / "fig.png"), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["differences"]) == {"npo:ga", "npo+loreun:npo"}
    state = json.loads(next((tmp_path / "work").rglob("npo+loreun-lr0.005/trainer_state.json")).read_text())
    assert any("reweight_max" in h for h in state["log_history"])  # the plug-in reached the trainer
    for m in ("ga", "npo", "npo+loreun"):
        t = r["methods"][m]
        assert len(t["curves"]) == 1 and [p["step"] for p in t["curves"][0]] == [0, 2, 4]
        assert t["curves"][0][0] == r["methods"]["ga"]["curves"][0][0]  # both start from the same model
        assert t["curves"][0][-1]["forget_prob"] < t["curves"][0][0]["forget_prob"]  # it unlearned something
    assert (tmp_path / "fig.png").stat().st_size > 0
    module, _ = run_all.benchmarks()["negatives_unlearning"]
    assert "NPO vs GA" in module.results_section({**r, "methods": {m: r["methods"][m] for m in ("ga", "npo")},
                                                   "differences": {"npo:ga": r["differences"]["npo:ga"]}})
    assert "NPO+LoReUn - NPO" in module.results_section(r)
    runs = sorted((tmp_path / "work").rglob("curve.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0 and [p.stat().st_mtime_ns for p in runs] == stamps
    assert json.loads((tmp_path / "r.json").read_text())["methods"]["npo"]["curves"] == r["methods"]["npo"]["curves"]


def test_negatives_unlikelihood_and_rlvr_smoke(tmp_path):
    """The other two experiments at smoke size: they run, pair by seed and render their sections."""
    import json
    import subprocess
    import sys

    here = Path(run_all.__file__).parent
    ul = [sys.executable, str(here / "negatives_unlikelihood.py"), "--seeds", "0,1", "--lrs", "1e-3",
          "--base-steps", "10", "--steps", "2", "--methods", "mle,seq_ul", "--work", str(tmp_path / "ul"),
          "--json", str(tmp_path / "ul.json")]
    rl = [sys.executable, str(here / "negatives_rlvr.py"), "--pair", "ngrpo,grpo", "--seeds", "0,1", "--lrs", "2e-4",
          "--steps", "1", "--eval", "4", "--warm-s", "5", "--work", str(tmp_path / "rl"),
          "--json", str(tmp_path / "rl.json")]
    for cmd, name in ((ul, "negatives_unlikelihood"), (rl, "negatives_ngrpo_grpo")):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = json.loads((tmp_path / ("ul.json" if cmd is ul else "rl.json")).read_text())
        assert r["difference"]["n"] == 2 and r["difference"]["low"] is not None
        module, _ = run_all.benchmarks()[name]
        assert "Negatives that matter" in module.results_section(r)
    ul_r = json.loads((tmp_path / "ul.json").read_text())
    assert all(0 <= v <= 1 for v in ul_r["methods"]["seq_ul"]["seq_rep_4"])


def test_goldfish_memorisation_smoke(tmp_path):
    """The Goldfish experiment end to end at smoke size: both runs trained and scored from one initial model, the
    paired difference reported, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "goldfish_memorisation.py"
    cmd = [sys.executable, str(script), "--seeds", "0", "--steps", "4", "--suffix", "8", "--work", str(tmp_path),
           "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    for m in ("standard", "goldfish"):
        assert 0 <= r["methods"][m]["exact_match"][0] <= 1 and 0 <= r["methods"][m]["matched_prefix"][0] <= 8
        assert r["methods"][m]["held_out_ppl"][0] > 1
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 2
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["goldfish_memorisation"]
    assert "Goldfish - standard, exact-match rate" in module.results_section(r)


def test_negatives_nat_smoke(tiny_model_dir, tmp_path):
    """The NAT experiment at smoke size: every method trained on the same rollout per seed, NAT evaluated with its
    marker and the others without, the paired differences reported, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_nat.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "3e-4", "--steps", "1", "--prompts", "8",
           "--difficulty", "1", "--eval", "4", "--base", str(tiny_model_dir), "--methods", "nat,sft,rft_offline", "--compare", "nat:sft,nat:rft_offline",
           "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["differences"]) == {"nat:sft", "nat:rft_offline"} and r["differences"]["nat:sft"]["n"] == 2
    assert r["methods"]["sft"]["negatives"] == 0 == r["methods"]["rft_offline"]["negatives"]
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 9  # 3 methods x (tuning seed + 2 seeds)
    for run in runs:
        variant = json.loads(run.read_text())["variant"]
        prompt = json.loads((run.parent / "eval" / "samples.jsonl").read_text().splitlines()[0])["prompt"]
        assert prompt[-1]["content"].endswith("Solve the problem correctly.") == (variant == "nat")
    rollouts = {json.loads(p.read_text())["data_fingerprint"] for p in tmp_path.rglob("rollout/settings.json")}
    assert len(rollouts) == 3  # one rollout per seed, shared by its methods
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_nat"]
    assert "nat - sft, avg@8" in module.results_section(r)


def test_negatives_token_forget_smoke(tiny_model_dir, tmp_path):
    """The token-forgetting experiment at smoke size: noisy data per seed (the corrupted rows' chains recomputed
    from the wrong step), one reference per seed and rate shared by forget and ignore, the split's precision and
    the paired differences reported, a rerun reusing every run."""
    import json
    import re
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_token_forget.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--steps", "1", "--ref-steps", "1",
           "--train", "20", "--eval", "4", "--base", str(tiny_model_dir), "--work", str(tmp_path),
           "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["differences"]) == {"forget:sft", "ignore:sft", "forget:ignore", "sft_clean:sft"}
    assert 0 < r["split"]["negative_share_corrupted"] < 1 and 0 < r["split"]["negative_share_clean"] < 1
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 12 and len(list(tmp_path.rglob("reference-lr*/model/config.json"))) == 3
    rows = [json.loads(line) for line in next(tmp_path.rglob("seed0/train.jsonl")).read_text().splitlines()]
    assert sum(r["corrupted"] for r in rows) == 6  # 30% of 20
    for row in rows:  # a corrupted chain stays consistent from the wrong step on, and its answer is wrong
        boxed = re.search(r"boxed\{(-?\d+)\}", row["completion"])[1]
        steps = re.findall(r"(\d+) ([+*-]) (\d+) = (\d+)\.", row["completion"])
        assert (boxed == row["answer"]) != row["corrupted"] and boxed == steps[-1][3]
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_token_forget"]
    text = module.results_section(r)
    assert "forget - sft, avg@8" in text and "of the answer tokens of corrupted rows marked negative" in text


def test_negatives_negassist_smoke(tiny_model_dir, tmp_path):
    """The negative-assisted distillation experiment at smoke size: one rollout per seed, the integrated model and
    the student share their first two stages, the integrated model is evaluated with the transformers engine,
    the paired differences reported, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_negassist.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "3e-3", "--steps", "1", "--prompts", "8",
           "--eval", "4", "--base", str(tiny_model_dir), "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"sft", "integrated", "student", "sft_3x"} and r["differences"]["student:sft"]["n"] == 2
    runs = sorted(tmp_path.rglob("run.json"))
    assert len(runs) == 12 and len(list(tmp_path.rglob("stages-lr*/integrate/model/negassist.json"))) == 3
    assert set(r["asc"]) == {"sft", "student"} and len(r["asc"]["student"]["asc"]) == 2  # ranker re-votes
    engines = {json.loads((run.parent / "eval" / "results.json").read_text())["settings"]["engine"] for run in runs}
    assert engines == {"hf"}
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_negassist"]
    assert "student - sft, avg@8" in module.results_section(r)


def test_negatives_steps_smoke(tiny_model_dir, tmp_path):
    """The step-level experiment at smoke size: per seed a rollout, its step values and an equal-budget rollout
    (as many more samples as the continuations drew), every variant on its data, the pit check, the paired
    differences, a rerun reusing every run."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_steps.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--steps", "1", "--prompts", "16",
           "--n", "4", "--k", "2", "--difficulty", "1", "--eval", "4", "--base", str(tiny_model_dir),
           "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"step", "nsa", "step_dpo", "nft", "outcome", "outcome_small", "step_oracle"}
    d = r["data"]
    assert d["samples_budget"] == 16 * d["n_budget"] and d["continuations"] > 0
    assert abs(d["samples_budget"] - (d["samples_small"] + d["continuations"])) <= 16  # equal budget, rounded
    assert r["methods"]["step"]["samples_drawn"] == d["samples_small"] + d["continuations"]
    assert sum(d["pits"].values()) > 0 and r["differences"]["step:nft"]["n"] == 2
    runs = sorted(tmp_path.rglob("run.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    module, _ = run_all.benchmarks()["negatives_steps"]
    text = module.results_section(r)
    assert "step - nft, avg@8" in text and "Monte-Carlo first pit" in text


def test_likra_learning_smoke(tmp_path):
    """The Likra experiment at smoke size: heads trained per seed and negative kind, every rule scored, the
    paired differences reported."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "likra_learning.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--sizes", "4", "--lrs", "3e-3", "--epochs", "1",
           "--eval", "3", "--warm-s", "5", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    cell = r["curves"]["4"]
    assert set(cell) == {"likra_near", "positive", "base_likra_near", "base", "likra_random", "base_likra_random"}
    assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in cell.values())
    assert len(list(tmp_path.rglob("likra.json"))) == 5  # tuning + 2 seeds x 2 negative kinds
    module, _ = run_all.benchmarks()["likra_learning"]
    assert "Likra (near) - SFT" in module.results_section(r)
    # re-ranking: heads from each seed's own rollout pick one sample per held-out problem, every rule
    rerank = [sys.executable, str(script), "--mode", "rerank", "--seeds", "0,1", "--epochs", "1", "--eval", "4",
              "--rerank-prompts", "4", "--warm-s", "5", "--work", str(tmp_path), "--json", str(tmp_path / "rr.json")]
    proc = subprocess.run(rerank, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rr = json.loads((tmp_path / "rr.json").read_text())
    assert all(len(v) == 2 and all(0 <= x <= 1 for x in v) for v in rr["accuracy"].values())
    assert all(x <= rr["held_out"]["pass@8"] for v in rr["accuracy"].values() for x in v)  # a pick can't beat pass@8
    assert "learned verifier" in module.results_section(rr)


def test_click_on_the_repetition_task_smoke(tmp_path):
    """Click in the repetition experiment: the base's samples labeled by the diversity rule, Click trained on the
    gold text and the ranked pairs, scored and compared with MLE and seq-UL by seed (a base that loops: 100
    steps, as the full run)."""
    import json
    import subprocess
    import sys

    script = Path(run_all.__file__).parent / "negatives_unlikelihood.py"
    cmd = [sys.executable, str(script), "--seeds", "0,1", "--lrs", "1e-3", "--base-steps", "100", "--steps", "2",
           "--work", str(tmp_path), "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]) == {"mle", "seq_ul", "click"} and r["click"]["vs_seq_ul"]["n"] == 2
    for s in r["click"]["samples"]:
        assert s["samples"] == 64 * 8 and 0 < s["negatives"] < s["samples"]  # both labels: pairs exist
    module, _ = run_all.benchmarks()["negatives_unlikelihood"]
    assert "Click - seq-UL" in module.results_section(r)


def test_trap_sections_say_which_run_they_are():
    module, _ = run_all.benchmarks()["negatives_trap"]
    heads = {n: module.results_section(MINIMAL[n]).splitlines()[0]
             for n in ("negatives_trap", "negatives_trap_replication", "negatives_trap_confirm")}
    assert "fresh" not in heads["negatives_trap"] and "a replication on fresh problems" in heads["negatives_trap_replication"]
    assert "a confirmatory run on fresh problems (1 seed)" in heads["negatives_trap_confirm"]
    assert "drawn with seed 4000 + s" in module.results_section(MINIMAL["negatives_trap_confirm"])
