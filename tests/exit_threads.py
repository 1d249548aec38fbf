"""``python -m exit_threads ARGS`` = ``python -m negtune.train ARGS``, then a report of the threads left running.

Launched by ``tests/test_distributed.py``: a process-group thread (gloo's ``pt_gloo_runloop`` / ``gloo_tcp_loop``)
still alive when ``main`` returns runs into interpreter teardown, where a rank could abort after saving
(issue 17, item 14). Thread names are the kernel's (``/proc/self/task/*/comm``): C++ threads are invisible to
``threading``.
"""

import os
import sys
from pathlib import Path

from negtune.train import main


def native_threads() -> list[str]:
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            pass
    return sorted(names)


if __name__ == "__main__":
    code = main()
    left = [n for n in native_threads() if "gloo" in n]
    print(f"[rank {os.environ.get('RANK')}] process-group threads left at exit: {left}", file=sys.stderr, flush=True)
    sys.exit(code)
