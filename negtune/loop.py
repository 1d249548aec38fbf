"""The iterative offline loop: rollout -> offline NFT/RFT -> rollout with the new model -> ... for K iterations.

Every iteration keeps its labeled rollout, its trained model (and LoRA adapter), and its stats under
``OUT/iter-XX``; an iteration is finished once ``iter-XX/DONE.json`` exists, so a rerun of the same command
resumes where it stopped (the rollout stage inside an iteration resumes shard by shard as well). The loop's
settings are kept in ``OUT/settings.json``: a rerun with other ones is refused (``--iterations`` may grow).
Rollouts sample with the engine flags of ``negtune rollout`` (``--engine auto``: vLLM where a GPU is visible and
vLLM is installed, else transformers ``generate``); each iteration's engine is closed before it trains.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from negtune import methods
from negtune.data.io import DataError, atomic_write_text, out_lock
from negtune.rollout.engines.options import EngineOptions
from negtune.rollout.stage import RolloutConfig, check_run_values, check_settings, rollout_and_verify

# flags that may change between reruns of one loop: more iterations continue it; where it trains, and the
# engine's resources (memory, servers, batching), are no setting; which engine samples is one, as in a rollout
_MAY_CHANGE = ("out", "iterations", "use_cpu", *(f.name for f in fields(EngineOptions) if f.name != "engine"))


@dataclass(kw_only=True)
class LoopConfig(EngineOptions):
    """``negtune loop`` settings (its flags are these fields and the engine flags of ``negtune rollout``)."""

    model: str = field(metadata={"help": "the starting model (hub id or folder)"})
    dataset: str = field(metadata={"help": "prompts with gold answers: file, benchmark name or hub id"})
    out: str = field(metadata={"help": "output folder (one iter-NN folder per iteration); reruns resume"})
    iterations: int = field(default=3, metadata={"help": "rollout -> train iterations"})
    method: str = field(default="nft", metadata={"help": "nft or rft: the offline_rlvr methods of the registry "
                                                         "(nft_offline, rft_offline)",
                                                 "choices": [m.removesuffix("_offline")
                                                             for m in methods.names("offline_rlvr")]})
    n: int = field(default=8, metadata={"help": "samples per prompt"})
    verifier: str = field(default="math", metadata={"help": "the verifier of the rollouts"})
    max_new_tokens: int = field(default=512, metadata={"help": "tokens per completion at most"})
    temperature: float = field(default=1.0, metadata={"help": "rollout temperature"})
    limit: int | None = field(default=None, metadata={"help": "first N prompts only"})
    seed: int = field(default=0, metadata={"help": "seed of sampling and training"})
    max_steps: int = field(default=50, metadata={"help": "training steps per iteration"})
    learning_rate: float = field(default=1e-5, metadata={"help": "training learning rate"})
    train_batch_size: int = field(default=8, metadata={
        "help": "per-device training batch size (--batch-size is the hf engine's prompts per generate call)"})
    lora: bool = field(default=False, metadata={"help": "train a LoRA adapter per iteration (merged after)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (with --lora)"})
    use_cpu: bool = field(default=False, metadata={"help": "train on the CPU even when a GPU is visible"})

    def __post_init__(self) -> None:
        check_run_values(self)
        if self.engine == "openai":  # a server keeps serving the model it started with
            raise ValueError("--engine openai samples from a server's fixed model, and each loop iteration samples "
                             "from the model the previous one trained: use hf, vllm or auto")


def _train_iteration(cfg: LoopConfig, model_path: str, rows, out: Path) -> str:
    from peft import LoraConfig
    from transformers import AutoTokenizer

    spec = methods.get(f"{cfg.method}_offline")
    tok = AutoTokenizer.from_pretrained(model_path)
    args = spec.make_config(output_dir=str(out / "train"), max_steps=cfg.max_steps,
                            learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.train_batch_size,
                            seed=cfg.seed, use_cpu=cfg.use_cpu, save_strategy="no", logging_steps=10,
                            disable_tqdm=True)
    peft = LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear",
                      task_type="CAUSAL_LM") if cfg.lora else None
    trainer = spec.trainer_class(model_path, args, train_dataset=rows, processing_class=tok, peft_config=peft)
    trainer.train()
    model_dir = out / "model"
    if cfg.lora:  # keep the adapter, and merge it so the next rollout starts from the updated weights
        trainer.save_model(str(out / "adapter"))
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(model_dir)
    else:
        trainer.save_model(str(model_dir))
    tok.save_pretrained(model_dir)
    return str(model_dir)


def run_loop(cfg: LoopConfig, progress: bool = True) -> list[dict]:
    """Run or resume the loop; returns one stats dict per iteration (pass@1 of its rollout, etc.)."""
    if f"{cfg.method}_offline" not in methods.names("offline_rlvr"):
        raise ValueError(f"--method {cfg.method!r}: expected nft or rft")
    with out_lock(cfg.out) as out:
        # a rerun resumes from the finished iterations: with other settings it would report them as its own
        settings = {k: v for k, v in asdict(cfg).items() if k not in _MAY_CHANGE}
        if not check_settings(out, settings, "a loop"):
            atomic_write_text(out / "settings.json", json.dumps(settings, indent=2))
        current, history = cfg.model, []
        for i in range(cfg.iterations):
            it = out / f"iter-{i:02d}"
            done = it / "DONE.json"
            if done.exists():
                record = json.loads(done.read_text())
                current = record["model"]
                history.append(record)
                continue
            engine = {f.name: getattr(cfg, f.name) for f in fields(EngineOptions)}
            ro = RolloutConfig(model=current, dataset=cfg.dataset, out=str(it / "rollout"), n=cfg.n,
                               verifier=cfg.verifier, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                               limit=cfg.limit, seed=cfg.seed + i, **engine)
            ds, stats = rollout_and_verify(ro, progress=progress)
            try:
                model_dir, skipped = _train_iteration(cfg, current, ds, it), None
            except DataError as e:  # e.g. every group all wrong: nothing to learn this round, keep the model
                model_dir, skipped = current, str(e)
            record = {"iteration": i, "model": model_dir, "trained_from": current, "training_skipped": skipped,
                      "rollout_pass@1": stats["pass@1"], f"rollout_pass@{cfg.n}": stats[f"pass@{cfg.n}"],
                      "groups_mixed": stats["groups_mixed"], "samples": stats["samples"]}
            atomic_write_text(done, json.dumps(record, indent=2))
            history.append(record)
            current = model_dir
    return history
