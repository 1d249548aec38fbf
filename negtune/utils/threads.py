"""How many CPU threads a negtune process uses: chosen on purpose, adapted to what it shares, stated in the log.

torch asks OpenMP for one intra-op thread per core. When the other cores are busy (another job, the other ranks
of an ``accelerate launch``), a thread that waits at the end of each parallel region for a descheduled sibling
spins, and with small models every op is short: the tiny GA recipe's training loop took 5.6x its idle time
beside one busy process per core with torch's defaults, up to 45x in single runs (``benchmarks/busy.py``).
negtune therefore:

1. takes an explicit request first: ``--threads N`` (``negtune train ... --threads N``), else ``NEGTUNE_THREADS``,
   else an ``OMP_NUM_THREADS`` that is set (torchrun and ``accelerate launch`` set it to the per-rank share);
2. otherwise uses the cores that are free: ``min(cores // local processes, cores - cores busy with other
   processes)``, at least one, measured from ``/proc/stat`` when the process starts and again, at most every
   ``RECHECK_S`` seconds, wherever a long stage calls :func:`adapt` (every training step through the
   trainers' ``AdaptiveThreads`` callback, the tiny model's SFT loop, every rollout shard, TOFU eval set and
   demo stage), so a job that starts beside a run is noticed within seconds.

OpenMP's own wait policy is left as the user has it: shorter spin-waits (``GOMP_SPINCOUNT``) cost about 7% at
idle and their effect under load is erratic (1k: 2.3x the idle time, 30k: 28x, libgomp's 300k: 3.8x, two threads
beside two busy processes), while one thread on a busy machine is steady (1.8x). The verifier pool's workers run
no torch; they are processes of their own and take one core each.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

logger = logging.getLogger("negtune.threads")

ENV = "NEGTUNE_THREADS"
RECHECK_S = 5.0  # a long stage measures the machine again at most this often


@dataclass(frozen=True)
class ThreadPlan:
    threads: int
    requested: bool  # the user asked for this number: never adapted
    reason: str

    def describe(self) -> str:
        how = "" if self.requested else f"; --threads N, {ENV} or OMP_NUM_THREADS set it"
        return f"negtune: {self.threads} CPU thread{'s' if self.threads != 1 else ''} ({self.reason}{how})"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def requested_threads(requested: int | None = None) -> tuple[int, str] | None:
    """The user's explicit choice (flag, ``NEGTUNE_THREADS``, ``OMP_NUM_THREADS``), or None."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be >= 1, got {requested}")
        return requested, "--threads"
    for name in (ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r}: expected a whole number of threads") from None
            if n < 1:
                raise ValueError(f"{name}={value!r}: expected at least 1 thread")
            return n, f"{name}={n}"
    return None


class BusyMeter:
    """Cores kept busy by other processes since the last reading: (all busy CPU time - this process's CPU time)
    over the elapsed time, from ``/proc/stat`` and ``/proc/self/stat`` (Linux; elsewhere None)."""

    def __init__(self):
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                cpu = [float(x) for x in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0.0)  # idle + iowait
        total = sum(cpu[:8])  # guest time is already counted in user
        return total, total - idle, float(own[11]) + float(own[12])  # utime + stime of every thread

    def others(self) -> float | None:
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        ncpu = os.cpu_count() or 1
        busy_cores = (now[1] - last[1]) / (now[0] - last[0]) * ncpu
        own_cores = (now[2] - last[2]) / ((now[0] - last[0]) / ncpu)
        return max(0.0, busy_cores - own_cores)


_meter: BusyMeter | None = None
_current: ThreadPlan | None = None
_checked_at = 0.0


def plan(requested: int | None = None, sample_s: float = 0.2) -> ThreadPlan:
    """The thread count for this process now (see the module docstring)."""
    global _meter
    explicit = requested_threads(requested)
    if explicit is not None:
        return ThreadPlan(explicit[0], True, explicit[1])
    cores = available_cores()
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    share = max(1, cores // local)
    reason = f"{cores} cores" + (f", {local} local processes" if local > 1 else "")
    if _meter is None:
        _meter = BusyMeter()
        time.sleep(sample_s)
    others = _meter.others()
    if others is not None and others >= 0.75:  # a mostly busy core; sporadic activity is noise
        free = max(1, cores - round(others))
        if free < share:
            return ThreadPlan(free, False, f"{reason}, {others:.1f} busy with other processes")
    return ThreadPlan(share, False, reason)


def configure(requested: int | None = None, quiet: bool = False) -> ThreadPlan:
    """Apply :func:`plan` to torch's intra-op threads; log the choice when it changes (``quiet``: at debug)."""
    global _current, _checked_at
    import torch

    _checked_at = time.monotonic()
    if requested is not None:  # later stages of this process (and its children) keep the request
        os.environ[ENV] = str(requested)
    chosen = plan(requested)
    if torch.get_num_threads() != chosen.threads:
        torch.set_num_threads(chosen.threads)
    if _current is None or chosen.threads != _current.threads:
        logger.log(logging.DEBUG if quiet else logging.INFO, chosen.describe())
    _current = chosen
    return chosen


def adapt(every_s: float = RECHECK_S) -> ThreadPlan | None:
    """In a long stage (call it as often as you like): measure again, at most every ``every_s`` seconds, and
    resize. A no-op unless an entry point ran :func:`configure`, or when the user chose the number."""
    if _current is None or _current.requested or time.monotonic() - _checked_at < every_s:
        return _current
    return configure(quiet=False)


def current() -> ThreadPlan | None:
    return _current


def show_in_log() -> None:
    """Entry points: the thread choice is part of the run's log (INFO on ``negtune.threads``), even when the
    root logger only shows warnings."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
