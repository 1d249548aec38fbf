import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negtune.data.schema import SchemaError, prompt_id, read_labeled, validate_labeled


def _row(**over):
    row = {
        "prompt": "1+1?", "completion": r"\boxed{2}", "prompt_id": prompt_id("1+1?"), "sample_idx": 0,
        "reward": 1.0, "label": True, "answer": "2", "extracted": "2", "verifier": "math",
        "finish_reason": "stop", "group_pass_rate": 0.5,
    }
    row.update(over)
    return row


def _group():
    return [_row(), _row(sample_idx=1, reward=0.0, label=False, extracted="3", completion=r"\boxed{3}")]


def test_valid_group_passes():
    assert validate_labeled(_group()) == 2


def test_prompt_id_is_stable_and_distinguishes_chat():
    assert prompt_id("a") == prompt_id("a") != prompt_id("b")
    assert prompt_id([{"role": "user", "content": "a"}]) != prompt_id("a")
    assert len(prompt_id("a")) == 16


def test_missing_column_names_column_file_and_row():
    rows = _group()
    del rows[0]["label"]
    with pytest.raises(SchemaError) as e:
        validate_labeled(rows, file="x.parquet")
    msg = str(e.value)
    assert "x.parquet" in msg and "'label'" in msg and "row 0" in msg and "bool" in msg


def test_wrong_type_names_first_bad_row():
    rows = _group() + [_row(sample_idx=2, finish_reason="eos")]
    rows[0]["group_pass_rate"] = rows[1]["group_pass_rate"] = rows[2]["group_pass_rate"] = 2 / 3
    with pytest.raises(SchemaError) as e:
        validate_labeled(rows, file="f.jsonl")
    assert e.value.column == "finish_reason" and e.value.row == 2 and "'stop' or 'length'" in str(e.value)


@pytest.mark.parametrize(
    "column,value",
    [("reward", float("nan")), ("label", 1), ("sample_idx", -1), ("prompt", [{"role": "user"}]),
     ("group_pass_rate", 1.5)],
)
def test_bad_values_rejected(column, value):
    rows = _group()
    rows[1][column] = value
    with pytest.raises(SchemaError) as e:
        validate_labeled(rows)
    assert e.value.column == column and e.value.row == 1


def test_null_reward_allowed_null_label_not():
    rows = _group()
    rows[1]["reward"] = None
    validate_labeled(rows)
    rows[1]["label"] = None
    with pytest.raises(SchemaError, match="null value"):
        validate_labeled(rows)


def test_group_pass_rate_must_match_labels():
    rows = _group()
    rows[0]["group_pass_rate"] = rows[1]["group_pass_rate"] = 1.0
    with pytest.raises(SchemaError, match="disagrees"):
        validate_labeled(rows)


def test_empty_rejected():
    with pytest.raises(SchemaError, match="empty"):
        validate_labeled([], file="e.parquet")


def test_read_labeled_parquet_shards_names_bad_shard(tmp_path):
    good, bad = _group(), _group()
    bad[1]["completion"] = 5
    pq.write_table(pa.Table.from_pylist(good), tmp_path / "shard-00000.parquet")
    assert len(read_labeled(tmp_path)) == 2
    del bad[1]["completion"]
    pq.write_table(pa.Table.from_pylist(bad), tmp_path / "shard-00001.parquet")
    with pytest.raises(SchemaError) as e:
        read_labeled(tmp_path)
    assert "shard-00001.parquet" in str(e.value) and e.value.column == "completion"
