"""open-unlearning's own code, run from a checkout in its own Python environment, for
``open_unlearning_tofu.py``: its training (``src/train.py``) and TOFU eval (``src/eval.py``) with Hydra
overrides and a config folder composed from its own configs, negtune's model folders seen through a view its
transformers 4.45 reads, and training processes timed alike for both frameworks. Nothing of open-unlearning is
copied here: every call runs the checkout given.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

# open-unlearning's configs/trainer/{NPO,GradDiff,SimNPO}.yaml, as negtune flags (beta, gamma, alpha, delta)
METHOD_ARGS = {
    "npo": {"beta": 0.1, "gamma": 1.0, "alpha": 1.0},
    "graddiff": {"gamma": 1.0, "alpha": 1.0},
    "simnpo": {"beta": 4.5, "gamma": 0.125, "alpha": 1.0, "delta": 0.0},
}
OU_HANDLER = {"npo": "NPO", "graddiff": "GradDiff", "simnpo": "SimNPO"}


# Its TOFU eval, restricted to the metrics both frameworks compute (no holdout split: no privleak)
OU_METRICS = ("forget_Truth_Ratio", "forget_quality", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility")
OU_KEYS = {"forget_Q_A_Prob": "forget_prob", "forget_Q_A_ROUGE": "forget_rouge", "forget_truth_ratio":
           "forget_truth_ratio", "forget_quality": "forget_quality", "model_utility": "model_utility"}
OU_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def ou_model_view(src: Path, dst: Path) -> Path:
    """A view of a folder saved by transformers 5 that open-unlearning's transformers 4.45 reads as the same
    model: weights and tokenizer linked; ``rope_parameters`` written as ``rope_theta`` (4.45 ignores the new
    key and would silently use its default base, 10,000, instead of SmolLM2's 100,000), the tokenizer class and
    the chat template (4.45 does not read ``chat_template.jinja``) in ``tokenizer_config.json``."""
    if (dst / "config.json").exists():
        return dst
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix == ".safetensors" or f.name in ("tokenizer.json", "generation_config.json",
                                                     "model.safetensors.index.json"):
            (dst / f.name).symlink_to(f.resolve())
    config = json.loads((src / "config.json").read_text())
    rope = config.pop("rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise SystemExit(f"{src}: rope scaling {rope} has no transformers-4.45 form here")
    if "rope_theta" in rope:
        config.update(rope_theta=rope["rope_theta"], rope_scaling=None)
    config["torch_dtype"] = config.pop("dtype", "float32")
    tok = json.loads((src / "tokenizer_config.json").read_text())
    if tok.get("tokenizer_class") == "TokenizersBackend":
        tok["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok.pop("backend", None)
    if (src / "chat_template.jinja").exists():
        tok["chat_template"] = (src / "chat_template.jinja").read_text()
    (dst / "tokenizer_config.json").write_text(json.dumps(tok, indent=1))
    (dst / "config.json").write_text(json.dumps(config, indent=1))
    return dst


def ou_configs(home: Path, ou: Path, python: str, root: Path, max_new_tokens: int) -> Path:
    """A Hydra config folder (``--config-dir``) for open-unlearning: a local fp32 model in its own chat template
    (no system prompt given, as negtune's default), and an eval experiment with the five metrics, every data set
    of which (the metrics' pre-computed ones included) reads the subset's json files. The experiment is
    composed from open-unlearning's own eval configs (``--cfg job``) and only the data paths are replaced."""
    import yaml

    cfg = home / f"ou_configs-t{max_new_tokens}"
    if (cfg / "experiment" / "eval" / "tofu" / "negtune_subset.yaml").exists():
        return cfg
    for sub in ("model", "eval", "experiment/eval/tofu"):
        (cfg / sub).mkdir(parents=True, exist_ok=True)
    (cfg / "model" / "negtune_local.yaml").write_text(yaml.safe_dump({
        "model_args": {"pretrained_model_name_or_path": "???", "attn_implementation": "sdpa",
                       "torch_dtype": "float32"},
        "tokenizer_args": {"pretrained_model_name_or_path": "???"},
        "template_args": {"apply_chat_template": True}}))
    (cfg / "eval" / "tofu_subset.yaml").write_text("# @package eval.tofu\n" + yaml.safe_dump({
        "defaults": [{"tofu_metrics": list(OU_METRICS)}], "handler": "TOFUEvaluator",
        "output_dir": "${paths.output_dir}", "metrics": {}, "overwrite": True, "forget_split": "forget01",
        "holdout_split": "holdout01", "retain_logs_path": None, "question_key": "question", "batch_size": 8},
        sort_keys=False))
    overrides = {"defaults": [{"override /model": "negtune_local"}, {"override /eval": "tofu_subset"}]}
    stub = cfg / "experiment" / "eval" / "tofu" / "negtune_stub.yaml"
    stub.write_text("# @package _global_\n" + yaml.safe_dump(overrides, sort_keys=False))
    out = subprocess.run([python, "src/eval.py", "--config-dir", str(cfg), "experiment=eval/tofu/negtune_stub",
                          "task_name=compose", "--cfg", "job"], cwd=ou, capture_output=True, text=True,
                         env={**os.environ, **OU_ENV})
    if out.returncode:
        raise SystemExit(f"open-unlearning's eval config did not compose:\n{out.stderr[-2000:]}")
    composed = yaml.safe_load("\n".join(line for line in out.stdout.splitlines() if not line.startswith("[20")))
    files = {"forget": "forget01_perturbed", "retain": "retain_perturbed", "ra": "real_authors_perturbed",
             "wf": "world_facts_perturbed"}

    def local(node):
        for key, value in node.items():
            if not isinstance(value, dict):
                continue
            if key == "datasets":
                for name, spec in value.items():  # e.g. TOFU_QA_forget_para, TOFU_QA_ra_pert
                    part = next((p for p in files if f"_{p}" in name.lower()), None)
                    if part is None:
                        raise SystemExit(f"open-unlearning's eval reads a data set {name!r} this script does not "
                                         f"know; known: {', '.join(files)}")
                    spec["args"]["hf_args"] = {"path": "json", "name": None, "split": "train",
                                               "data_files": str(root / f"{files[part]}.json")}
            elif key.endswith("ROUGE") and "generation_args" in value:
                value["generation_args"]["max_new_tokens"] = max_new_tokens
            local(value)

    metrics = composed["eval"]["tofu"]["metrics"]
    local(metrics)
    experiment = {**overrides, "model": {"model_args": {"device_map": "cpu"}},
                  "eval": {"tofu": {"metrics": metrics, "overwrite": True}}}
    (cfg / "experiment" / "eval" / "tofu" / "negtune_subset.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(experiment, sort_keys=False))
    return cfg


def ou_unlearn(method: str, model: Path, root: Path, out: Path, a, seed: int, cfg: Path) -> dict:
    """open-unlearning's ``src/train.py`` (experiment unlearn/tofu/default) with the same settings as negtune's run."""
    m = METHOD_ARGS[method]
    method_args = [f"trainer.method_args.{k}={v}" for k, v in m.items()]
    data = []
    for side, split in (("forget", "forget01"), ("retain", "retain99")):
        key = f"data.{side}.TOFU_QA_{side}.args.hf_args"
        data += [f"{key}.path=json", f"~{key}.name", f"+{key}.data_files={root / f'{split}.json'}"]
    cmd = [a.ou_python, "src/train.py", "--config-name=unlearn.yaml", "--config-dir", str(cfg),
           "experiment=unlearn/tofu/default", f"trainer={OU_HANDLER[method]}", f"task_name={out.name}",
           "model=negtune_local", f"model.model_args.pretrained_model_name_or_path={model}",
           f"model.tokenizer_args.pretrained_model_name_or_path={model}", *data, f"paths.output_dir={out}",
           "trainer.args.bf16=false", "trainer.args.bf16_full_eval=false", "trainer.args.optim=adamw_torch",
           "trainer.args.report_to=none", "trainer.args.do_eval=false", "trainer.args.eval_strategy=no",
           "trainer.args.eval_on_start=false",
           # its warmup_epochs divides by the CUDA device count (0 on a CPU): the same warm-up given in steps
           "trainer.args.warmup_epochs=0", f"+trainer.args.warmup_steps={a.warmup_steps}",
           f"trainer.args.learning_rate={a.lr}", f"trainer.args.num_train_epochs={a.epochs}",
           f"trainer.args.per_device_train_batch_size={a.batch}",
           f"trainer.args.gradient_accumulation_steps={a.accumulation}", f"trainer.args.seed={seed}", *method_args]
    return timed(cmd, a.open_unlearning, out, f"open-unlearning {method}, seed {seed}", a.threads)


def ou_eval(model: Path, out: Path, retain_log: str | None, a, cfg: Path) -> dict:
    """open-unlearning's ``src/eval.py`` with the five metrics on the subset; negtune's metric names."""
    summary = out / "TOFU_SUMMARY.json"
    if not summary.exists():
        cmd = [a.ou_python, "src/eval.py", "--config-dir", str(cfg), "experiment=eval/tofu/negtune_subset",
               f"task_name={out.name}", f"model.model_args.pretrained_model_name_or_path={model}",
               f"model.tokenizer_args.pretrained_model_name_or_path={model}", f"paths.output_dir={out}",
               f"eval.tofu.retain_logs_path={retain_log or 'null'}"]
        proc = subprocess.run(cmd, cwd=a.open_unlearning, env={**os.environ, **OU_ENV}, capture_output=True,
                              text=True)
        if proc.returncode or not summary.exists():
            raise SystemExit(f"open-unlearning's eval of {model} failed:\n{proc.stderr[-3000:]}")
    values = json.loads(summary.read_text())
    # its own log's first and last time stamps: model loaded to metrics written, as negtune's eval times itself
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", (out / "eval.log").read_text(), re.M)
    span = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in (stamps[0], stamps[-1])] if stamps else None
    return {**{ours: values.get(theirs) for theirs, ours in OU_KEYS.items()},
            "eval_s": round((span[1] - span[0]).total_seconds(), 1) if span else None}


def timed(cmd: list[str], cwd: str | None, out: Path, what: str, threads: int) -> dict:
    """Run one training process on the CPU with ``threads`` OpenMP threads (the same for both frameworks); its
    wall time (start to exit: imports, loading, data, negtune's reference pass, training, saving: what a user waits
    for) and the Trainer's own ``train_runtime`` (the training loop alone, from trainer_state.json). A finished
    run is reused only if it was run with the same command."""
    done = out / "train_time.json"
    if done.exists():
        times = json.loads(done.read_text())
        if times.get("cmd") != cmd[1:]:
            raise SystemExit(f"{out} was trained with other settings ({times.get('cmd')}); remove it or use "
                             "another --work")
        return times
    t0 = time.monotonic()
    env = {**os.environ, **OU_ENV, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = round(time.monotonic() - t0, 1)
    out.parent.joinpath(f"{out.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    loop = next(h["train_runtime"] for h in reversed(history) if "train_runtime" in h)
    times = {"wall_s": wall, "loop_s": round(loop, 1)}
    done.write_text(json.dumps({**times, "cmd": cmd[1:]}))
    return times
