"""Run a verifier over many samples in worker processes, with a time limit per sample.

Two layers, so that no answer can hang or kill the stage:
1. in the worker (its main thread), ``signal.setitimer`` interrupts a sample that runs past ``timeout``;
2. in the parent, pebble's per-task deadline kills a worker that does not come back at all (a C call that
   ignores signals, a crash, memory exhaustion); its samples are retried one by one, and the one that
   still fails becomes ``reward=None``.
Either way the sample is counted (``timeouts`` / ``errors``). This works off the main thread (the parent
only waits on futures), unlike math-verify's own ``signal.alarm`` timeouts.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field

from negtune.rollout.verifiers import Verdict, load
from negtune.utils.threads import available_cores

logger = logging.getLogger(__name__)


class _SampleTimeout(BaseException):
    """Raised by the interval timer; a BaseException so verifier code's ``except Exception`` can't eat it."""


def _on_alarm(signum, frame):
    raise _SampleTimeout


_VERIFIERS: dict = {}


def _verify_chunk(name: str, pairs: list[tuple[str, str]], timeout: float) -> list[tuple]:
    """Worker side: (reward, label, extracted, status) per pair; status in ok / timeout / error."""
    verifier = _VERIFIERS.get(name) or _VERIFIERS.setdefault(name, load(name))
    use_timer = threading.current_thread() is threading.main_thread() and timeout > 0
    if use_timer:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
    out = []
    try:
        for completion, answer in pairs:
            try:
                if use_timer:
                    signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    v = verifier(completion, answer)
                finally:
                    if use_timer:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                out.append((v.reward, v.label, v.extracted, "ok"))
            except _SampleTimeout:
                out.append((None, False, None, "timeout"))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - math-verify raises BaseException subclasses
                out.append((None, False, None, f"error: {type(e).__name__}: {str(e)[:200]}"))
    finally:
        if use_timer:
            signal.signal(signal.SIGALRM, previous)
    return out


@dataclass
class VerifyStats:
    samples: int = 0
    undecidable: int = 0
    timeouts: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    statuses: list[str] = field(default_factory=list, repr=False)

    def add(self, other: VerifyStats) -> None:
        self.samples += other.samples
        self.undecidable += other.undecidable
        self.timeouts += other.timeouts
        self.errors += other.errors
        self.seconds += other.seconds
        self.first_error = self.first_error or other.first_error


class VerifierPool:
    """``with VerifierPool("math") as pool: verdicts, stats = pool.verify(completions, answers)``.

    ``workers=0`` verifies in this process (the per-sample timer then needs the main thread; off it, a
    one-worker pool is used instead).
    """

    def __init__(self, name: str, workers: int | None = None, timeout: float = 5.0, chunk_size: int = 32):
        load(name)  # fail fast on an unknown name, before any worker starts
        self.name, self.timeout, self.chunk_size = name, timeout, chunk_size
        self.workers = available_cores() if workers is None else workers
        if self.workers == 0 and threading.current_thread() is not threading.main_thread():
            self.workers = 1
        self._pool = None

    def __enter__(self) -> VerifierPool:
        if self.workers > 0:
            self._start()
        return self

    def _start(self) -> None:
        from pebble import ProcessPool

        # fork: workers need no re-import of __main__ (works from notebooks and stdin scripts); they run
        # pure-Python verification only, never torch, so forking a process with torch threads is safe.
        self._pool = ProcessPool(max_workers=self.workers, context=multiprocessing.get_context("fork"))

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None

    def _hard_limit(self, n: int) -> float:
        return self.timeout * n + 30.0  # worker start-up (imports) is inside the first task's deadline

    def verify(self, completions: list[str], answers: list[str]) -> tuple[list[Verdict], VerifyStats]:
        if len(completions) != len(answers):
            raise ValueError(f"{len(completions)} completions but {len(answers)} answers")
        start = time.monotonic()
        pairs = list(zip(completions, answers))
        if self._pool is None:
            results = _verify_chunk(self.name, pairs, self.timeout)
        else:
            chunks = [pairs[i : i + self.chunk_size] for i in range(0, len(pairs), self.chunk_size)]
            futures = [self._pool.schedule(_verify_chunk, args=(self.name, c, self.timeout),
                                           timeout=self._hard_limit(len(c))) for c in chunks]
            results = []
            for chunk, future in zip(chunks, futures):
                try:
                    results.extend(future.result())
                except Exception as e:  # noqa: BLE001 - killed worker (deadline, crash): retry one by one
                    logger.warning("verifier worker failed on a chunk (%s); retrying its %d samples singly",
                                   type(e).__name__, len(chunk))
                    results.extend(self._one_by_one(chunk))
        stats = VerifyStats(samples=len(results), seconds=time.monotonic() - start)
        verdicts = []
        for reward, label, extracted, status in results:
            verdicts.append(Verdict(reward, label, extracted))
            stats.undecidable += reward is None
            stats.timeouts += status == "timeout"
            if status.startswith("error") or status == "killed":
                stats.errors += 1
                stats.first_error = stats.first_error or status
            stats.statuses.append(status)
        if stats.timeouts:
            logger.warning("%s verifier: %d of %d samples ran past the %gs limit (first: sample %d of this batch): "
                           "reward None (undecidable), counted, never a hang; `negtune rollout --verify-timeout` "
                           "raises the limit", self.name, stats.timeouts, len(results), self.timeout,
                           stats.statuses.index("timeout"))
        return verdicts, stats

    def _one_by_one(self, chunk: list[tuple[str, str]]) -> list[tuple]:
        out = []
        for pair in chunk:
            if not self._pool.active:  # a crash can leave pebble's pool broken: start a fresh one
                self._pool.stop()
                self._start()
            future = self._pool.schedule(_verify_chunk, args=(self.name, [pair], self.timeout),
                                         timeout=self.timeout + 30.0)
            try:
                out.extend(future.result())
            except FuturesTimeout:
                out.append((None, False, None, "timeout"))
            except Exception as e:  # noqa: BLE001 - the worker died on this very sample
                out.append((None, False, None, f"error: worker died ({type(e).__name__})"))
        return out
