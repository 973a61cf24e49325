"""Where a poll cycle's time goes: py-spy flame graphs of a cold and a warm `feedwatch run`, and a table.

The same cycle as bench/cycle.py (N feeds x 20 items from the local farm, bench/farm.py; warm = the next
cycle after the farm edited 1% of the feeds), run under py-spy, which samples every process of the run
(the forked pollers too) without changing the code. Each phase is recorded twice: once as an SVG flame
graph (bench/profiles/PHASE.svg, open it in a browser), once as collapsed stacks for the table printed
here: the share of all samples spent inside each of feedwatch's stages (a sample counts for every stage on
its stack) and the functions most often on top of the stack.

    pip install -e '.[bench]'                 # py-spy
    python bench/profile.py                   # N = 1000
    python bench/profile.py --feeds 200 --top 30
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cycle import FEEDWATCH, compile_checkout, feedwatch_config  # noqa: E402
from farm import Farm  # noqa: E402

OUT = HERE / "profiles"
# What a reader of the profile wants to know first: the stages of a poll, as functions on the stack.
STAGES = {
    "start-up (imports)": "_find_and_load",
    "config": "load (monitor/config.py",
    "fetch": "Fetcher.fetch (monitor/fetch.py",
    "parse": "parsed_items (monitor/poll.py",
    "normalise": "normalize_item (monitor/normalize.py",
    "compare": "compare (monitor/compare.py",
    "diff": "diff_versions (monitor/diff.py",
    "claim feeds": "Store.claim_due_feeds (storage/store.py",
    "record polls": "Store.record_polls (storage/store.py",
    "  compress blobs": "encode (storage/blobs.py",
    "record quiet polls": "Store.record_quiet_polls (storage/store.py",
}


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("bench/profile.py needs py-spy: pip install -e '.[bench]'")
    return found


def record(cmd: list[str], fmt: str, out: Path, rate: int) -> None:
    subprocess.run([py_spy(), "record", "--subprocesses", "--rate", str(rate), "--format", fmt,
                    "--output", str(out), "--", *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: one "frame;frame;... count" line per distinct stack."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        out.append((stack.split(";"), int(count)))
    return out


def table(samples: list[tuple[list[str], int]], top: int) -> list[str]:
    total = sum(n for _, n in samples) or 1
    stage = collections.Counter()
    leaf = collections.Counter()
    for frames, n in samples:
        for name, marker in STAGES.items():
            if any(marker in f for f in frames):
                stage[name] += n
        leaf[re.sub(r":\d+\)$", ")", frames[-1])] += n
    lines = ["| stage (inclusive) | share |", "|---|---:|"]
    lines += [f"| {name} | {100 * stage[name] / total:.1f}% |" for name in STAGES]
    lines += ["", "| on top of the stack (self) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * n / total:.1f}% |" for name, n in leaf.most_common(top)]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--rate", type=int, default=250, help="samples per second (py-spy --rate)")
    parser.add_argument("--top", type=int, default=15, help="rows of the self-time table")
    args = parser.parse_args()
    compile_checkout()
    OUT.mkdir(exist_ok=True)
    with Farm(args.feeds, args.items) as farm, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = feedwatch_config(work, farm.urls())
        cmd = [str(FEEDWATCH), "--config", str(config), "-q", "run", "--force"]
        db = work / "fw.db"
        for phase in ("cold", "warm"):
            if phase == "warm":
                farm.next_round()
            before = work / "before.db"
            if db.exists():
                shutil.copy(db, before)
            record(cmd, "flamegraph", OUT / f"{phase}.svg", args.rate)
            # The same cycle again, from the same database state, for the table.
            if before.exists():
                shutil.copy(before, db)
            else:
                db.unlink()
            record(cmd, "raw", work / f"{phase}.txt", args.rate)
            print(f"\n{phase} cycle, N={args.feeds} x {args.items} items: flame graph {OUT / (phase + '.svg')}\n")
            print("\n".join(table(stacks(work / f"{phase}.txt"), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
