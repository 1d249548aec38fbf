import json

import pytest

from negtune.data.io import DataError
from negtune.data.loaders import load_records, normalize_rows

# (benchmark name, relative file, expected format, expected rows, first gold answer)
SHARED = [
    ("gsm8k", "math/gsm8k/test.jsonl", "gsm8k", 1319, "18"),
    ("gsm8k_train", "math/gsm8k/train.jsonl", "gsm8k", 7473, "72"),
    ("math500", "math/math500/test.jsonl", "math", 500, r"\left( 3, \frac{\pi}{2} \right)"),
    ("aime24", "math/aime24/test.jsonl", "math", 30, "204"),
    ("aime25", "math/aime25/test.parquet", "verl", 30, "70"),
    ("amc23", "math/amc23/test.jsonl", "math", 40, "27"),
    ("minerva", "math/minerva_math/test.jsonl", "math", 272, "1.6"),
    ("olympiadbench", "math/olympiadbench/test.jsonl", "olympiadbench", 675, "2"),
    # MATH train (verl): 7500 rows, 4 of which have an empty ground truth and are skipped (and reported).
    ("math_train", "math/math/train.parquet", "verl", 7496, "0"),
]


@pytest.mark.parametrize("name,rel,fmt,rows,first_answer", SHARED, ids=[s[0] for s in SHARED])
def test_every_shared_file_loads(shared_data, name, rel, fmt, rows, first_answer):
    by_path = load_records(str(shared_data / rel))  # format detected from the columns
    by_name = load_records(name)
    for loaded in (by_path, by_name):
        assert loaded.format == fmt
        assert len(loaded) == rows
        assert loaded.records[0]["answer"] == first_answer
        assert set(loaded.records[0]) == {"id", "prompt", "answer", "source"}
        assert all(r["answer"] for r in loaded.records)
    assert len({r["id"] for r in by_path.records}) == rows  # ids are unique


def test_math_train_reports_skipped_rows(shared_data):
    loaded = load_records(str(shared_data / "math/math/train.parquet"))
    assert [i for i, _ in loaded.skipped] == [5341, 5343, 6627, 7301]
    assert isinstance(loaded.records[0]["prompt"], list) and loaded.records[0]["prompt"][0]["role"] == "user"


def test_minerva_answer_from_boxed_solution(shared_data):
    rec = load_records("minerva").records[0]
    raw = json.loads((shared_data / "math/minerva_math/test.jsonl").read_text().splitlines()[0])
    assert "answer" not in raw and rf"\boxed{{{rec['answer']}}}" in raw["solution"]


def test_verl_stringified_columns(tmp_path):
    rows = [{"prompt": json.dumps([{"role": "user", "content": "2+2?"}]),
             "reward_model": str({"ground_truth": {"target": 4}, "style": "rule"}),
             "extra_info": str({"index": 7, "split": "test"})}]
    loaded = normalize_rows(rows, source="s")
    assert loaded.format == "verl"
    assert loaded.records == [{"id": "7", "prompt": [{"role": "user", "content": "2+2?"}], "answer": "4",
                               "source": "s"}]


def test_plain_columns_csv(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("q,gold,key\nWhat is 1+1?,2,a\nWhat is 2+3?,5,b\n")
    loaded = load_records(str(path), prompt_column="q", answer_column="gold", id_column="key")
    assert loaded.format == "columns"
    assert loaded.records[1] == {"id": "b", "prompt": "What is 2+3?", "answer": "5", "source": str(path)}


def test_plain_columns_parquet_and_jsonl_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "x?", "y": 1.0}]), tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "z?", "y": 2.5}) + "\n")
    loaded = load_records(str(tmp_path), prompt_column="text", answer_column="y")
    assert [r["answer"] for r in loaded.records] == ["1", "2.5"]


def test_errors_name_the_problem(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl: file is empty"):
        load_records(str(empty))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "b #### 1"}\n{not json\n')
    with pytest.raises(DataError, match="bad.jsonl: line 2 is not valid JSON"):
        load_records(str(bad))
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "q", "answer": "x #### 3"}) + "\n" +
                   json.dumps({"question": "q2", "answer": "no marker"}) + "\n")
    with pytest.raises(DataError, match=r"row 1, column 'answer': no '#### <answer>'"):
        load_records(str(gsm), format="gsm8k")
    with pytest.raises(DataError, match="unknown format 'nope'; known formats: .*gsm8k"):
        load_records(str(gsm), format="nope")
    with pytest.raises(DataError, match="needs column 'final_answer'"):
        load_records(str(gsm), format="olympiadbench")
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DataError, match="cannot detect the format from columns \\['foo'\\]; pass --format"):
        load_records(str(odd))
    with pytest.raises(DataError, match="no such file"):
        load_records(str(tmp_path / "missing.jsonl"))


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="openai/gsm8k: .*hub is offline"):
        load_records("openai/gsm8k")


def test_benchmark_falls_back_to_hub_when_shared_folder_absent(monkeypatch, tmp_path):
    import negtune.data.paths as paths

    monkeypatch.setattr(paths, "shared_data_dir", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="HuggingFaceH4/MATH-500: .*offline"):
        load_records("math500")
