"""How throughput grows with workers on PostgreSQL: 1, 2, 3, 4 `feedwatch run` processes sharing one database.

For each worker count: a fresh PostgreSQL database, the farm's N feeds all due, k `feedwatch run`
processes started together (they split the due feeds between them through leases). Measured: the wall
time until all have exited, for a cold cycle (every feed new: fetched, parsed, normalised, stored) and a
warm cycle (every feed due again after one farm round: 304s and a few changed feeds). Prints a table.

    python bench/pg_workers.py [--feeds 600] [--items 20] [--workers 1,2,3,4]

Needs PostgreSQL (FEEDWATCH_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test,
used to create and drop one database per measurement) and `feedwatch` installed in this environment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from farm import Farm

ADMIN_URL = os.environ.get("FEEDWATCH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FEEDWATCH = str(Path(sys.executable).parent / "feedwatch")


def fresh_database() -> tuple[str, str]:
    base = make_url(ADMIN_URL)
    name = f"feedwatch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, base.set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    admin = create_engine(make_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def write_config(directory: Path, url: str, feed_urls: list[str]) -> Path:
    # One process per worker (polling.processes: 1), so that k workers use k processes.
    lines = [f"database: {url}", "polling: {concurrency: 8, per_host: 8, processes: 1}", "defaults: {interval: 1h}",
             "feeds:"]
    lines += [f"  - {{name: f{i}, url: '{u}'}}" for i, u in enumerate(feed_urls)]
    path = directory / "feedwatch.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cycle(config: Path, workers: int) -> float:
    started = time.perf_counter()
    procs = [subprocess.Popen([FEEDWATCH, "--config", str(config), "-q", "run"], stdout=subprocess.DEVNULL)
             for _ in range(workers)]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return elapsed


def measure(feeds: int, items: int, workers: int) -> tuple[float, float]:
    name, url = fresh_database()
    try:
        with Farm(feeds, items) as farm, tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), url, farm.urls())
            subprocess.run([FEEDWATCH, "--config", str(config), "check"], check=True, stdout=subprocess.DEVNULL)
            engine = create_engine(url)
            cold = cycle(config, workers)
            farm.next_round()
            with engine.begin() as conn:
                conn.execute(text("UPDATE feeds SET next_due_at = now() AT TIME ZONE 'utc'"))
                polled = conn.execute(text("SELECT count(*) FROM feeds WHERE polls = 1")).scalar()
            engine.dispose()
            if polled != feeds:
                raise SystemExit(f"cold cycle polled {polled} of {feeds} feeds")
            warm = cycle(config, workers)
            return cold, warm
    finally:
        drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=600)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--workers", default="1,2,3,4")
    args = parser.parse_args()
    print(f"PostgreSQL, {args.feeds} feeds x {args.items} items, {os.cpu_count()} CPUs\n")
    print("| workers | cold s | cold feeds/s | warm s | warm feeds/s |")
    print("|---:|---:|---:|---:|---:|")
    for k in (int(x) for x in args.workers.split(",")):
        cold, warm = measure(args.feeds, args.items, k)
        print(f"| {k} | {cold:.2f} | {args.feeds / cold:.0f} | {warm:.2f} | {args.feeds / warm:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
