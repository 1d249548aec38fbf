"""Test set-up: no network, few threads, tiny offline models, real benchmark files from ../shared/data."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from negtune.data.paths import shared_data_dir  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
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
    """A tiny arithmetic model with a short warm start (seconds): real weights, tokenizer and template."""
    from negtune.models.tiny import WarmStartConfig, create_tiny_model

    out = tmp_path_factory.mktemp("tiny-arith")
    create_tiny_model(out, task="arith", seed=0,
                      warm=WarmStartConfig(time_budget_s=8, eval_every=1000, n_eval=8, target_accuracy=1.0))
    return out
