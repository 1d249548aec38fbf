import json
import shutil
import subprocess

from negtune.cli import main


def test_data_check_prints_format_count_and_first_record(shared_data, capsys):
    assert main(["data", "check", str(shared_data / "math/math500/test.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "format: math" in out and "rows: 500" in out
    first = json.loads(out[out.index("{"):])
    assert first["answer"] == r"\left( 3, \frac{\pi}{2} \right)"


def test_data_check_benchmark_name_and_skips(shared_data, capsys):
    assert main(["data", "check", "math_train"]) == 0
    out = capsys.readouterr().out
    assert "rows: 7496" in out and "skipped: 4 rows" in out and "5341" in out


def test_data_check_errors_exit_nonzero(tmp_path, capsys):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert main(["data", "check", str(empty)]) == 2
    assert "e.jsonl: file is empty" in capsys.readouterr().err
    (tmp_path / "x.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    assert main(["data", "check", str(tmp_path / "x.jsonl"), "--format", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown format 'bogus'" in err and "gsm8k" in err and "olympiadbench" in err
    assert main(["data", "check", str(tmp_path / "x.jsonl"), "--prompt-column", "q", "--answer-column", "a"]) == 2
    assert "column 'q' not found" in capsys.readouterr().err


def test_data_check_labeled_and_tofu(tmp_path, shared_data, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from negtune.data.schema import prompt_id

    row = {"prompt": "p", "completion": "c", "prompt_id": prompt_id("p"), "sample_idx": 0, "reward": 1.0,
           "label": True, "answer": "1", "extracted": "1", "verifier": "math", "finish_reason": "stop",
           "group_pass_rate": 1.0}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "shard-00000.parquet")
    assert main(["data", "check", str(tmp_path)]) == 0
    assert "format: labeled" in capsys.readouterr().out
    assert main(["data", "check", str(shared_data / "tofu/forget10_perturbed.json"), "--format", "tofu"]) == 0
    assert "rows: 400" in capsys.readouterr().out


def test_make_commands(tmp_path, capsys):
    assert main(["data", "make-arith", "--out", str(tmp_path / "a.jsonl"), "--n", "5"]) == 0
    assert main(["data", "check", str(tmp_path / "a.jsonl")]) == 0
    assert "rows: 5" in capsys.readouterr().out
    assert main(["data", "make-tofu", "--out", str(tmp_path / "tofu")]) == 0
    assert main(["data", "check", str(tmp_path / "tofu/forget10_perturbed.json"), "--format", "tofu"]) == 0
    assert "rows: 20" in capsys.readouterr().out


def test_console_script_installed():
    exe = shutil.which("negtune")
    assert exe, "the negtune console script is not on PATH (pip install -e .)"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "tiny-model" in out and "data" in out
