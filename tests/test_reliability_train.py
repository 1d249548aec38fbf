"""Issue 17, training side: bad input is refused (or skipped) with the file/row named, never silently used."""

import json
import logging
import shutil

import pytest
from transformers import AutoTokenizer

from negtune.data.io import DataError
from negtune.data.rows import training_rows
from negtune.trainers import UnlearnConfig, UnlearnTrainer, UnlikelihoodConfig, UnlikelihoodTrainer

COMMON = dict(max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3, use_cpu=True, save_strategy="no",
              disable_tqdm=True, report_to="none")


def test_prompt_filling_max_length_is_skipped_with_rows_named(tiny_facts_model_dir, tmp_path, caplog):
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    long = "word " * 200
    rows = [{"prompt": "a", "completion": "b", "label": True}, {"prompt": long, "completion": "b", "label": False},
            {"prompt": "c", "completion": "d", "label": False}]
    args = UnlikelihoodConfig(output_dir=str(tmp_path / "u"), max_length=32, **COMMON)
    with caplog.at_level(logging.WARNING):
        trainer = UnlikelihoodTrainer(str(tiny_facts_model_dir), args, train_dataset=rows, processing_class=tok)
    assert len(trainer.train_dataset) == 2
    assert "skipped 1 of 3 rows whose prompt fills --max_length 32" in caplog.text and "rows 1" in caplog.text
    with pytest.raises(DataError, match=r"every row's prompt fills --max_length 32.*rows 0"):
        UnlearnTrainer(str(tiny_facts_model_dir), UnlearnConfig(output_dir=str(tmp_path / "o"), method="ga",
                                                                max_length=32, **COMMON),
                       forget_dataset=[{"question": long, "answer": "x"}], processing_class=tok)


@pytest.mark.parametrize("row, col, what", [
    ({"question": "", "answer": "x"}, "question", "empty"),
    ({"question": "q", "answer": "  "}, "answer", "empty"),
    ({"question": 7, "answer": "x"}, "question", "a value of type int"),
    ({"question": "q", "answer": None}, "answer", "null"),
    ({"prompt": {"a": 1}, "answer": "x"}, "prompt", "a value of type dict"),
])
def test_qa_rows_with_empty_or_non_text_cells_are_refused(row, col, what, tmp_path):
    path = tmp_path / "forget.json"
    path.write_text(json.dumps([{"question": "ok", "answer": "ok"}, row]))
    with pytest.raises(DataError, match=rf"forget dataset {path}, row 1, column '{col}': expected non-empty text, "
                                        rf"got {what}"):
        training_rows(str(path), "qa", "forget")


def test_labeled_prompt_that_is_a_number_is_refused(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"prompt": 12, "completion": "b", "label": True}) + "\n")
    with pytest.raises(DataError, match=rf"train dataset {path}, row 0, column 'prompt': expected non-empty text, "
                                        "got a value of type int"):
        training_rows(str(path), "labeled")


def test_model_folder_without_tokenizer_is_refused(tiny_facts_model_dir, tmp_path, capsys):
    from negtune.cli import main
    from negtune.models.loading import ModelLoadError, load_model_and_tokenizer

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in tiny_facts_model_dir.iterdir():
        if f.name.startswith(("config", "model", "generation")):
            shutil.copy(f, bare / f.name)
    with pytest.raises(ModelLoadError, match=f"{bare}: no tokenizer files"):
        load_model_and_tokenizer(str(bare))
    assert main(["train", "ga", "--model_name_or_path", str(bare), "--forget", "forget10",
                 "--output_dir", str(tmp_path / "o"), "--use_cpu", "true"]) == 2
    assert f"negtune: error: {bare}: no tokenizer files" in capsys.readouterr().err


def test_missing_model_path_and_output_dir_that_is_a_file(tiny_facts_model_dir, tmp_path, capsys, monkeypatch):
    from negtune.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # (as the tests run): the message says the hub was not asked

    argv = ["train", "ga", "--forget", "forget10", "--use_cpu", "true"]
    missing = tmp_path / "no-such-model"
    assert main([*argv, "--model_name_or_path", str(missing), "--output_dir", str(tmp_path / "o")]) == 2
    assert (f"negtune: error: --model {missing}: cannot load the tokenizer (not a folder here, and the hub is "
            "offline (HF_HUB_OFFLINE is set") in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        assert main([*argv, "--model_name_or_path", str(tiny_facts_model_dir), "--output_dir", str(out)]) == 2
        assert "is a file" in capsys.readouterr().err


def test_bin_adapter_is_refused(tiny_facts_model_dir, tmp_path):
    from negtune.models.loading import ModelLoadError, load_model

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_facts_model_dir)}))
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="adapter_model.bin is a pickle file and negtune loads safetensors only"):
        load_model(str(tiny_facts_model_dir), adapter=str(adapter))


def test_lora_output_works_as_model_from_another_directory(tiny_facts_model_dir, tmp_path, monkeypatch):
    from peft import LoraConfig

    from negtune.models.loading import adapter_base, resolve_adapter

    monkeypatch.chdir(tiny_facts_model_dir.parent)
    tok = AutoTokenizer.from_pretrained(tiny_facts_model_dir)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM")
    trainer = UnlearnTrainer(tiny_facts_model_dir.name, UnlearnConfig(output_dir=str(tmp_path / "o"), method="ga",
                                                                     **COMMON),
                             forget_dataset=[{"question": "q", "answer": "a"}], processing_class=tok,
                             peft_config=lora)
    trainer.save_model(str(tmp_path / "o"))
    monkeypatch.chdir(tmp_path)
    assert resolve_adapter(str(tmp_path / "o"))[0] == str(tiny_facts_model_dir.resolve())
    # an adapter saved by an older negtune, with its base relative to the adapter folder, resolves too
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "../o"}))
    assert adapter_base(tmp_path / "old") == str((tmp_path / "o").resolve())


def test_non_utf8_training_file_is_named(tmp_path):
    path = tmp_path / "forget.csv"
    path.write_bytes(b"question,answer\ncaf\xe9,b\n")
    with pytest.raises(DataError, match=f"--forget {path}: not UTF-8 text \\(byte 19"):
        training_rows(str(path), "qa", "forget", flag="forget")
