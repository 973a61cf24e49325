"""Time and peak memory of `feedwatch report` over large histories, per format.

Builds databases of N changes (default 1,000 and 10,000: 50 documents of 4 sections, a few words edited
per version) through the real stages and store (tests/history_data.py), then runs
`feedwatch report --format F --output FILE` in a fresh process per format and prints wall time and peak
RSS (the process's own VmHWM). The baseline row is the same command over an empty period: the cost of starting up.
Reports stream, so peak RSS should stay flat from 1,000 to 10,000 changes while the time grows linearly.

    .venv/bin/python bench/report_bench.py [--sizes 1000,10000] [--database URL-of-an-empty-database]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from storage.store import Store  # noqa: E402
from tests.history_data import Page, page_text, record  # noqa: E402

DOCUMENTS = 50
START = datetime(2024, 1, 1, tzinfo=UTC)


def build(url: str, changes: int) -> float:
    """Record `changes` changes (DOCUMENTS per poll, one poll per hour); returns seconds taken."""
    began = time.perf_counter()
    store = Store.open(url)
    try:
        for poll in range(changes // DOCUMENTS):
            record(store, "bench", START + timedelta(hours=poll),
                   [Page(f"doc-{d}", f"Document {d}", page_text(d, poll), f"https://example.org/{d}")
                    for d in range(DOCUMENTS)])
    finally:
        store.close()
    return time.perf_counter() - began


# The report runs in a fresh interpreter that prints its own VmHWM (peak RSS of this program image, Linux)
# at exit. wait4's ru_maxrss would not do: it keeps the high-water mark of the forked parent from before exec.
CHILD = """import sys
from monitor.cli import main
code = main(sys.argv[1:])
sys.stderr.write(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')))
sys.exit(code)
"""


def run(url: str, *args: str, output: Path) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB, output bytes of one `feedwatch report` in a fresh process."""
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, "-q", "--database", url, "report", *args,
                           "--output", str(output)], capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"report {' '.join(args)} failed: {proc.stderr}")
    peak_kib = int(proc.stderr.rsplit("VmHWM:", 1)[1].split()[0])
    return elapsed, peak_kib / 1024, output.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="numbers of changes, comma-separated")
    parser.add_argument("--database", help="an empty database URL to use for the largest size (default: SQLite)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'changes':>8}  {'format':<16}  {'seconds':>8}  {'peak RSS MiB':>12}  {'output MiB':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            url = args.database if args.database and size == sizes[-1] else f"sqlite:///{tmp}/bench-{size}.db"
            took = build(url, size)
            print(f"{size:>8}  {'(build database)':<16}  {took:>8.1f}")
            cases = [("baseline", ["--since", "2000-01-01T00:00Z", "--until", "2000-01-02T00:00Z"])]
            cases += [(fmt, ["--format", fmt]) for fmt in ("html", "markdown", "atom")]
            for name, extra in cases:
                seconds, rss, size_out = run(url, *extra, output=Path(tmp) / f"report-{size}-{name}")
                print(f"{size:>8}  {name:<16}  {seconds:>8.2f}  {rss:>12.1f}  {size_out / 2**20:>10.1f}")


if __name__ == "__main__":
    main()
