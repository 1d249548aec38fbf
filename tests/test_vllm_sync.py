"""The CPU weight-sync fit for TRL's colocated vLLM leaves every other set-up alone (the real engine is
exercised in tests/test_vllm_cpu.py)."""

from types import SimpleNamespace

from negtune.trainers.vllm_sync import close_colocated_vllm, fit_cpu_colocate_sync


def test_no_vllm_or_server_mode_is_left_alone():
    plain = SimpleNamespace(args=SimpleNamespace(use_vllm=False))
    assert fit_cpu_colocate_sync(plain) is False
    sync = object()
    server = SimpleNamespace(args=SimpleNamespace(use_vllm=True),
                             vllm_generation=SimpleNamespace(mode="server", sync_weights=sync))
    assert fit_cpu_colocate_sync(server) is False and server.vllm_generation.sync_weights is sync


def test_closing_without_a_colocated_engine_is_a_no_op():
    close_colocated_vllm(SimpleNamespace())
    close_colocated_vllm(SimpleNamespace(vllm_generation=SimpleNamespace(mode="server")))
    stopped = []
    engine_core = SimpleNamespace(shutdown=lambda: stopped.append(True))
    colocated = SimpleNamespace(vllm_generation=SimpleNamespace(llm=SimpleNamespace(
        llm_engine=SimpleNamespace(engine_core=engine_core))))
    close_colocated_vllm(colocated)
    assert stopped == [True]
