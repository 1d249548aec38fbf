"""``negtune train METHOD --config recipe.yaml [--field value ...]`` (also ``accelerate launch -m negtune.train``).

Arguments are TRL-style dataclasses parsed by ``TrlParser``: the data arguments below, the method's config
(a ``transformers.TrainingArguments`` subclass) and TRL's ``ModelConfig`` (model path, LoRA settings).
A YAML ``--config`` gives defaults; command-line flags override them. ``--resume`` continues from the last
``checkpoint-N`` in ``--output_dir`` and gives the same result as an uninterrupted run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from negtune import methods
from negtune.data.io import DataError
from negtune.utils import threads
from negtune.utils.checkpoints import checkpoint_folders, is_complete

METHODS = methods.METHODS


@dataclass
class MethodArguments:
    """Lets a recipe name its method when the method's config has no ``method`` field."""

    method: str | None = field(default=None, metadata={"help": "the method (also the first CLI word)"})


@dataclass
class LoadArguments:
    """Model-loading safety switch, for configs that do not carry their own (GRPOConfig does)."""

    trust_remote_code: bool = field(default=False, metadata={"help": "run the model repository's own code"})


@dataclass
class DataArguments:
    """Where the training data comes from."""

    dataset: str | None = field(default=None, metadata={
        "help": "labeled dataset (a `negtune rollout` folder or a parquet/jsonl file) for unlikelihood/contrastive"})
    forget: str | None = field(default=None, metadata={
        "help": "unlearning: a TOFU forget split (forget01/05/10) or a question/answer file"})
    retain: str | None = field(default=None, metadata={
        "help": "unlearning: a TOFU retain split or file; default the complement of a TOFU forget split"})
    tofu_root: str | None = field(default=None, metadata={
        "help": "folder of TOFU-format json files (default: the shared TOFU folder, else the hub)"})
    lm_dataset: str | None = field(default=None, metadata={
        "help": "click: text for its language-modelling term (prompt/completion or question/answer rows: gold "
                "answers, as the authors train); default the labeled dataset's positives"})
    verifier: str = field(default="math", metadata={"help": "online RL: the reward (a negtune verifier name)"})
    template: str = field(default="qwen-math-cot", metadata={"help": "online RL: the prompt template"})
    limit: int | None = field(default=None, metadata={"help": "online RL: first N prompts of --dataset"})


# Which families read each data field: giving one to a method of another family is an error, not silence.
DATA_FIELD_FAMILIES = {
    "dataset": ("labeled", "offline_rlvr", "step_rlvr", "online_rlvr"),
    "lm_dataset": ("labeled",),
    "forget": ("unlearn",), "retain": ("unlearn",), "tofu_root": ("unlearn",),
    "verifier": ("online_rlvr",), "template": ("online_rlvr",), "limit": ("online_rlvr",),
}


@dataclass
class RunArguments:
    """How the run starts."""

    resume: bool = field(default=False, metadata={
        "help": "continue from the last checkpoint-N in --output_dir (model, optimizer, scheduler, RNG, data "
                "position and the trainer's own state): the result equals an uninterrupted run"})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads of each process (default: its share of the free cores, measured again during "
                f"training; also {threads.ENV} or OMP_NUM_THREADS)"})


def resume_checkpoint(output_dir: str) -> str:
    """The newest complete ``checkpoint-N`` folder in ``output_dir`` (incomplete ones, left by a kill during a
    save, are skipped with a warning), or a DataError naming the folder."""
    folder = Path(output_dir)
    found = checkpoint_folders(folder)
    skipped = []
    for checkpoint in reversed(found):
        if is_complete(checkpoint):
            if skipped:
                print(f"--resume: skipped incomplete {', '.join(skipped)} (no valid trainer_state.json: "
                      "interrupted while saving)", file=sys.stderr, flush=True)
            return str(checkpoint)
        skipped.append(checkpoint.name)
    what = ("does not exist" if not folder.is_dir() else "has no checkpoint-N folder" if not found else
            f"has no complete checkpoint ({', '.join(skipped)} lack a valid trainer_state.json: interrupted "
            "while saving)")
    raise DataError(f"--resume: {folder} {what}; nothing to resume (checkpoints are written with "
                    "--save_strategy steps --save_steps N; drop --resume to start afresh)")


def _schedule_change(train_args, planned: int, asked: int) -> str | None:
    """What a run resumed with ``--max_steps asked`` instead of ``planned`` would change besides its length:
    None when nothing does (a constant learning rate, its warm-up in steps, no other schedule over max_steps)."""
    kind = str(getattr(train_args.lr_scheduler_type, "value", train_args.lr_scheduler_type))
    if kind not in ("constant", "constant_with_warmup"):
        return f"its {kind} learning-rate schedule is laid out over max_steps"
    if kind == "constant_with_warmup" and train_args.get_warmup_steps(planned) != train_args.get_warmup_steps(asked):
        return "its warm-up is a fraction of max_steps (give --warmup_steps in steps to extend a run)"
    return getattr(train_args, "max_steps_schedule", None)


def check_resume_plan(checkpoint: str, train_args) -> None:
    """Refuse to resume a checkpoint saved by a run of another length unless only its length changes. The trainer
    restores the run's step count: a ``--max_steps`` at or below the checkpoint's step would train nothing and
    save the checkpoint's weights as the result; another length past it is the same run when the learning rate
    is constant (``constant``, or ``constant_with_warmup`` with its warm-up in steps), and bends any schedule laid
    out over max_steps (linear, cosine: a longer run's rate jumps back up)."""
    import json

    path = Path(checkpoint) / "trainer_state.json"
    if not path.is_file():  # (--resume_from_checkpoint: not a checkpoint folder; the trainer says so)
        return
    state = json.loads(path.read_text())
    planned, asked = state.get("max_steps"), train_args.max_steps
    if asked > 0 and planned not in (None, asked):
        step = state.get("global_step") or 0
        change = (_schedule_change(train_args, planned, asked) if asked > step else
                  "it would train no step and save the checkpoint's weights as the result")
        if change is None:
            print(f"--resume: the run of {checkpoint} (step {step}) goes on to --max_steps {asked} instead of "
                  f"{planned}; its learning rate is constant, so this is the same run with another length",
                  file=sys.stderr, flush=True)
            return
        raise DataError(f"--resume: {checkpoint} (step {state.get('global_step')}) was saved by a run of "
                        f"--max_steps {planned}, and this run asks for --max_steps {asked}: {change}. Rerun with "
                        f"--max_steps {planned} to finish it, or start afresh in a new --output_dir (to train "
                        "longer: a new run from its saved model; a run with a constant learning rate, "
                        "--lr_scheduler_type constant, can be resumed with a larger --max_steps)")
    epochs = state.get("num_train_epochs")
    if asked <= 0 and epochs is not None and epochs != train_args.num_train_epochs:
        raise DataError(f"--resume: {checkpoint} was saved by a run of --num_train_epochs {epochs}, and this run "
                        f"asks for {train_args.num_train_epochs:g}; rerun with --num_train_epochs {epochs} to "
                        "finish it, or start afresh in a new --output_dir")


def warn_old_checkpoints(output_dir: str) -> None:
    """A fresh run into a folder that holds an earlier run's checkpoints: they stay beside the new ones, and a
    later --resume would take the highest-numbered checkpoint, whichever run wrote it."""
    folder = Path(output_dir)
    old = [p.name for p in checkpoint_folders(folder)]
    if old:
        print(f"warning: --output_dir {folder} already holds {', '.join(old)} from an earlier run; this run starts "
              "afresh (pass --resume to continue that run instead) and its checkpoints will sit beside them: "
              "use a new --output_dir to keep the two apart", file=sys.stderr, flush=True)


def check_output_dir(output_dir: str) -> None:
    """``--output_dir`` must be a folder we can write (checked before any loading: not after the last step)."""
    from negtune.data.io import prepare_out

    prepare_out(output_dir, "--output_dir", create=False)


def _read_config(argv: list[str]) -> dict:
    if "--config" not in argv:
        return {}
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise DataError("--config needs a file (a YAML recipe)")
    path = Path(argv[i + 1])
    if not path.is_file():
        raise DataError(f"--config {path}: no such file")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DataError(f"--config {path}: not valid YAML ({e})") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise DataError(f"--config {path}: expected a mapping of field: value, got {type(cfg).__name__}")
    return cfg


def _split_method(argv: list[str]) -> tuple[str, list[str]]:
    """The method: the first word, else the recipe's ``method:`` line (``accelerate launch -m negtune.train``)."""
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    method = _read_config(argv).get("method")
    if method is not None:
        return method, argv
    raise DataError(f"which method? `negtune train METHOD ...` with METHOD one of {', '.join(METHODS)}")


def _explicit_fields(argv: list[str], config: dict) -> set[str]:
    """Fields set by the command line or the recipe (not by a default)."""
    given = {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    return (given | set(config)) - {"config"}


def build_trainer(method: str, data_args: DataArguments, train_args, model_args):
    from trl import get_peft_config

    from negtune.models.loading import load_model, load_tokenizer

    spec = methods.get(method)
    if not model_args.model_name_or_path:
        raise DataError("--model_name_or_path is required (a hub id or a local model folder)")
    trust = bool(getattr(train_args, "trust_remote_code", False) or getattr(data_args, "trust_remote_code", False))
    from transformers import set_seed

    set_seed(train_args.seed)  # LoRA's initial weights (drawn before the Trainer seeds) follow --seed too
    tok = load_tokenizer(model_args.model_name_or_path, trust_remote_code=trust)
    model = load_model(model_args.model_name_or_path, dtype=model_args.dtype or "float32", trust_remote_code=trust)
    peft_config = get_peft_config(model_args)
    if spec.family == "online_rlvr":
        from negtune.trainers import build_online_trainer, prompt_dataset

        if not data_args.dataset:
            raise DataError(f"method {method!r} needs --dataset (prompts with gold answers: a file, a benchmark "
                            "name such as gsm8k, or a hub id)")
        prompts = prompt_dataset(data_args.dataset, data_args.template, data_args.limit)
        return build_online_trainer(method, model, prompts, tok, args=train_args, verifier=data_args.verifier,
                                    peft_config=peft_config)
    if spec.family == "unlearn":
        from negtune.data.rows import training_rows
        from negtune.data.tofu import RETAIN_FOR_FORGET

        if not data_args.forget:
            raise DataError(f"method {method!r} needs --forget (a TOFU forget split or a question/answer file)")
        # a TOFU forget split's retain complement is the default of the methods that train on a retain set
        retain = (data_args.retain or RETAIN_FOR_FORGET.get(data_args.forget)) if spec.retain else None
        read = lambda source, flag: training_rows(source, "qa", flag, tofu_root=data_args.tofu_root,  # noqa: E731
                                                  flag=flag)
        return spec.trainer_class(model, train_args, forget_dataset=read(data_args.forget, "forget"),
                                  retain_dataset=read(retain, "retain") if retain else None,
                                  processing_class=tok, peft_config=peft_config)
    if not data_args.dataset:
        raise DataError(f"method {method!r} needs --dataset (a labeled dataset from `negtune rollout`)")
    if data_args.lm_dataset and method != "click":
        raise DataError(f"--lm_dataset is click's (the text of its LM term); {method!r} does not read it")
    extra = {"lm_dataset": data_args.lm_dataset} if data_args.lm_dataset else {}
    if method == "negassist" and train_args.stage == "negative" and peft_config is None:
        from peft import (
            LoraConfig,  # the --lora_* flags shape the dual-LoRA layers, with or without --use_peft
        )

        peft_config = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
                                 lora_dropout=model_args.lora_dropout,
                                 target_modules=model_args.lora_target_modules or ["q_proj", "v_proj"])
    # a path: the trainer reads it (a rollout folder or a table file) and names it in its errors
    return spec.trainer_class(model, train_args, train_dataset=data_args.dataset, processing_class=tok,
                              peft_config=peft_config, **extra)


def parse_train_args(method: str, argv: list[str]):
    """``(data_args, train_args, model_args)`` for ``negtune train METHOD`` (``argv`` without the method word).

    ``TrlParser`` over :class:`DataArguments`, the method's config and TRL's ``ModelConfig``. The method's
    registry defaults (``negtune.methods``: SimNPO's beta, dr_grpo's loss_type, ...) are the parser's defaults
    before anything else is read, so every default is resolved for the right method; a YAML ``--config``
    overrides them (an unknown key is an error) and command-line flags override both. A recipe or flag that
    names another method, or a data flag this method does not read, is an error.
    """
    from trl import ModelConfig, TrlParser

    spec = methods.get(method)
    config_cls = spec.config_class
    config = _read_config(argv)
    own = {f.name for f in fields(config_cls)}
    extras = [t for t, name in ((MethodArguments, "method"), (LoadArguments, "trust_remote_code")) if name not in own]
    extras.append(RunArguments)
    parser = TrlParser((DataArguments, config_cls, ModelConfig, *extras), prog=f"negtune train {method}")
    parser.set_defaults_with_config(**spec.defaults)
    parser.allow_abbrev = False  # a mistyped flag is an error, not a prefix of another (--max_step)
    _check_method_names(method, spec, config.get("method"), "the recipe's `method:`")
    try:
        data_args, train_args, model_args, *extra_args = parser.parse_args_and_config(list(argv))
    except ValueError as e:  # a config's __post_init__ check: say which flags are at fault
        from negtune.trainers.rlvr import explain_config_error

        raise (_unknown_flags(e, parser, method) or explain_config_error(e)) from None
    for extra in extra_args:  # fold the switches into data_args, where build_trainer reads them
        for f in fields(extra):
            setattr(data_args, f.name, getattr(extra, f.name))
    for named in {getattr(train_args, "method", None), getattr(data_args, "method", None)}:
        _check_method_names(method, spec, named, "--method")
    unused = sorted(name for name in _explicit_fields(argv, config) & set(DATA_FIELD_FAMILIES)
                    if spec.family not in DATA_FIELD_FAMILIES[name])
    if unused:
        raise DataError(f"negtune train {method}: {', '.join('--' + n for n in unused)} "
                        f"{'does' if len(unused) == 1 else 'do'} nothing for this method (it reads "
                        f"{methods.FAMILIES[spec.family]}); remove {'it' if len(unused) == 1 else 'them'}")
    if spec.family == "unlearn" and not spec.retain and "retain" in _explicit_fields(argv, config):
        raise DataError(f"negtune train {method}: --retain does nothing for this method (it trains on the forget set "
                        f"alone; {', '.join(methods.retain_methods())} train on a retain set); remove it")
    return data_args, train_args, model_args


_NOT_USED = "Some specified arguments are not used by the HfArgumentParser: "


def _unknown_flags(error: ValueError, parser, method: str) -> DataError | None:
    """transformers' "Some specified arguments are not used by the HfArgumentParser: ['--betta', '0.1']" as
    negtune's error: the command, each unknown flag and the closest known one."""
    import difflib
    import re

    text = str(error)
    if not text.startswith(_NOT_USED):
        return None
    known = [o for action in parser._actions for o in action.option_strings]
    flags = re.findall(r"'(-[^'=]+)", text[len(_NOT_USED):])
    named = [f + (f" (did you mean {close[0]}?)" if (close := difflib.get_close_matches(f, known, n=1)) else "")
             for f in flags]
    what = f"unknown flag{'s' * (len(named) > 1)} {', '.join(named)}" if named else \
        f"unexpected arguments {text[len(_NOT_USED):]}"
    return DataError(f"negtune train {method}: {what}; `negtune train {method} --help` lists its flags")


def _check_method_names(method: str, spec, named: str | None, where: str) -> None:
    """A recipe or flag may repeat the method's name (or its config's own value of ``method``), never another."""
    if named is None or named in (method, spec.defaults.get("method")):
        return
    raise DataError(f"negtune train {method}: {where} says {named!r}; the method is the command word "
                    f"(negtune train {named} ...), so drop or fix that line")


def usage() -> str:
    """``negtune train`` / ``negtune train --help``: the methods, from the registry."""
    lines = ["usage: negtune train METHOD [--config recipe.yaml] [--field value ...]",
             "       negtune train METHOD --help   (every field of the method's config, with its default)", ""]
    for family, what in methods.FAMILIES.items():
        lines.append(f"{family}: {what}")
        for m in methods.METHODS.values():
            if m.family == family:
                lines.append(f"  {m.name:<13} {m.objective}{'  [baseline]' if m.baseline else ''}")
    lines.append("\nplug-ins (options of several methods):")
    for p in methods.PLUGINS.values():
        lines.append(f"  {p.flag:<18} {p.what} ({', '.join(p.methods)})")
    lines.append("\nrecipes: recipes/METHOD/tiny.yaml (CPU, seconds) and real-model recipes beside them")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    method, rest = _split_method(argv)
    data_args, train_args, model_args = parse_train_args(method, rest)
    threads.show_in_log()
    threads.configure(data_args.threads)
    resume = train_args.resume_from_checkpoint
    if data_args.resume:
        if resume:
            raise DataError(f"--resume and --resume_from_checkpoint {resume}: give one of them (--resume takes the "
                            "last checkpoint-N in --output_dir)")
        resume = resume_checkpoint(train_args.output_dir)
    check_output_dir(train_args.output_dir)
    if resume:
        check_resume_plan(resume, train_args)
    else:
        warn_old_checkpoints(train_args.output_dir)
    trainer = build_trainer(method, data_args, train_args, model_args)
    if not threads.current().requested:
        from negtune.trainers.base import AdaptiveThreads

        trainer.add_callback(AdaptiveThreads())
    if resume and trainer.is_world_process_zero():
        print(f"resuming from {resume}", flush=True)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(train_args.output_dir)
    trainer.save_state()  # trainer_state.json: the whole log (clip fractions, ratios, sampling rounds, ...)
    if methods.get(method).family == "online_rlvr" and trainer.args.should_save:  # TRL writes no card of ours
        from negtune.trainers.base import write_model_card

        write_model_card(trainer, train_args.output_dir, method,
                         f"prompts from {data_args.dataset}, rewards from the {data_args.verifier!r} verifier")
    if trainer.is_world_process_zero():
        print(f"saved {'adapter' if peft_enabled(trainer) else 'model'} and model card to {train_args.output_dir}")
    _finish(trainer)
    del trainer  # this frame can outlive the call: see _release_process_group
    _release_process_group()
    return 0


def _finish(trainer) -> None:
    """Every rank has saved, and a colocated vLLM engine is stopped (before its own process groups go)."""
    import torch.distributed as dist

    from negtune.trainers.vllm_sync import close_colocated_vllm

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # every rank has finished saving before any tears the group down
    close_colocated_vllm(trainer)


def _release_process_group() -> None:
    """Destroy the process group once nothing else holds it, so its threads end here and not at teardown.

    Why it needs care (issue 17, item 14): a library that keeps an exception caught at import time (vLLM keeps
    ``_torchcodec_import_exc`` when torchcodec is absent, as in CI) keeps that exception's traceback, whose
    frames reach back through the import to the negtune frames on the stack at the time, ``main`` among them;
    a frame object keeps its locals after it returns. ``main``'s ``trainer`` and, through it, DDP's
    reducer then held the gloo process group past ``destroy_process_group()``: its worker threads
    (``pt_gloo_runloop``, ``gloo_tcp_loop``) were still running at interpreter teardown, where a loaded
    machine sometimes saw a rank abort with ``terminate called without an active exception`` after the
    model was saved. The caller drops its ``trainer`` first; the collection frees the trainer's reference
    cycles (callbacks hold the trainer), so the DDP wrapper, and then the group, are freed now.
    ``tests/test_distributed.py`` checks that no gloo thread is left when ``main`` returns.
    """
    import gc

    import torch.distributed as dist

    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def peft_enabled(trainer) -> bool:
    return hasattr(trainer.model, "peft_config")


if __name__ == "__main__":
    sys.exit(main())
