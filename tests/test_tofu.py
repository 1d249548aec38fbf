import pytest

from negtune.data.io import DataError
from negtune.data.tasks.facts import make_facts, write_tofu_synthetic
from negtune.data.tofu import load_tofu, load_tofu_split


def test_real_tofu_forget10(shared_data):
    bench = load_tofu("forget10")
    assert (len(bench.forget), len(bench.retain), len(bench.forget_perturbed)) == (400, 3600, 400)
    assert len(bench.retain_perturbed) == 400
    assert (len(bench.real_authors), len(bench.world_facts)) == (100, 117)
    row = bench.forget_perturbed[0]
    assert len(row["perturbed_answer"]) == 5 and row["paraphrased_answer"] and row["question"] == bench.forget[0]["question"]
    assert {r["question"] for r in bench.forget}.isdisjoint({r["question"] for r in bench.retain})


@pytest.mark.parametrize("split,n", [("forget01", 40), ("forget05", 200), ("retain99", 3960), ("full", 4000)])
def test_real_tofu_sizes(shared_data, split, n):
    assert len(load_tofu_split(split)) == n


def test_unknown_split_lists_available(shared_data):
    with pytest.raises(DataError, match="no TOFU split 'forget11'.*available: .*forget10"):
        load_tofu_split("forget11")
    with pytest.raises(DataError, match="unknown TOFU forget split"):
        load_tofu("forget11")


def test_synthetic_tofu_has_real_layout(tmp_path, shared_data):
    write_tofu_synthetic(tmp_path, n_authors=20, seed=3)
    synth = load_tofu("forget10", tmp_path)
    real = load_tofu("forget10")
    for name in ("forget", "retain", "forget_perturbed", "retain_perturbed", "real_authors", "world_facts"):
        assert set(getattr(synth, name)[0]) == set(getattr(real, name)[0]), name
    assert (len(synth.forget), len(synth.retain)) == (20, 180)
    assert all(len(r["perturbed_answer"]) == 5 for r in synth.forget_perturbed)
    assert all(r["answer"] not in r["perturbed_answer"] for r in synth.forget_perturbed)
    assert {r["question"] for r in synth.forget}.isdisjoint({r["question"] for r in synth.retain})
    assert (tmp_path / "real_authors.json").exists() and (tmp_path / "world_facts.json").exists()


def test_synthetic_tofu_deterministic_and_seeded():
    assert make_facts(20, seed=1) == make_facts(20, seed=1)
    assert make_facts(20, seed=1)["full"] != make_facts(20, seed=2)["full"]
    assert "forget01" in make_facts(100) and "forget01" not in make_facts(20)
