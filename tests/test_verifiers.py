import sys
import threading
import time

import pytest

from negtune.data.loaders import load_records
from negtune.rollout.verifiers import Verdict, load, verify_choice, verify_exact, verify_math, verify_numeric
from negtune.rollout.verify_pool import VerifierPool


@pytest.mark.parametrize(
    "completion,answer,label",
    [
        (r"so the answer is \boxed{5}.", "5", True),
        ("The answer is 5", "5", True),  # unboxed
        (r"\boxed{\frac{1}{2}}", "0.5", True),  # fraction vs decimal
        (r"\boxed{0.5}", r"\frac{1}{2}", True),
        (r"\boxed{\frac12}", r"\frac{1}{2}", True),
        (r"$\sqrt{2}$ is it: \boxed{\sqrt{2}}", r"\sqrt{2}", True),  # LaTeX
        (r"\boxed{2^{1009}}", "$2^{1009}$", True),
        (r"\boxed{6}", "5", False),
        (r"first \boxed{5} then finally \boxed{6}", "5", False),  # the last answer counts
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)", True),
    ],
)
def test_math_verifier(completion, answer, label):
    v = verify_math(completion, answer)
    assert v.label is label and v.reward == float(label)


def test_math_verifier_edge_cases():
    assert verify_math("", "5") == Verdict(0.0, False, None)  # empty completion: wrong, decided
    assert verify_math("I do not know.", "5").label is False
    for bad_gold in ("", r"\boxed{\foo{"):  # gold that does not parse
        undecided = verify_math(r"\boxed{5}", bad_gold)
        assert undecided.reward is None and undecided.label is False


def test_numeric_verifier():
    assert verify_numeric("She makes $18 every day.", "18").label
    assert verify_numeric("Total: 1,000 apples", "1000").label
    assert verify_numeric(r"answer \boxed{18.0}", "18").label
    assert verify_numeric(r"\boxed{\frac{1}{4}}", "0.25").label
    assert not verify_numeric("It is 17, no wait, 19", "18").label
    assert verify_numeric("no numbers", "18") == Verdict(0.0, False, None)
    assert verify_numeric("12", "twelve").reward is None


def test_exact_and_choice_verifiers():
    assert verify_exact(r"\boxed{Paris}", "paris").label
    assert verify_exact("  Paris. ", "Paris").label
    assert not verify_exact("Lyon", "Paris").label
    assert verify_choice("The answer is (B).", "B").label
    assert verify_choice(r"\boxed{C}", "(C)").label
    assert not verify_choice("I pick A", "B").label
    assert verify_choice("B", "Z").reward is None


def test_user_verifier_module(tmp_path, monkeypatch):
    (tmp_path / "my_verifiers.py").write_text(
        "def startswith(c, a):\n    return 1.0 if c.startswith(a) else 0.0\n"
        "def undecided(c, a):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = load("my_verifiers:startswith")
    assert fn("abc", "a") == Verdict(1.0, True, None)
    assert load("my_verifiers:undecided")("x", "y").reward is None
    with pytest.raises(ValueError, match="cannot import module"):
        load("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="has no function"):
        load("my_verifiers:nope")
    with pytest.raises(ValueError, match="unknown verifier 'mathh'; known: math"):
        load("mathh")
    sys.modules.pop("my_verifiers", None)


def _adversarial(size: int = 100_000) -> str:
    depth = size // 10
    return r"\boxed{" + r"\frac{1}{" * depth + "2" + "}" * depth + "}"


def test_adversarial_latex_finishes_within_the_time_limit():
    text = _adversarial()
    assert len(text) >= 100_000
    start = time.monotonic()
    with VerifierPool("math", workers=1, timeout=1.0) as pool:
        verdicts, stats = pool.verify([text, r"\boxed{5}"], ["5", "5"])
    elapsed = time.monotonic() - start
    assert verdicts[0].reward is None and verdicts[1].label
    assert stats.timeouts == 1 and stats.undecidable == 1
    assert elapsed < 15  # 1 s limit + worker start-up; unbounded without the limit


def test_pool_time_limit_works_off_the_main_thread():
    result = {}

    def run():
        with VerifierPool("math", workers=1, timeout=1.0) as pool:
            result["v"], result["stats"] = pool.verify([_adversarial(30_000)], ["5"])

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    assert result["v"][0].reward is None and result["stats"].timeouts == 1


def test_inline_pool_in_main_thread():
    with VerifierPool("gsm8k", workers=0, timeout=1.0) as pool:
        verdicts, stats = pool.verify(["42", "41"], ["42", "42"])
    assert [v.label for v in verdicts] == [True, False] and stats.samples == 2


def test_crashing_worker_is_contained(tmp_path, monkeypatch):
    (tmp_path / "crashy.py").write_text(
        "import os\n"
        "def check(c, a):\n"
        "    if c == 'die':\n        os._exit(1)\n"
        "    return c == a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with VerifierPool("crashy:check", workers=1, timeout=2.0, chunk_size=4) as pool:
        verdicts, stats = pool.verify(["a", "die", "b", "a"], ["a", "a", "a", "a"])
    assert [v.reward for v in verdicts] == [1.0, None, 0.0, 1.0]
    assert stats.errors == 1 and stats.undecidable == 1


@pytest.mark.parametrize("bench,verifier", [("gsm8k", "gsm8k"), ("gsm8k", "math"), ("math500", "math")])
def test_every_gold_verifies_against_itself(shared_data, bench, verifier):
    records = load_records(bench).records
    completions = [f"Let me think. The final answer is $\\boxed{{{r['answer']}}}$." for r in records]
    with VerifierPool(verifier, timeout=5.0) as pool:
        verdicts, stats = pool.verify(completions, [r["answer"] for r in records])
    misses = [(r["answer"], v) for r, v in zip(records, verdicts) if not v.label]
    assert not misses, misses[:5]


def test_reference_solutions_verify_against_gold(shared_data):
    """MATH-500 solutions and GSM8K worked answers against their gold: >= 99% (measured: 100%)."""
    import json

    math500 = [json.loads(x) for x in (shared_data / "math/math500/test.jsonl").read_text().splitlines()]
    gsm = [json.loads(x) for x in (shared_data / "math/gsm8k/test.jsonl").read_text().splitlines()]
    gsm_gold = [r["answer"] for r in load_records("gsm8k").records]
    with VerifierPool("math", timeout=5.0) as pool:
        v_math, _ = pool.verify([r["solution"] for r in math500], [r["answer"] for r in math500])
        v_gsm, _ = pool.verify([r["answer"].replace("####", "The answer is") for r in gsm], gsm_gold)
    assert sum(v.label for v in v_math) / len(v_math) >= 0.99
    assert sum(v.label for v in v_gsm) / len(v_gsm) >= 0.99
