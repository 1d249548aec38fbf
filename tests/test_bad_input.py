"""What each bad input gets (the README's bad-input table, docs/bad_input.md): one test per row.

Every message names what is at fault (file, column, row, flag) and no work is lost: data errors stop before
training starts; a non-finite loss keeps the checkpoints already written, and ``--resume`` continues from them.
The models here are small random Qwen2 models built in a second, not trained ones: none of these errors
depends on what the model knows. (The row "adapter for another base model" also has
tests/test_loading.py::test_adapter_for_another_base_is_refused; "NaN loss", at the trainer level,
tests/test_trainers_offline.py::test_nan_loss_stops_with_step_batch_and_checkpoint.)
"""

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from peft import LoraConfig, get_peft_model
from transformers import TrainerCallback

import negtune.train as train_mod
from negtune.cli import main as cli
from negtune.data.io import write_jsonl
from negtune.data.schema import prompt_id
from negtune.data.tasks import make_arith
from negtune.data.tasks.facts import write_tofu_synthetic
from negtune.models.loading import ModelLoadError, load_model
from negtune.models.tiny import TinySize, build_model, train_tokenizer
from negtune.trainers import NonFiniteLossError

SMALL = TinySize(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=64)
CPU = ["--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["Ava has 3 coins. What is 2+2? \\boxed{4} The author was born in Paris."] * 20,
                           vocab_size=320)


def _save(tok, model, path):
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tok, tmp_path_factory):
    return _save(tok, build_model(tok, SMALL, seed=0), tmp_path_factory.mktemp("small"))


def _row(i, **over):
    row = {"prompt": f"{i}+1?", "completion": f"\\boxed{{{i + 1}}}", "prompt_id": prompt_id(f"{i}+1?"),
           "sample_idx": 0, "reward": 1.0, "label": True, "answer": str(i + 1), "extracted": str(i + 1),
           "verifier": "math", "finish_reason": "stop", "group_pass_rate": 0.5}
    row.update(over)
    return row


def test_missing_column(model_dir, tmp_path, capsys):
    data = tmp_path / "labeled.jsonl"
    rows = [_row(0), _row(1), _row(2)]
    del rows[1]["label"]
    write_jsonl(data, rows)
    out = tmp_path / "out"
    assert cli(["train", "unlikelihood", "--model_name_or_path", str(model_dir), "--dataset", str(data),
                "--output_dir", str(out), *CPU]) == 2
    err = capsys.readouterr().err
    assert f"train dataset {data}, row 1: missing column 'label'" in err and "columns present: " in err
    # offline NFT also needs group_pass_rate: same shape of message
    write_jsonl(data, [{k: v for k, v in _row(0).items() if k != "group_pass_rate"}])
    assert cli(["train", "nft_offline", "--model_name_or_path", str(model_dir), "--dataset", str(data),
                "--output_dir", str(out), *CPU]) == 2
    assert f"{data}, row 0: missing column 'group_pass_rate'" in capsys.readouterr().err
    # a rollout folder is checked against the whole labeled schema: shard file, column, row
    shard = [_row(0), _row(1)]
    del shard[1]["completion"]
    (tmp_path / "rollout").mkdir()
    pq.write_table(pa.Table.from_pylist(shard), tmp_path / "rollout" / "shard-00000.parquet")
    assert cli(["train", "unlikelihood", "--model_name_or_path", str(model_dir), "--dataset",
                str(tmp_path / "rollout"), "--output_dir", str(out), *CPU]) == 2
    err = capsys.readouterr().err
    assert "shard-00000.parquet" in err and "'completion'" in err and "row 1" in err
    assert not out.exists()  # nothing started, nothing written


def test_empty_dataset(model_dir, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = str(tmp_path / "out")
    assert cli(["train", "unlikelihood", "--model_name_or_path", str(model_dir), "--dataset", str(empty),
                "--output_dir", out, *CPU]) == 2
    assert f"{empty}: file is empty" in capsys.readouterr().err
    no_rows = tmp_path / "none.parquet"
    pq.write_table(pa.Table.from_pylist([_row(0)]).slice(0, 0), no_rows)
    assert cli(["train", "npo", "--model_name_or_path", str(model_dir), "--forget", str(no_rows),
                "--output_dir", out, *CPU]) == 2
    assert f"{no_rows}: file has no rows" in capsys.readouterr().err
    (tmp_path / "rollout").mkdir()
    assert cli(["train", "contrastive", "--model_name_or_path", str(model_dir), "--dataset",
                str(tmp_path / "rollout"), "--output_dir", out, *CPU]) == 2
    assert f"file {tmp_path / 'rollout'}: no *.parquet shards in folder" in capsys.readouterr().err
    assert cli(["data", "check", str(empty)]) == 2
    assert f"{empty}: file is empty" in capsys.readouterr().err


def test_wrong_split_name(model_dir, tmp_path, capsys):
    tofu = write_tofu_synthetic(tmp_path / "tofu")  # 20 authors: forget05 and forget10, no forget01
    out = str(tmp_path / "out")
    assert cli(["train", "npo", "--model_name_or_path", str(model_dir), "--forget", "forget01", "--tofu_root",
                str(tofu), "--output_dir", out, *CPU]) == 2
    err = capsys.readouterr().err
    assert f"--forget forget01: {tofu / 'forget01.json'}: no TOFU split 'forget01' in {tofu}" in err
    assert "available: " in err and "forget05" in err and "forget10" in err
    assert cli(["train", "npo_rt", "--model_name_or_path", str(model_dir), "--forget", "forget10", "--retain",
                "retain_90", "--tofu_root", str(tofu), "--output_dir", out, *CPU]) == 2
    assert "--retain retain_90: " in capsys.readouterr().err
    assert cli(["train", "npo", "--model_name_or_path", str(model_dir), "--forget", str(tmp_path / "f.jsonl"),
                "--output_dir", out, *CPU]) == 2
    assert f"--forget {tmp_path / 'f.jsonl'}: no such file" in capsys.readouterr().err
    assert cli(["train", "npo", "--model_name_or_path", str(model_dir), "--forget", "forget10", "--tofu_root",
                str(tmp_path / "nothere"), "--output_dir", out, *CPU]) == 2
    assert f"TOFU folder {tmp_path / 'nothere'}: no such folder" in capsys.readouterr().err
    assert cli(["train", "unlikelihood", "--model_name_or_path", str(model_dir), "--dataset", str(tmp_path / "none"),
                "--output_dir", out, *CPU]) == 2
    assert f"{tmp_path / 'none'}: no such file or folder" in capsys.readouterr().err


def test_adapter_for_another_base_model(tok, model_dir, tmp_path, capsys, caplog):
    wider = _save(tok, build_model(tok, TinySize(hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                                                 num_key_value_heads=1, intermediate_size=64)), tmp_path / "wider")
    lora = LoraConfig(r=2, target_modules=["q_proj"])
    get_peft_model(load_model(str(wider), dtype="float32"), lora).save_pretrained(tmp_path / "wrong")
    with pytest.raises(ModelLoadError, match=rf"{tmp_path / 'wrong'}: adapter does not fit '{model_dir}' "
                                             rf"\(it was trained on '{wider}'\): size mismatch for "):
        load_model(str(model_dir), adapter=str(tmp_path / "wrong"))
    # the same error from the command line: `negtune rollout --adapter`
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=0, difficulty=1))
    assert cli(["rollout", "--model", str(model_dir), "--adapter", str(tmp_path / "wrong"), "--dataset",
                str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "ro"), "--engine", "hf", "--n", "2",
                "--max-new-tokens", "4", "--no-progress", "--verify-workers", "0"]) == 2
    assert "adapter does not fit" in capsys.readouterr().err
    # same shapes, another model: loads (it may be a rename), with a warning naming both
    twin_dir = _save(tok, build_model(tok, SMALL, seed=1), tmp_path / "twin")
    get_peft_model(load_model(str(twin_dir), dtype="float32"), lora).save_pretrained(tmp_path / "twin-adapter")
    with caplog.at_level(logging.WARNING, logger="negtune.models.loading"):
        load_model(str(model_dir), adapter=str(tmp_path / "twin-adapter"))
    assert f"adapter trained on '{twin_dir}', loaded onto '{model_dir}'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="negtune.models.loading"):
        load_model(str(twin_dir), adapter=str(tmp_path / "twin-adapter"))
    assert "adapter trained on" not in caplog.text


def test_non_divisible_batch(model_dir, tmp_path, capsys):
    write_jsonl(tmp_path / "p.jsonl", make_arith(4, seed=0, difficulty=1))
    assert cli(["train", "ngrpo", "--model_name_or_path", str(model_dir), "--dataset", str(tmp_path / "p.jsonl"),
                "--per_device_train_batch_size", "6", "--num_generations", "4", "--updates_per_generation", "1",
                "--output_dir",
                str(tmp_path / "out"), "--bf16", "false", *CPU]) == 2
    err = capsys.readouterr().err
    assert "non-divisible batch: generation_batch_size (6) must be divisible by num_generations (4)" in err
    assert "--per_device_train_batch_size x 1 process(es) x --steps_per_generation" in err
    assert "a multiple of 4 (e.g. 4, 8)" in err
    assert not (tmp_path / "out").exists()


def test_nan_loss_stops_keeps_checkpoints_and_resumes(model_dir, tmp_path, monkeypatch):
    class PoisonStep2(TrainerCallback):  # the loss of step 2 becomes NaN
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                args.forget_weight = float("nan")

    build = train_mod.build_trainer

    def poisoned(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.add_callback(PoisonStep2())
        return trainer

    write_jsonl(tmp_path / "forget.jsonl", [{"question": f"Who wrote book {i}?", "answer": f"Author {i}."}
                                            for i in range(8)])
    out = tmp_path / "out"
    argv = ["ga", "--model_name_or_path", str(model_dir), "--forget", str(tmp_path / "forget.jsonl"),
            "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "2",
            "--save_strategy", "steps", "--save_steps", "1", *CPU]
    monkeypatch.setattr(train_mod, "build_trainer", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"ga: loss is nan at step 2 \(batch rows \[\d+, \d+\]\); "
                                                 rf"stopping\. The last checkpoint is kept: {out / 'checkpoint-1'}"):
        train_mod.main(argv)
    assert (out / "checkpoint-1" / "model.safetensors").exists()
    monkeypatch.setattr(train_mod, "build_trainer", build)  # the cause fixed: continue from the kept checkpoint
    assert train_mod.main([*argv, "--resume"]) == 0
    assert json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


def test_verifier_timeout(model_dir, tmp_path, monkeypatch, capsys, caplog):
    (tmp_path / "slow_verifier.py").write_text(
        "import time\n"
        "def check(completion, answer):\n"
        "    time.sleep(30)\n"
        "    return False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    write_jsonl(tmp_path / "p.jsonl", make_arith(2, seed=0, difficulty=1))
    with caplog.at_level(logging.WARNING, logger="negtune.rollout.verify_pool"):
        assert cli(["rollout", "--model", str(model_dir), "--dataset", str(tmp_path / "p.jsonl"), "--out",
                    str(tmp_path / "ro"), "--engine", "hf", "--n", "2", "--max-new-tokens", "4", "--no-progress",
                    "--verifier", "slow_verifier:check", "--verify-timeout", "0.2", "--verify-workers", "0"]) == 0
    assert "slow_verifier:check verifier: 4 of 4 samples ran past the 0.2s limit" in caplog.text
    assert "--verify-timeout" in caplog.text
    stats = json.loads((tmp_path / "ro" / "stats.json").read_text())
    assert stats["undecidable"] == 4 and stats["verifier_timeouts"] == 4
    assert "undecidable (timeouts, errors)" in capsys.readouterr().out
