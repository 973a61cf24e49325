"""One poll cycle over N feeds x 20 items, cold and warm: feedwatch side by side with the floors and urlwatch.

Everything runs here, in one run, against the same local farm (bench/farm.py, its own process):

* aiohttp fetch only, httpx fetch with 4 and with 50 requests in flight, httpx + feedparser (defaults):
  the floors (bench/floors.py);
* urlwatch 2.29 from PyPI, installed into its own virtual environment (bench/.venv-urlwatch) on first use:
  one `url` job per feed, its SQLite cache;
* changedetection.io from PyPI, in its own environment (bench/.venv-changedetection): one watch per feed,
  run in its batch mode (`-r all -b`: check everything once, then exit), private addresses allowed;
* feedwatch (this checkout, from the current environment): `feedwatch run` on a fresh SQLite database.

Cold = the first cycle (empty cache/database); warm = the next cycle after the farm edited 1% of the feeds.
Each tool runs as its own process under /usr/bin/time: wall time, CPU time (user+sys), peak RSS. Medians of
--repeat runs. Every tool runs from compiled bytecode, as installed software does (pip compiles the packages
it installs; this checkout's own modules are compiled first, since an environment with
PYTHONDONTWRITEBYTECODE would otherwise recompile them on every run). Then the ratios of issue 18 and
whether its targets hold (from the same run):

  cold <= urlwatch's cold cycle, warm <= 2 x the aiohttp fetch floor, peak RSS <= 150 MiB.

    python bench/cycle.py                 # N = 100 and 1000
    python bench/cycle.py --feeds 5000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from farm import Farm  # noqa: E402
from tables import print_markdown_table  # noqa: E402

BENCH_VENV = HERE / ".venv-urlwatch"
CD_VENV = HERE / ".venv-changedetection"
FEEDWATCH = Path(sys.executable).parent / "feedwatch"
TOOLS = ["aiohttp", "httpx4", "httpx50", "httpx-feedparser", "urlwatch", "changedetection", "feedwatch"]
LABELS = {"aiohttp": "aiohttp fetch only", "httpx4": "httpx fetch, 4 in flight", "httpx50": "httpx fetch, 50 in flight",
          "httpx-feedparser": "httpx + feedparser", "urlwatch": "urlwatch 2.29",
          "changedetection": "changedetection.io", "feedwatch": "feedwatch"}


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float


def bench_venv() -> Path:
    """A virtual environment with urlwatch 2.29, aiohttp, httpx and feedparser, made once."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print("creating bench/.venv-urlwatch (urlwatch 2.29, aiohttp, httpx, feedparser) ...", file=sys.stderr)
        venv.create(BENCH_VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "urlwatch==2.29", "aiohttp", "httpx",
                        "feedparser"], check=True)
    return python


def changedetection_venv() -> Path:
    """A virtual environment with changedetection.io, made once."""
    script = CD_VENV / "bin" / "changedetection.py"
    if not script.exists():
        print("creating bench/.venv-changedetection (changedetection.io) ...", file=sys.stderr)
        venv.create(CD_VENV, with_pip=True)
        subprocess.run([str(CD_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "changedetection.io"],
                       check=True)
    return script


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Sample:
    """Run `cmd` under GNU time; return wall, user+sys CPU and peak RSS."""
    fmt = "%e %U %S %M"
    proc = subprocess.run(["/usr/bin/time", "-f", fmt, "-o", str(cwd / "time.out"), *cmd], cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode not in (0, 1):   # 1: feedwatch/urlwatch report failures that are not ours to judge
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-500:]}")
    wall, user, system, rss_kib = (cwd / "time.out").read_text().split()[-4:]
    return Sample(float(wall), float(user) + float(system), int(rss_kib) / 1024)


def urlwatch_files(directory: Path, urls: list[str]) -> None:
    (directory / "urls.yaml").write_text("\n---\n".join(f"name: f{i}\nurl: {u}\n" for i, u in enumerate(urls)))
    (directory / "urlwatch.yaml").write_text(
        "display: {new: true, error: true, unchanged: false}\n"
        "report: {text: {details: true}, stdout: {enabled: true, color: false}}\n")


def feedwatch_config(directory: Path, urls: list[str]) -> Path:
    lines = [f"database: sqlite:///{directory / 'fw.db'}", "defaults: {interval: 1h}",
             "polling: {per_host: 4}   # the farm is one host; the fetch floors use 4 requests in flight", "feeds:"]
    lines += [f"  - {{name: f{i}, url: '{u}'}}" for i, u in enumerate(urls)]
    path = directory / "feedwatch.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def one_tool(tool: str, feeds: int, items: int, python: Path) -> tuple[Sample, Sample]:
    """A fresh farm, a cold cycle, one farm round, a warm cycle."""
    with Farm(feeds, items) as farm, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        urls = farm.urls()
        if tool == "feedwatch":
            config = feedwatch_config(work, urls)
            cmd = [str(FEEDWATCH), "--config", str(config), "-q", "run", "--force"]
        elif tool == "changedetection":
            store = str(work / "datastore")
            cold_cmd = [str(changedetection_venv()), "-d", store, "-C", "-l", "WARNING"]
            for u in urls:
                cold_cmd += ["-u", u]
            env = {"HOME": str(work), "ALLOW_IANA_RESTRICTED_ADDRESSES": "true"}
            cold = timed([*cold_cmd, "-r", "all", "-b"], work, env)
            farm.next_round()
            warm = timed([str(changedetection_venv()), "-d", store, "-l", "WARNING", "-r", "all", "-b"], work, env)
            return cold, warm
        elif tool == "urlwatch":
            urlwatch_files(work, urls)
            cmd = [str(python.parent / "urlwatch"), "--urls", "urls.yaml", "--config", "urlwatch.yaml",
                   "--cache", "cache.db"]
        else:
            (work / "urls.txt").write_text("\n".join(urls))
            cmd = [str(python), str(HERE / "floors.py"), tool, "urls.txt", "state.json"]
        env = {"HOME": str(work), "XDG_CONFIG_HOME": str(work), "XDG_CACHE_HOME": str(work)}
        cold = timed(cmd, work, env)
        farm.next_round()
        warm = timed(cmd, work, env)
        return cold, warm


def compile_checkout() -> None:
    """This checkout's modules as bytecode, as `pip install` leaves an installed package."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "monitor"), str(ROOT / "storage")],
                   check=True, stdout=subprocess.DEVNULL)


def measure(feeds: int, items: int, repeat: int, python: Path,
            tools: list[str]) -> dict[str, tuple[Sample, Sample]]:
    results: dict[str, tuple[Sample, Sample]] = {}
    if "feedwatch" in tools:
        compile_checkout()
    for tool in tools:
        runs = [one_tool(tool, feeds, items, python) for _ in range(repeat)]
        results[tool] = (median([r[0] for r in runs]), median([r[1] for r in runs]))
        print(f"  N={feeds} {tool}: cold {results[tool][0].wall:.2f} s, warm {results[tool][1].wall:.2f} s",
              file=sys.stderr, flush=True)
    return results


def median(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.wall for s in samples), statistics.median(s.cpu for s in samples),
                  statistics.median(s.rss_mib for s in samples))


def table(all_results: dict[int, dict[str, tuple[Sample, Sample]]]) -> list[list[str]]:
    tools = [t for t in TOOLS if any(t in results for results in all_results.values())]
    rows = [["N", "phase", *(LABELS[t] for t in tools)]]
    for n, results in all_results.items():
        for phase, idx in (("cold", 0), ("warm", 1)):
            rows.append([str(n), phase, *(cell(results[t][idx]) for t in tools)])
    return rows


def cell(s: Sample) -> str:
    return f"{s.wall:.2f} s, {s.cpu:.1f} s CPU, {s.rss_mib:.0f} MiB"


def verdicts(n: int, results: dict[str, tuple[Sample, Sample]]) -> list[str]:
    """Issue 18's targets, as ratios between tools of the same run."""
    if not {"feedwatch", "urlwatch", "aiohttp"} <= results.keys():
        return [f"N={n}: the ratios need feedwatch, urlwatch and aiohttp in --tools"]
    fw_cold, fw_warm = results["feedwatch"]
    uw_cold = results["urlwatch"][0]
    aio_warm = results["aiohttp"][1]
    rss = max(fw_cold.rss_mib, fw_warm.rss_mib)
    checks = [
        (f"cold {fw_cold.wall:.2f} s = {fw_cold.wall / uw_cold.wall:.2f} x urlwatch's cold cycle",
         fw_cold.wall <= uw_cold.wall, "<= 1"),
        (f"warm {fw_warm.wall:.2f} s = {fw_warm.wall / aio_warm.wall:.2f} x the aiohttp fetch floor",
         fw_warm.wall <= 2 * aio_warm.wall, "<= 2"),
        (f"peak RSS {rss:.0f} MiB", rss <= 150, "<= 150 MiB"),
    ]
    return [f"N={n}: {text} (target {target}): {'OK' if ok else 'MISSED'}" for text, ok, target in checks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", default="100,1000", help="comma-separated N values")
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated subset of: " + ", ".join(TOOLS))
    args = parser.parse_args()
    tools = [t for t in TOOLS if t in args.tools.split(",")]
    python = bench_venv()
    all_results = {}
    for n in (int(x) for x in args.feeds.split(",")):
        all_results[n] = measure(n, args.items, args.repeat, python, tools)
    print(f"\nOne poll cycle, N feeds x {args.items} items from a local farm, {os.cpu_count()} CPUs, "
          f"median of {args.repeat} (wall, CPU = user+sys, peak RSS)\n")
    print_markdown_table(table(all_results), left=2)
    print()
    for n, results in all_results.items():
        for line in verdicts(n, results):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
