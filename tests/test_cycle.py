"""`run` spread over poller processes (monitor.cycle.run_cycle) says exactly what one process says.

With many feeds to read, `run` forks a poller process per extra core; each polls the feeds it claims and
sends its outcomes to the parent, which prints the run's summary or its `run --json` document. Both are
compared byte for byte with a run of the same feeds in a single process, on a first run (every document a
silent baseline, some feeds failing) and on later ones (changed documents with their diffs).

Feeds polled before are expected to answer 304 unless their last poll found a change
(monitor.cycle.due_work): the second run, the first after the baselines, is polled by one process even
though every feed changed; the third, after those changes, by two.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from storage.store import Store
from tests.helpers import FeedServer, corpus_step, run_cli, run_process, write_config

FEEDS = 40   # run forks one more poller per 16 feeds to read (monitor.cycle.POOL_THRESHOLD), up to `processes`;
             # each claims at most 32 feeds at a time (concurrency 1), so the other poller gets some
MISSING = {7, 23}   # feeds answering 404


def serve(server: FeedServer, run: int) -> None:
    """Feed i serves corpus step i % 20 + 20 * run: a new step on every run (many changes)."""
    for i in range(FEEDS):
        if i not in MISSING:
            server.set(f"/feed/{i}.xml", corpus_step(i % 20 + 20 * run))


def config(tmp_path: Path, server: FeedServer, name: str, processes: int) -> str:
    feeds = "".join(f"  - {{name: feed-{i}, url: '{server.url(f'/feed/{i}.xml')}'}}\n" for i in range(FEEDS))
    path = write_config(tmp_path / f"{name}.yaml", f"database: sqlite:///{tmp_path / name}.db\n"
                        f"polling: {{processes: {processes}, concurrency: 1}}\nfeeds:\n{feeds}")
    return str(path)


def runs(tmp_path: Path, server: FeedServer, *output: str) -> list[tuple[str, str]]:
    """(single process, `processes: 2`) stdout of a first, second and third `run`."""
    one, two = config(tmp_path, server, "one", 1), config(tmp_path, server, "two", 2)
    printed = []
    for run, to_read, pollers in ((0, FEEDS, 2), (1, 0, 1), (2, FEEDS - len(MISSING), 2)):
        serve(server, run)
        single = run_process("--config", one, "-v", "run", "--force", *output)
        forked = run_process("--config", two, "-v", "run", "--force", *output)
        assert re.search(rf"to read={to_read} pollers=1$", single.err, re.M)
        forks = r" polled=[1-9][0-9]* here, [1-9][0-9]* by the others" if pollers == 2 else ""
        assert re.search(rf"due={FEEDS} to read={to_read} pollers={pollers}{forks}$", forked.err, re.M), forked.err
        assert (single.code, forked.code) == (1, 1), forked.err   # the missing feeds failed
        printed.append((single.out, forked.out))
    return printed


def test_run_json_from_two_poller_processes_is_byte_for_byte_the_single_process_document(
        tmp_path: Path, server: FeedServer) -> None:
    (first, first_forked), (second, second_forked), (third, third_forked) = runs(tmp_path, server, "--json")
    assert first_forked == first and second_forked == second and third_forked == third
    baseline, changed = json.loads(first), json.loads(third)
    assert [f["name"] for f in baseline["feeds"]] == sorted(f"feed-{i}" for i in range(FEEDS))
    assert {f["name"] for f in baseline["feeds"] if f["status"] == "error"} == {f"feed-{i}" for i in MISSING}
    assert len(baseline["changes"]) > FEEDS and all(c.get("baseline") for c in baseline["changes"])
    assert [c["feed"] for c in baseline["changes"]] == sorted(c["feed"] for c in baseline["changes"])
    assert any(c["kind"] == "changed" and c["inserted"] for c in changed["changes"])
    assert any(c["kind"] == "changed" for c in json.loads(second)["changes"])
    for out in (first, second, third):     # the document is json.dump's, indentation and all
        assert out == json.dumps(json.loads(out), ensure_ascii=False, indent=2) + "\n"


def test_run_summary_from_two_poller_processes_is_the_single_process_summary(
        tmp_path: Path, server: FeedServer) -> None:
    (first, first_forked), (second, second_forked), (third, third_forked) = runs(tmp_path, server)
    assert first_forked == first and second_forked == second and third_forked == third
    baselines = [line for line in first.splitlines() if "first poll: " in line]
    assert len(baselines) == FEEDS - len(MISSING) and first.count("\n") == len(baselines)
    assert any(": changed \u201c" in line for line in third.splitlines())


def test_new_settings_make_every_feed_one_to_read_again(tmp_path: Path, server: FeedServer) -> None:
    """A feed whose settings changed is read and normalised afresh (a silent re-baseline), so it counts
    as work however quietly its server answers: the cycle forks its pollers again."""
    serve(server, 0)
    two = config(tmp_path, server, "two", 2)
    assert re.search(rf"to read={FEEDS} pollers=2 ", run_process("--config", two, "-v", "run", "--force").err)
    quiet = run_process("--config", two, "-v", "run", "--force")
    assert re.search(rf"due={FEEDS} to read=0 pollers=1$", quiet.err, re.M), quiet.err
    text = Path(two).read_text(encoding="utf-8").replace("feeds:\n", "defaults: {ignore: ['Kubernetes']}\nfeeds:\n")
    write_config(Path(two), text)
    rebaselined = run_process("--config", two, "-v", "run", "--force")
    assert re.search(rf"due={FEEDS} to read={FEEDS - len(MISSING)} pollers=2 ", rebaselined.err), rebaselined.err


def test_a_run_reads_the_due_feeds_once(tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` without --force reads which feeds are due once, both to decide whether to poll and to size
    the cycle; --force makes every feed due first and reads them after that."""
    serve(server, 0)
    one = config(tmp_path, server, "one", 1)
    reads: list[int] = []
    due_feed_states = Store.due_feed_states
    monkeypatch.setattr(Store, "due_feed_states", lambda self, ids, now=None: reads.append(len(ids)) or
                        due_feed_states(self, ids, now))
    first = run_cli("--config", one, "-v", "run")
    assert first.code == 1 and reads == [FEEDS], first.err    # the missing feeds failed
    assert re.search(rf"run due={FEEDS} to read={FEEDS} pollers=1$", first.err, re.M), first.err
    reads.clear()
    assert run_cli("--config", one, "run").code == 0 and reads == [FEEDS]   # nothing due: nothing more read
    reads.clear()
    forced = run_cli("--config", one, "-v", "run", "--force")
    assert reads == [FEEDS] and re.search(rf"run due={FEEDS} to read=0 pollers=1$", forced.err, re.M), forced.err
