"""The test harness itself: what one test does to the process must not break the tests after it."""

import logging.config

import pytest


def test_logging_reconfigured_under_capsys_closes_no_capture_file(capsys):
    """vLLM's ``LLM()`` reconfigures logging (``dictConfig`` closes every handler). absl's handler closes the stream
    it was made with unless that is the current sys.stderr: under capsys it would close pytest's capture file of the
    worker (conftest points absl at the real stderr)."""
    absl_logging = pytest.importorskip("absl.logging")
    stream = absl_logging.get_absl_handler().python_handler.stream
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert not stream.closed
    print("still captured")
    assert capsys.readouterr().out == "still captured\n"
