"""The least each benchmark script's ``results_section`` reads, one entry per RESULTS.md section in its order
(``test_benchmarks.py`` renders each; a new section needs an entry here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import npo_memory  # noqa: E402

_NPO = {"shape": "tofu", "device": "cpu", "parameters": 1000, "mean_tokens": 10.0, "mean_answer_tokens": 4.0,
        "settings": {"batch": 2, "repeats": 1}, "step_time_ratio": 0.5, "peak_memory_ratio": 0.7,
        "cache_only_step_time_ratio": 0.6, "cache_only_peak_memory_ratio": 0.9,
        "step_time_ratio_with_cache_amortized": 0.52,
        **{v: {"median_step_s": 1.0, "peak_mb": 100.0, "setup_s": 0.1} for v in npo_memory.VARIANTS}}
_DIFF = {"mean": 0.1, "low": 0.05, "high": 0.15, "n": 2, "confidence": 0.95, "per_seed": [0.1, 0.1],
         "excludes_zero": True}
_UL_SMOLLM2 = {
    "seeds": [0, 1], "settings": {"steps": 2, "batch": 4, "held_out": 4, "lrs": [3e-4], "tune_seed": 100,
                                  "model": "smollm2-135m-instruct"},
    "train_rows": 600, "base": {"seq_rep_4": 0.5, "ppl": 9.0},
    "tuning": {"mle": {"0.0003": {"seq_rep_4": 0.5, "ppl": 8.0}}},
    "methods": {m: {"lr": 3e-4, "seq_rep_4": [0.5, 0.4], "rep_128": [0.6, 0.5], "ppl": [8.0, 8.2]}
                for m in ("mle", "seq_ul")},
    "difference": _DIFF, "ppl_difference": _DIFF, "seq_rep_ratio": 0.5, "ppl_increase": 0.05,
    "train_seconds": 8.0, "seconds": 9.0}
_TRAP = {
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
    "train_seconds": 10.0, "seconds": 12.0}
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
                 "vllm_fp32_slice": {"prompts": 1, "tokens_per_s": 300.0, "bf16_tokens_per_s": 440.0},
                 "vllm_compiled_slice": {"prompts": 1, "start_s": 80.0, "tokens_per_s": 450.0,
                                         "eager_tokens_per_s": 440.0, "compiled_over_eager": 1.02}},
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
    "negatives_unlikelihood_smollm2": _UL_SMOLLM2,
    "negatives_unlikelihood_smollm2_finetune": _UL_SMOLLM2 | {
        "settings": {**_UL_SMOLLM2["settings"], "from_mle": 3e-4}},
    "negatives_unlikelihood_smollm2_finetune_mle_bound": _UL_SMOLLM2 | {
        "settings": {**_UL_SMOLLM2["settings"], "from_mle": 3e-4, "ppl_against": "mle"}},
    "negatives_unlikelihood_smollm2_finetune_mle_bound_fresh": _UL_SMOLLM2 | {
        "seeds": [5, 6], "settings": {**_UL_SMOLLM2["settings"], "from_mle": 3e-4, "ppl_against": "mle"}},
    "negatives_ngrpo_grpo": _RLVR,
    "negatives_ngrpo_grpo_confirm": _RLVR | {"settings": {**_RLVR["settings"], "difficulty": 4, "eval_seed": 5000}},
    "negatives_ngrpo_grpo_trap": _RLVR | {
        "settings": {**_RLVR["settings"], "task": "trap"}, "base": {"avg@8": 0.05, "pass@8": 0.3, "trap_rate": 0.5},
        "methods": {m: {**_RLVR["methods"][m], "trap_rate": 0.4} for m in ("ngrpo", "grpo")}},
    "negatives_ngrpo_grpo_trap_confirm": _RLVR | {
        "settings": {**_RLVR["settings"], "task": "trap", "eval_seed": 5000},
        "base": {"avg@8": 0.05, "pass@8": 0.3, "trap_rate": 0.5},
        "methods": {m: {**_RLVR["methods"][m], "trap_rate": 0.4} for m in ("ngrpo", "grpo")}},
    "negatives_ngrpo_grpo_trap95": _RLVR | {
        "settings": {**_RLVR["settings"], "task": "trap", "trap_rate": 0.95},
        "base": {"avg@8": 0.02, "pass@8": 0.1, "trap_rate": 0.7},
        "methods": {m: {**_RLVR["methods"][m], "trap_rate": 0.4} for m in ("ngrpo", "grpo")}},
    "negatives_ngrpo_grpo_trap95_confirm": _RLVR | {
        "settings": {**_RLVR["settings"], "task": "trap", "trap_rate": 0.95, "eval_seed": 5000},
        "base": {"avg@8": 0.02, "pass@8": 0.1, "trap_rate": 0.7},
        "methods": {m: {**_RLVR["methods"][m], "trap_rate": 0.4} for m in ("ngrpo", "grpo")}},
    "negatives_ngrpo_grpo_trap_passk": _RLVR | {
        "settings": {**_RLVR["settings"], "task": "trap", "eval_seed": 5000},
        "base": {"avg@8": 0.05, "pass@8": 0.3, "trap_rate": 0.5},
        "methods": {m: {**_RLVR["methods"][m], "trap_rate": 0.4} for m in ("ngrpo", "grpo")},
        "passk": {"n": 4, "problems": 8, "k": [1, 2, 4], "base": [0.1, 0.2, 0.3],
                  "per_seed": {m: [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]] for m in ("ngrpo", "grpo")},
                  "mean": {m: [0.15, 0.25, 0.35] for m in ("ngrpo", "grpo")},
                  "difference_at": [_DIFF] * 3, "auc": {m: [0.2, 0.3] for m in ("ngrpo", "grpo")},
                  "difference_auc": _DIFF}},
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
    "negatives_trap": _TRAP,
    "negatives_trap_replication": _TRAP_REPLICATION,
    "negatives_trap_confirm": {**_TRAP_REPLICATION, "settings": {
        **_TRAP_REPLICATION["settings"], "problem_seed": 4000, "eval_seed": 5000}},
    "negatives_trap_qcrd_confirm": {**_TRAP, "settings": {
        **_TRAP["settings"], "problem_seed": 4000, "eval_seed": 5000}},
    "negatives_trap_qcrd_noans_confirm": {
        **_TRAP, "settings": {**_TRAP["settings"], "problem_seed": 4000, "eval_seed": 5000},
        "methods": {m: _TRAP["methods"]["qcrd"] for m in ("qcrd_noans", "qcrd", "sft")},
        "differences": {"qcrd_noans:sft": _DIFF, "qcrd_noans:qcrd": _DIFF},
        "trap_differences": {"qcrd_noans:sft": _DIFF, "qcrd_noans:qcrd": _DIFF}},
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
