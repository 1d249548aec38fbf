"""``negtune train METHOD --config recipe.yaml [--field value ...]`` (also ``accelerate launch -m negtune.train``).

Arguments are TRL-style dataclasses parsed by ``TrlParser``: the data arguments below, the method's config
(a ``transformers.TrainingArguments`` subclass) and TRL's ``ModelConfig`` (model path, LoRA settings).
A YAML ``--config`` gives defaults; command-line flags override them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from negtune.data.io import DataError, read_rows
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


def _split_method(argv: list[str]) -> tuple[str, list[str]]:
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    if "--config" in argv:
        cfg = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {}
        if "method" in cfg:
            return cfg["method"], argv
    raise DataError(f"which method? `negtune train METHOD ...` with METHOD one of {', '.join(METHODS)}")


def _qa_source(name: str, tofu_root: str | None) -> list[dict]:
    from negtune.data.tofu import load_tofu_split

    if Path(name).suffix in (".json", ".jsonl", ".csv", ".parquet") and Path(name).exists():
        return read_rows(name)
    return load_tofu_split(name, tofu_root)


def build_trainer(method: str, data_args: DataArguments, train_args, model_args):
    from trl import get_peft_config

    from negtune.models.loading import load_model, load_tokenizer

    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if not model_args.model_name_or_path:
        raise DataError("--model_name_or_path is required (a hub id or a local model folder)")
    trust = bool(getattr(train_args, "trust_remote_code", False) or getattr(data_args, "trust_remote_code", False))
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
        return trainer_cls(model, train_args, forget_dataset=_qa_source(data_args.forget, data_args.tofu_root),
                           retain_dataset=_qa_source(retain, data_args.tofu_root) if retain else None,
                           processing_class=tok, peft_config=peft_config)
    if not data_args.dataset:
        raise DataError(f"method {method!r} needs --dataset (a labeled dataset from `negtune rollout`)")
    source = data_args.dataset
    rows = source if Path(source).is_dir() else read_rows(source)
    return trainer_cls(model, train_args, train_dataset=rows, processing_class=tok, peft_config=peft_config)


def main(argv: list[str] | None = None) -> int:
    from trl import ModelConfig, TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    method, rest = _split_method(argv)
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    config_cls, _ = METHODS[method]
    types = [DataArguments, config_cls, ModelConfig]
    own = {f.name for f in fields(config_cls)}
    extras = [t for t, name in ((MethodArguments, "method"), (LoadArguments, "trust_remote_code")) if name not in own]
    parser = TrlParser((*types, *extras), prog=f"negtune train {method}")
    data_args, train_args, model_args, *extra_args = parser.parse_args_and_config(rest)
    for extra in extra_args:  # fold the switches into data_args, where build_trainer reads them
        for f in fields(extra):
            setattr(data_args, f.name, getattr(extra, f.name))
    if method in ONLINE_METHODS:
        from negtune.trainers.rlvr import METHOD_DEFAULTS

        explicit = {a.split("=")[0].lstrip("-").replace("-", "_") for a in rest if a.startswith("--")}
        for name, value in METHOD_DEFAULTS[method].items():  # the method's defaults unless given explicitly
            if name not in explicit:
                setattr(train_args, name, value)
    trainer = build_trainer(method, data_args, train_args, model_args)
    trainer.train(resume_from_checkpoint=train_args.resume_from_checkpoint)
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
