import json
import shutil
import subprocess

import pytest

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
    assert main(["data", "check", str(tmp_path / "x.jsonl"), "--prompt-column", "question"]) == 2
    assert ("--answer-column missing: rows read by column name need both --prompt-column and --answer-column "
            "(columns: question, answer)") in capsys.readouterr().err


def test_data_check_labeled_and_tofu(tmp_path, shared_data, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from negtune.data.schema import prompt_id

    row = {"prompt": "p", "completion": "c", "prompt_id": prompt_id("p"), "sample_idx": 0, "reward": 1.0,
           "label": True, "answer": "1", "extracted": "1", "verifier": "math", "finish_reason": "stop",
           "group_pass_rate": 1.0, "token_ids": list(range(40))}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "shard-00000.parquet")
    assert main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "format: labeled (negtune labeled-sample schema)" in out
    assert '"... (40 values)"' in out and "39" not in out  # a rollout's long lists are cut
    # a plain table with prompt, completion and label is what the labeled trainers read: data check agrees
    table = tmp_path / "l.jsonl"
    table.write_text('{"prompt": "2+3?", "completion": "5", "label": true}\n'
                     '{"prompt": "2+3?", "completion": "6", "label": false}\n')
    assert main(["data", "check", str(table)]) == 0
    assert "rows: 2 (1 positive, 1 negative, 1 prompts)" in capsys.readouterr().out
    table.write_text('{"prompt": "2+3?", "completion": "5", "label": "true"}\n')
    assert main(["data", "check", str(table)]) == 2
    assert "label" in capsys.readouterr().err
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


def test_flags_are_the_config_fields():
    """Every field of a command's config is a flag (in both spellings), with the field's help and default."""
    from dataclasses import MISSING, fields

    from negtune.cli import build_parser
    from negtune.evaluation.math import MathEvalConfig
    from negtune.evaluation.tofu import TofuEvalConfig
    from negtune.loop import LoopConfig
    from negtune.rollout.stage import RolloutConfig

    parser = build_parser()
    subparsers = {a.dest: a for a in parser._actions if a.dest == "command"}["command"].choices
    evals = {a.dest: a for a in subparsers["eval"]._actions if a.dest == "eval_command"}["eval_command"].choices
    for sub, cls in ((subparsers["rollout"], RolloutConfig), (subparsers["loop"], LoopConfig),
                     (evals["math"], MathEvalConfig), (evals["tofu"], TofuEvalConfig)):
        actions = {a.dest: a for a in sub._actions}
        for f in fields(cls):
            action = actions[f.name]
            assert f"--{f.name}" in action.option_strings and f.metadata.get("help"), (cls.__name__, f.name)
            if "_" in f.name:
                assert f"--{f.name.replace('_', '-')}" in action.option_strings
            if f.default is not MISSING:
                assert action.default == f.default, (cls.__name__, f.name)


def test_every_command_has_help(capsys):
    """``--help`` formats on every command and every ``train`` method (argparse reads a bare % in a help string
    as a format code and fails on ``--help`` alone)."""
    from negtune import methods
    from negtune.cli import build_parser, commands
    from negtune.train import parse_train_args

    found = list(commands(build_parser()))
    assert len(found) > 15
    for words, parser in found:
        assert parser.format_help(), words
    for name in methods.names():
        with pytest.raises(SystemExit) as stop:
            parse_train_args(name, ["--help"])
        assert stop.value.code == 0, name
        assert f"negtune train {name}" in capsys.readouterr().out


def test_a_flag_that_does_nothing_is_an_error(tmp_path, capsys):
    assert main(["tiny-model", "--task", "facts", "--max-steps", "60", "--out", str(tmp_path / "m")]) == 2
    assert "--max-steps does nothing when --task is facts (it acts with --task arith)" in capsys.readouterr().err
    assert main(["tiny-model", "--task", "arith", "--facts_steps", "5", "--out", str(tmp_path / "m")]) == 2
    assert "--facts-steps does nothing when --task is arith" in capsys.readouterr().err
    assert main(["rollout", "--model", "m", "--dataset", "d", "--out", str(tmp_path / "r"), "--engine", "hf",
                 "--tensor-parallel-size", "2"]) == 2
    assert "--tensor-parallel-size does nothing when --engine is hf" in capsys.readouterr().err
    assert main(["eval", "math", "--model", "m", "--benchmarks", "gsm8k", "--out", str(tmp_path / "r"),
                 "--engine", "hf", "--enforce-eager", "false"]) == 2
    assert "--enforce-eager does nothing when --engine is hf" in capsys.readouterr().err
    assert main(["loop", "--model", "m", "--dataset", "d", "--out", str(tmp_path / "l"), "--lora-r", "4"]) == 2
    assert "--lora-r does nothing when --lora is not given" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "r").exists()


def test_a_bug_is_not_reported_as_bad_input(monkeypatch):
    """Only the errors negtune raises for bad input become `negtune: error` (exit 2); a KeyError is a bug."""
    import negtune.demo

    def broken(**kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(negtune.demo, "run_demo", broken)
    with pytest.raises(KeyError):
        main(["demo", "--out", "x"])
