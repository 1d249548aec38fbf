"""`training_rows`: the one reader of training data (question/answer for unlearning, labeled for the rest)."""

import json

import datasets
import pytest

from negtune.data.io import DataError
from negtune.data.rows import training_rows
from negtune.data.tasks.facts import write_tofu_synthetic


def test_qa_rows_from_every_kind_of_source(tmp_path):
    tofu = write_tofu_synthetic(tmp_path / "tofu")
    from_split = training_rows("forget10", "qa", "forget", tofu_root=tofu)
    assert len(from_split) == 20 and set(from_split[0]) == {"prompt", "answer"}
    f = tmp_path / "f.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) for i in range(3)) + "\n")
    assert training_rows(f, "qa")[2] == {"prompt": "p2", "answer": "c2"}
    ds = datasets.Dataset.from_list([{"question": "q", "answer": "a"}])
    assert training_rows(ds, "qa") == [{"prompt": "q", "answer": "a"}]
    assert training_rows(from_split, "qa") == from_split  # normalised rows read back unchanged


def test_qa_errors_name_the_flag_file_and_row(tmp_path):
    tofu = write_tofu_synthetic(tmp_path / "tofu")
    with pytest.raises(DataError, match=r"--forget forget01: .*forget01.json: no TOFU split 'forget01'"):
        training_rows("forget01", "qa", "forget", tofu_root=tofu, flag="forget")
    with pytest.raises(DataError, match=r"--forget .*missing.jsonl: no such file"):
        training_rows(str(tmp_path / "missing.jsonl"), "qa", "forget", flag="forget")
    # a split name is a name: it cannot walk out of the data folder
    (tmp_path / "secret.json").write_text('[{"question": "q", "answer": "a"}]')
    for name in ("../secret", str(tmp_path / "secret"), ".hidden"):
        with pytest.raises(DataError, match="is not a TOFU split name"):
            training_rows(name, "qa", "forget", tofu_root=tofu, flag="forget")
    with pytest.raises(DataError, match=r"forget dataset, row 1: expected columns question/answer"):
        training_rows([{"question": "q", "answer": "a"}, {"text": "x"}], "qa", "forget")


def test_labeled_rows(tmp_path):
    rows = [{"prompt": "p", "completion": "c", "label": True, "group_pass_rate": 0.5}]
    assert training_rows(rows, "labeled", extra_columns=("group_pass_rate",)) == rows
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    with pytest.raises(DataError, match=r"train dataset .*x.jsonl, row 0: missing column 'label'"):
        training_rows(f, "labeled")
    with pytest.raises(DataError, match=r"row 0, column 'label': expected bool, got 1"):
        training_rows([{"prompt": "p", "completion": "c", "label": 1}], "labeled")
    with pytest.raises(DataError, match="train dataset is empty"):
        training_rows([], "labeled")
    with pytest.raises(ValueError, match="kind must be one of"):
        training_rows(rows, "pairs")
