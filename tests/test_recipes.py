"""Every recipe parses exactly as `negtune train` parses it (no unknown key), and the accelerate configs load
with accelerate's own config class. No training: fast."""

import re
from pathlib import Path

import pytest
import yaml

from negtune.train import METHODS, _split_method, parse_train_args

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
TRAIN_RECIPES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "accelerate")
ACCELERATE = {"ddp": ("MULTI_GPU", None, None), "zero2": ("DEEPSPEED", 2, None), "zero3": ("DEEPSPEED", 3, None),
              "fsdp2": ("FSDP", None, 2)}


@pytest.fixture(autouse=True)
def _bf16_anywhere(monkeypatch):
    # the real recipes ask for bf16, which TrainingArguments refuses on a machine without a bf16 GPU
    import transformers.training_args as training_args

    monkeypatch.setattr(training_args, "is_torch_bf16_gpu_available", lambda: True)


def _method(path: Path) -> str:
    cfg = yaml.safe_load(path.read_text()) or {}
    return cfg.get("method", path.parent.name)


def test_there_are_recipes():
    names = {str(p.relative_to(RECIPES)) for p in TRAIN_RECIPES}
    for real in ("nft/qwen2.5-math-1.5b.yaml", "nft/qwen2.5-math-1.5b-lora.yaml", "ngrpo/qwen2.5-math-1.5b.yaml",
                 "npo/tofu-llama-3.2-1b.yaml", "npo_rt/tofu-llama-3.2-1b.yaml", "simnpo/tofu-llama-3.2-1b.yaml",
                 "unlikelihood/gsm8k-qwen2.5-1.5b.yaml", "contrastive/gsm8k-qwen2.5-1.5b.yaml"):
        assert real in names
    assert {p.parent.name for p in TRAIN_RECIPES if p.name == "tiny.yaml"} == set(METHODS)


@pytest.mark.parametrize("path", TRAIN_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_parses(path):
    method = _method(path)
    assert method == path.parent.name, f"{path}: names method {method!r} but lives in recipes/{path.parent.name}/"
    if "method" in (yaml.safe_load(path.read_text()) or {}):  # `accelerate launch -m negtune.train --config F`
        assert _split_method(["--config", str(path)]) == (method, ["--config", str(path)])
    # TrlParser raises on a key that no dataclass has
    data_args, train_args, model_args = parse_train_args(method, ["--config", str(path)])
    assert model_args.model_name_or_path and train_args.output_dir
    cfg = yaml.safe_load(path.read_text())
    if cfg.get("use_peft"):
        assert model_args.use_peft and model_args.lora_target_modules
    if not path.name.startswith("tiny"):  # tiny.yaml and its variants (tiny-loreun.yaml) are CPU recipes
        assert train_args.bf16 and not train_args.use_cpu
        lines = path.read_text().splitlines()
        head = "\n".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])
        for word in ("Hardware:", "Wall time:", "Expected:", "Launch:", "Eval:"):
            assert word in head, f"{path}: the comment block lacks {word!r}"
        assert f"negtune train {method} --config recipes/{path.parent.name}/{path.name}" in head
        assert "negtune eval" in head
        for mentioned in re.findall(r"recipes/[\w./-]+\.yaml", head):
            assert (ROOT / mentioned).exists(), f"{path}: mentions {mentioned}, which does not exist"


def test_real_recipe_values():
    parse = lambda rel: parse_train_args(_method(RECIPES / rel), ["--config", str(RECIPES / rel)])  # noqa: E731
    _, ngrpo, _ = parse("ngrpo/qwen2.5-math-1.5b.yaml")
    assert (ngrpo.epsilon, ngrpo.epsilon_high, ngrpo.use_vllm, ngrpo.vllm_mode) == (0.16, 0.24, True, "colocate")
    _, nft, model = parse("nft/qwen2.5-math-1.5b.yaml")
    assert (nft.neg_weight, nft.learning_rate, nft.num_generations, model.use_peft) == (1.0, 1e-6, 8, False)
    _, _, lora = parse("nft/qwen2.5-math-1.5b-lora.yaml")
    assert lora.use_peft
    _, npo, _ = parse("npo/tofu-llama-3.2-1b.yaml")
    assert (npo.method, npo.beta, npo.learning_rate, npo.num_train_epochs) == ("npo", 0.1, 1e-5, 10)
    assert npo.per_device_train_batch_size * npo.gradient_accumulation_steps == 32
    data, simnpo, _ = parse("simnpo/tofu-llama-3.2-1b.yaml")
    assert (simnpo.beta, simnpo.forget_weight, simnpo.simnpo_delta, data.forget) == (4.5, 0.125, 0.0, "forget10")


def test_cli_overrides_recipe():
    path = RECIPES / "npo/tofu-llama-3.2-1b.yaml"
    _, args, _ = parse_train_args("npo", ["--config", str(path), "--beta", "0.05", "--max_steps", "3"])
    assert (args.beta, args.max_steps) == (0.05, 3)


def test_unknown_recipe_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: npo\nmodel_name_or_path: m\noutput_dir: o\nforget: forget10\nnot_a_field: 1\n")
    with pytest.raises(ValueError, match="not_a_field"):
        parse_train_args("npo", ["--config", str(bad)])


def test_method_defaults_yield_to_the_recipe(tmp_path):
    # grpo's method default (loss_type dapo) applies unless the recipe or the command line sets the field
    base = "method: grpo\nmodel_name_or_path: m\noutput_dir: o\nuse_cpu: true\nbf16: false\n"
    plain, given = tmp_path / "plain.yaml", tmp_path / "given.yaml"
    plain.write_text(base)
    given.write_text(base + "loss_type: grpo\n")
    assert parse_train_args("grpo", ["--config", str(plain)])[1].loss_type == "dapo"
    assert parse_train_args("grpo", ["--config", str(given)])[1].loss_type == "grpo"
    assert parse_train_args("grpo", ["--config", str(plain), "--loss_type", "bnpo"])[1].loss_type == "bnpo"


@pytest.mark.parametrize("name", sorted(ACCELERATE))
def test_accelerate_config(name):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    path = RECIPES / "accelerate" / f"{name}.yaml"
    cfg = load_config_from_file(str(path))  # raises on an unknown key
    assert isinstance(cfg, ClusterConfig)
    kind, zero_stage, fsdp_version = ACCELERATE[name]
    assert cfg.distributed_type.value == kind and cfg.mixed_precision == "bf16" and cfg.num_processes == 8
    assert cfg.deepspeed_config.get("zero_stage") == zero_stage
    assert cfg.fsdp_config.get("fsdp_version") == fsdp_version
    if name == "zero3":
        assert cfg.deepspeed_config["zero3_init_flag"] and cfg.deepspeed_config["zero3_save_16bit_model"]
        assert cfg.deepspeed_config["offload_param_device"] == cfg.deepspeed_config["offload_optimizer_device"] == "none"
    if name == "fsdp2":
        fsdp = cfg.fsdp_config
        assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fsdp["fsdp_reshard_after_forward"] is True
        assert fsdp["fsdp_state_dict_type"] in ("FULL_STATE_DICT", "SHARDED_STATE_DICT")
    first = path.read_text().splitlines()
    assert first[0].startswith("#")
    assert f"accelerate launch --config_file recipes/accelerate/{name}.yaml -m negtune.train" in path.read_text()
