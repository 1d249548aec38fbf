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

from negtune.data.io import DataError
from negtune.trainers import (
    ONLINE_METHODS,
    UNLEARN_METHODS,
    ContrastiveRationaleConfig,
    ContrastiveRationaleTrainer,
    OfflineNFTConfig,
    OfflineNFTTrainer,
    UnlearnConfig,
    UnlearnTrainer,
    UnlikelihoodConfig,
    UnlikelihoodTrainer,
)
from negtune.trainers.rlvr import CONFIG_CLASSES

METHODS = {**{m: (UnlearnConfig, UnlearnTrainer) for m in UNLEARN_METHODS},
           "unlikelihood": (UnlikelihoodConfig, UnlikelihoodTrainer),
           "contrastive": (ContrastiveRationaleConfig, ContrastiveRationaleTrainer),
           "nft_offline": (OfflineNFTConfig, OfflineNFTTrainer),
           "rft_offline": (OfflineNFTConfig, OfflineNFTTrainer),
           **{m: (CONFIG_CLASSES[m], None) for m in ONLINE_METHODS}}


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
    verifier: str = field(default="math", metadata={"help": "online RL: the reward (a negtune verifier name)"})
    template: str = field(default="qwen-math-cot", metadata={"help": "online RL: the prompt template"})
    limit: int | None = field(default=None, metadata={"help": "online RL: first N prompts of --dataset"})


@dataclass
class RunArguments:
    """How the run starts."""

    resume: bool = field(default=False, metadata={
        "help": "continue from the last checkpoint-N in --output_dir (model, optimizer, scheduler, RNG, data "
                "position and the trainer's own state): the result equals an uninterrupted run"})


def resume_checkpoint(output_dir: str) -> str:
    """The last ``checkpoint-N`` folder in ``output_dir``, or a DataError naming the folder."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir)
    found = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if found is None:
        what = "does not exist" if not folder.is_dir() else "has no checkpoint-N folder"
        raise DataError(f"--resume: {folder} {what}; nothing to resume (checkpoints are written with "
                        "--save_strategy steps --save_steps N; drop --resume to start afresh)")
    return found


def _split_method(argv: list[str]) -> tuple[str, list[str]]:
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    if "--config" in argv:
        cfg = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {}
        if "method" in cfg:
            return cfg["method"], argv
    raise DataError(f"which method? `negtune train METHOD ...` with METHOD one of {', '.join(METHODS)}")


def _qa_source(name: str, tofu_root: str | None, flag: str) -> str | list[dict]:
    """``--forget`` / ``--retain``: a question/answer file (returned as a path: the trainer reads it and names it in
    its errors) or a TOFU split name (loaded here; errors name the flag)."""
    from negtune.data.tofu import load_tofu_split

    if Path(name).suffix in (".json", ".jsonl", ".csv", ".parquet"):
        if not Path(name).exists():
            raise DataError(f"--{flag} {name}: no such file")
        return name
    try:
        return load_tofu_split(name, tofu_root)
    except DataError as e:
        raise DataError(f"--{flag} {name}: {e}") from None


def build_trainer(method: str, data_args: DataArguments, train_args, model_args):
    from trl import get_peft_config

    from negtune.models.loading import load_model, load_tokenizer

    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if not model_args.model_name_or_path:
        raise DataError("--model_name_or_path is required (a hub id or a local model folder)")
    trust = bool(getattr(train_args, "trust_remote_code", False) or getattr(data_args, "trust_remote_code", False))
    from transformers import set_seed

    set_seed(train_args.seed)  # LoRA's initial weights (drawn before the Trainer seeds) follow --seed too
    tok = load_tokenizer(model_args.model_name_or_path, trust_remote_code=trust)
    model = load_model(model_args.model_name_or_path, dtype=model_args.dtype or "float32", trust_remote_code=trust)
    peft_config = get_peft_config(model_args)
    _, trainer_cls = METHODS[method]
    if method in ONLINE_METHODS:
        from negtune.trainers import build_online_trainer, prompt_dataset

        if not data_args.dataset:
            raise DataError(f"method {method!r} needs --dataset (prompts with gold answers: a file, a benchmark "
                            "name such as gsm8k, or a hub id)")
        prompts = prompt_dataset(data_args.dataset, data_args.template, data_args.limit)
        return build_online_trainer(method, model, prompts, tok, args=train_args, verifier=data_args.verifier,
                                    peft_config=peft_config)
    if method in ("nft_offline", "rft_offline"):
        train_args.method = method.split("_")[0]
        if train_args.method == "rft":
            train_args.neg_weight = 0.0
    if method in UNLEARN_METHODS:
        from negtune.data.tofu import RETAIN_FOR_FORGET

        train_args.method = method
        if not data_args.forget:
            raise DataError(f"method {method!r} needs --forget (a TOFU forget split or a question/answer file)")
        retain = data_args.retain or RETAIN_FOR_FORGET.get(data_args.forget)
        return trainer_cls(model, train_args,
                           forget_dataset=_qa_source(data_args.forget, data_args.tofu_root, "forget"),
                           retain_dataset=_qa_source(retain, data_args.tofu_root, "retain") if retain else None,
                           processing_class=tok, peft_config=peft_config)
    if not data_args.dataset:
        raise DataError(f"method {method!r} needs --dataset (a labeled dataset from `negtune rollout`)")
    # a path: the trainer reads it (a rollout folder or a table file) and names it in its errors
    return trainer_cls(model, train_args, train_dataset=data_args.dataset, processing_class=tok,
                       peft_config=peft_config)


def parse_train_args(method: str, argv: list[str]):
    """``(data_args, train_args, model_args)`` for ``negtune train METHOD`` (``argv`` without the method word).

    ``TrlParser`` over :class:`DataArguments`, the method's config and TRL's ``ModelConfig``: a YAML
    ``--config`` gives defaults (an unknown key is an error), command-line flags override them. For the online
    methods, the method's own defaults (``METHOD_DEFAULTS``, e.g. ``dr_grpo``'s ``loss_type``) apply to every
    field that neither the config file nor the command line sets.
    """
    from trl import ModelConfig, TrlParser

    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    config_cls, _ = METHODS[method]
    types = [DataArguments, config_cls, ModelConfig]
    own = {f.name for f in fields(config_cls)}
    extras = [t for t, name in ((MethodArguments, "method"), (LoadArguments, "trust_remote_code")) if name not in own]
    extras.append(RunArguments)
    parser = TrlParser((*types, *extras), prog=f"negtune train {method}")
    try:
        data_args, train_args, model_args, *extra_args = parser.parse_args_and_config(list(argv))
    except ValueError as e:  # a config's __post_init__ check: say which flags are at fault
        from negtune.trainers.rlvr import explain_config_error

        raise explain_config_error(e) from None
    for extra in extra_args:  # fold the switches into data_args, where build_trainer reads them
        for f in fields(extra):
            setattr(data_args, f.name, getattr(extra, f.name))
    if method in ONLINE_METHODS:
        from negtune.trainers.rlvr import METHOD_DEFAULTS

        explicit = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
        if "--config" in argv:
            explicit |= set(yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {})
        for name, value in METHOD_DEFAULTS[method].items():  # the method's defaults unless given explicitly
            if name not in explicit:
                setattr(train_args, name, value)
    return data_args, train_args, model_args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    method, rest = _split_method(argv)
    data_args, train_args, model_args = parse_train_args(method, rest)
    resume = train_args.resume_from_checkpoint
    if data_args.resume:
        if resume:
            raise DataError(f"--resume and --resume_from_checkpoint {resume}: give one of them (--resume takes the "
                            "last checkpoint-N in --output_dir)")
        resume = resume_checkpoint(train_args.output_dir)
    trainer = build_trainer(method, data_args, train_args, model_args)
    if resume and trainer.is_world_process_zero():
        print(f"resuming from {resume}", flush=True)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(train_args.output_dir)
    if method in ONLINE_METHODS and trainer.args.should_save:  # TRL's trainers write no card of ours
        from negtune.trainers.base import write_model_card

        write_model_card(trainer, train_args.output_dir, method,
                         f"prompts from {data_args.dataset}, rewards from the {data_args.verifier!r} verifier")
    if trainer.is_world_process_zero():
        print(f"saved {'adapter' if peft_enabled(trainer) else 'model'} and model card to {train_args.output_dir}")
    return 0


def peft_enabled(trainer) -> bool:
    return hasattr(trainer.model, "peft_config")


if __name__ == "__main__":
    sys.exit(main())
