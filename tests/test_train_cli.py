"""`negtune train` with the tiny recipes (YAML + CLI overrides through TrlParser)."""

from pathlib import Path

import pytest

from negtune import methods
from negtune.cli import main
from negtune.data.io import DataError
from negtune.data.tasks.facts import write_tofu_synthetic

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _recipe_without_method(method: str, tmp_path: Path) -> str:
    """The tiny recipe minus its `method:` line: the command word alone must set the method and its defaults."""
    lines = (RECIPES / method / "tiny.yaml").read_text().splitlines()
    path = tmp_path / f"{method}.yaml"
    path.write_text("\n".join(line for line in lines if not line.startswith("method:")) + "\n")
    return str(path)


@pytest.mark.parametrize("method", methods.names("unlearn"))
def test_unlearn_recipes_run(method, tiny_facts_model_dir, tmp_path):
    tofu = write_tofu_synthetic(tmp_path / "tofu")
    out = tmp_path / "out"
    argv = ["train", method, "--config", _recipe_without_method(method, tmp_path), "--model_name_or_path",
            str(tiny_facts_model_dir), "--tofu_root", str(tofu), "--output_dir", str(out), "--max_steps", "2",
            "--disable_tqdm", "true"]
    if method == "npo":
        argv += ["--beta", "0.05"]
    assert main(argv) == 0
    card = (out / "README.md").read_text()
    # the TOFU retain complement is the default of the methods that train on a retain set, and only theirs
    data = "20 forget examples, 180 retain examples" if methods.get(method).retain else "20 forget examples\n"
    assert f"`{method}`" in card and data in card
    if method == "npo":
        assert (out / "adapter_model.safetensors").exists() and '"beta": 0.05' in card
    else:
        assert (out / "model.safetensors").exists()
    if method == "simnpo":  # SimNPO's own beta, not NPO's 0.1, with no `method:` line in the recipe
        assert '"beta": 2.5' in card


@pytest.mark.parametrize("method", methods.names("labeled"))
def test_labeled_recipes_run(method, tiny_model_dir, labeled_rollout, tmp_path):
    data = tmp_path / "labeled.parquet"
    labeled_rollout.to_parquet(str(data))
    out = tmp_path / "out"
    extra = {"contrastive": ["--adversarial_max_new_tokens", "8"],  # the recipe's reference is made by its step 1
             "token_forget": ["--reference_model", str(tiny_model_dir)]}.get(method, [])
    assert main(["train", method, "--config", _recipe_without_method(method, tmp_path), "--model_name_or_path",
                 str(tiny_model_dir), "--dataset", str(data), "--output_dir", str(out), "--max_steps", "2",
                 "--disable_tqdm", "true", *extra]) == 0
    if method == "negassist":  # stage 1 of 3: the negative assistant's own format
        assert (out / "negassist.safetensors").exists()
        return
    assert (out / ("positive" if method == "likra" else "") / "adapter_model.safetensors").exists()


def test_train_cli_errors(tiny_facts_model_dir, tmp_path, capsys):
    assert main(["train", "npo3", "--output_dir", str(tmp_path)]) == 2
    assert "unknown method 'npo3'" in capsys.readouterr().err
    assert main(["train", "npo", "--model_name_or_path", str(tiny_facts_model_dir),
                 "--output_dir", str(tmp_path), "--use_cpu", "true"]) == 2
    assert "needs --forget" in capsys.readouterr().err
    with pytest.raises(DataError, match="which method"):
        from negtune.train import _split_method

        _split_method(["--output_dir", "x"])


@pytest.mark.parametrize("method", methods.names("online_rlvr"))
def test_online_recipes_run(method, tiny_model_dir, tmp_path):
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith

    write_jsonl(tmp_path / "arith.jsonl", make_arith(16, seed=3, difficulty=1))  # one off-policy rollout: 16
    out = tmp_path / "out"
    assert main(["train", method, "--config", _recipe_without_method(method, tmp_path), "--model_name_or_path",
                 str(tiny_model_dir), "--dataset", str(tmp_path / "arith.jsonl"), "--output_dir", str(out),
                 "--max_steps", "1", "--max_completion_length", "32", "--disable_tqdm", "true"]) == 0
    card = (out / "README.md").read_text()
    assert f"`{method}`" in card and (out / "model.safetensors").exists()
    if method == "ngrpo":
        assert '"epsilon": 0.16' in card and '"epsilon_high": 0.24' in card
    if method == "rft":
        assert '"neg_weight": 0.0' in card
    if method in ("grpo", "dr_grpo"):  # grpo aggregates as NFT and NGRPO do (dapo)
        loss_type = "dapo" if method == "grpo" else "dr_grpo"
        assert f'"loss_type": "{loss_type}"' in card


@pytest.mark.parametrize("method", methods.names("offline_rlvr"))
def test_offline_nft_recipes_run(method, tiny_model_dir, labeled_rollout, tmp_path):
    data = tmp_path / "labeled.parquet"
    labeled_rollout.to_parquet(str(data))
    out = tmp_path / "out"
    assert main(["train", method, "--config", _recipe_without_method(method, tmp_path), "--model_name_or_path",
                 str(tiny_model_dir), "--dataset", str(data), "--output_dir", str(out), "--max_steps", "2",
                 "--disable_tqdm", "true"]) == 0
    card = (out / "README.md").read_text()
    assert f"`{method}`" in card and "paper: Chen et al. 2025" in card
    assert ('"neg_weight": 0.0' in card) == (method == "rft_offline")
