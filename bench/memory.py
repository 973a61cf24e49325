"""Peak memory (RSS) of `feedwatch run` and `feedwatch watch` by number of feeds: the numbers behind the
resource requests and limits in deploy/kubernetes/.

Each feed is one replay-corpus step (the Kubernetes community feed, 4 pages of 2-11 KB) served by a local
HTTP server on 127.0.0.1 at its own path. For each size it runs, as real subprocesses on a fresh SQLite file:

* `run --force` twice: the baseline poll (every document added), then a poll where every feed has moved
  on one step (changes diffed and stored);
* `watch`, left running until it has polled every feed once, then stopped with SIGTERM.

Peak RSS is the kernel's high-water mark (wait4's ru_maxrss), so it includes Python and every library.

    python bench/memory.py [N ...]        # default: 1 100 300
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import FeedServer, corpus_steps, feedwatch_cmd


def serve(server: FeedServer, steps: list[Path], n: int, shift: int) -> None:
    for i in range(n):
        server.set(f"/feed/{i}.xml", steps[(i + shift) % len(steps)].read_bytes())


def write_config(path: Path, server: FeedServer, n: int) -> None:
    lines = ["defaults:", "  interval: 1h", "polling:", "  concurrency: 8", "feeds:"]
    lines += [f"  - {{name: feed-{i}, url: '{server.url(f'/feed/{i}.xml')}'}}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def peak_of(args: list[str], env: dict[str, str], *, stop_after: float | None = None) -> tuple[float, float]:
    """Run feedwatch ARGS; return (peak RSS in MiB, seconds). With stop_after, SIGTERM it after that long."""
    start = time.monotonic()
    proc = subprocess.Popen([*feedwatch_cmd(), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if stop_after is not None:
        time.sleep(stop_after)
        proc.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"feedwatch {' '.join(args)} exited {proc.returncode}")
    return usage.ru_maxrss / 1024, time.monotonic() - start


def measure(n: int, steps: list[Path]) -> list[str]:
    server = FeedServer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "feedwatch.yaml"
            write_config(config, server, n)
            env = {**os.environ, "FEEDWATCH_CONFIG": str(config), "STATE_DIRECTORY": tmp}
            serve(server, steps, n, 0)
            baseline, t1 = peak_of(["run", "--force", "--no-notify"], env)
            serve(server, steps, n, 1)
            changed, t2 = peak_of(["run", "--force", "--no-notify"], env)
            serve(server, steps, n, 2)
            hits = server.count()
            # a fresh database makes every feed due, so watch polls them all in its first cycle
            os.remove(Path(tmp) / "feedwatch.db")
            watch, _ = peak_of(["watch"], env, stop_after=max(5.0, t1 * 1.5))
            polled = server.count() - hits
    finally:
        server.close()
    return [str(n), f"{baseline:.0f}", f"{t1:.1f}", f"{changed:.0f}", f"{t2:.1f}", f"{watch:.0f}", f"{polled}/{n}"]


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1, 100, 300]
    steps = corpus_steps()
    header = ["feeds", "run baseline MiB", "s", "run changed MiB", "s", "watch MiB", "watch polled"]
    rows = [measure(n, steps) for n in sizes]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
