"""Broken files and typos (issue 13, issue 16 item 5): one line naming the file and what to do, never a
traceback. Exit 2 means "cannot run", 1 "a feed failed". Real files, real file-system limits, and
`feedwatch` as a subprocess where a crash must be observed."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import corpus_steps, feedwatch_cmd, run_cli, run_process, write_config

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "broken_files.yaml").read_text(encoding="utf-8"))
COMMANDS: list[list[str]] = CASES["commands"]


def feed_config(directory: Path, database: str = "fw.db") -> Path:
    feed = directory / "feed.xml"
    if not feed.exists():
        shutil.copy(corpus_steps()[54], feed)
    return write_config(directory / "feedwatch.yaml", f"database: sqlite:///{database}\n"
                        f"feeds:\n  - {{name: k8s, url: '{feed}'}}\n")


def make_file(path: Path, content: dict[str, Any], tmp_path: Path) -> None:
    if "random" in content:
        path.write_bytes(random.Random(16).randbytes(content["random"]))
    elif "text" in content:
        path.write_text(content["text"])
    elif "sql" in content:
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.executescript(content["sql"])
    else:
        real = tmp_path / "real"
        real.mkdir()
        config = feed_config(real)
        assert run_cli("--config", str(config), "run").code == 0
        with sqlite3.connect(real / "fw.db") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path.write_bytes((real / "fw.db").read_bytes()[:content["truncated"]])


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("kind", CASES["files"])
def test_a_broken_database_file_is_one_line_for_every_command(kind: str, tmp_path: Path) -> None:
    case = CASES["files"][kind]
    db = tmp_path / "fw.db"
    make_file(db, case["content"], tmp_path)
    before = db.read_bytes()
    config = feed_config(tmp_path)
    expected = f"feedwatch: storage: {db} {case['message']}"
    for args in COMMANDS:
        result = run_cli("--config", str(config), *args)
        assert (result.code, one_line(result.err)) == (2, expected), args
    check = run_cli("--config", str(config), "check")
    assert (check.code, check.out) == (2, "") and expected in check.err.splitlines()   # problems: stderr
    assert db.read_bytes() == before          # never "repaired" into a new, empty history
    crash = run_process("--config", str(config), "run")     # the real thing: no traceback on the way out
    assert (crash.code, one_line(crash.err)) == (2, expected)
    assert not (tmp_path / "copy.db").exists()


def test_feedwatch_never_leaves_an_empty_database_file(tmp_path: Path) -> None:
    """The zero-length refusal must never hit feedwatch's own new files: a new database appears under its
    name with its header written, so a first run killed at any point leaves no 0-byte file."""
    from storage.db import open_engine

    db = tmp_path / "state" / "fw.db"
    engine = open_engine(f"sqlite:///{db}")       # opening alone creates the file, header first
    engine.dispose()
    assert db.stat().st_size > 0
    assert sorted(p.name for p in db.parent.iterdir()) == ["fw.db"]     # no temporary file left behind
    assert run_cli("--database", str(db), "--config", str(feed_config(tmp_path)), "run").code == 0


# ---------------------------------------------------------------------------------------------- disk full


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_during_the_commit_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    config = feed_config(tmp_path)
    assert run_cli("--config", str(config), "run").code == 0
    history = run_cli("--config", str(config), "history", "--json").out
    shutil.copy(corpus_steps()[55], tmp_path / "feed.xml")          # a change to record
    proc = subprocess.run([*feedwatch_cmd(), "--config", str(config), "run", "--force"], capture_output=True, text=True,
                          timeout=60, preexec_fn=_file_size_limit(4096))
    line = one_line(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert line.startswith(f"feedwatch: storage: cannot write {tmp_path / 'fw.db'}: ") and "run again" in line
    assert run_cli("--config", str(config), "history", "--json").out == history     # nothing half-written
    after = run_cli("--config", str(config), "run", "--force", "--json")      # space is back: the change is recorded
    assert after.code == 0 and [c["kind"] for c in after.json()["changes"]] == ["changed"]


# ---------------------------------------------------------------------------------------------- read-only


NOBODY = 65534
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


def make_read_only(directory: Path, *, file_too: bool) -> None:
    """The directory (and the files in it, with `file_too`) read-only for the child of run_restricted.
    Root ignores file modes, so as root the files go to 'nobody' and the child loses the capabilities
    that override modes (it stays root otherwise: its interpreter may live under /root)."""
    for p in directory.iterdir():
        p.chmod(0o444 if file_too or p.suffix != ".db" else 0o666)
        if os.geteuid() == 0:
            os.chown(p, NOBODY, NOBODY)
    directory.chmod(0o555)
    if os.geteuid() == 0:
        os.chown(directory, NOBODY, NOBODY)


def _without_mode_override() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_restricted(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*feedwatch_cmd(), *args], capture_output=True, text=True, timeout=60,
                          preexec_fn=_without_mode_override if os.geteuid() == 0 else None)


READ_ONLY_COMMANDS = [["status"], ["history"], ["show", "1"], ["report"], ["history", "--json"], ["export"]]
WRITING_COMMANDS = [["run", "--force"], ["watch"]]


@pytest.mark.parametrize("what", ["directory", "file-and-directory"])
def test_read_only_commands_work_on_a_read_only_database(what: str, tmp_path: Path) -> None:
    shared_dir = tmp_path / "state"
    shared_dir.mkdir()
    config = feed_config(shared_dir)
    assert run_cli("--config", str(config), "run").code == 0
    shutil.copy(corpus_steps()[55], shared_dir / "feed.xml")
    assert run_cli("--config", str(config), "run", "--force").code == 0    # two versions: `diff 1` has work
    history = run_cli("--config", str(config), "history", "--json").json()
    changed = next(d["id"] for d in history["documents"] if len(d["versions"]) > 1)
    commands = [*READ_ONLY_COMMANDS, ["diff", str(changed)]]
    expected = {tuple(a): run_cli("--config", str(config), *a).out for a in commands}
    make_read_only(shared_dir, file_too=what == "file-and-directory")
    for args in commands:
        result = run_restricted("--config", str(config), *args)
        assert result.returncode == 0, (args, result.stderr)
        if args in (["report"], ["export"]):     # stamped with the time they were made
            assert len(result.stdout) > 1000 and "k8s" in result.stdout
        else:
            assert result.stdout == expected[tuple(args)], args
    for args in WRITING_COMMANDS:
        result = run_restricted("--config", str(config), *args)
        assert result.returncode == 2, (args, result.stderr)
        line = one_line(result.stderr)
        assert line.startswith(f"feedwatch: storage: {shared_dir / 'fw.db'} is read-only here") or \
            line.startswith(f"feedwatch: storage: cannot open {shared_dir / 'fw.db'}"), line


def test_an_unusable_state_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the state directory should be")
    config = write_config(tmp_path / "feedwatch.yaml", "feeds:\n  - {name: k8s, url: feed.xml}\n")
    result = run_process("--config", str(config), "run", env={"XDG_STATE_HOME": str(tmp_path / "state")})
    assert result.code == 2
    assert one_line(result.err) == (f"feedwatch: storage: cannot create the database directory "
                                    f"{tmp_path / 'state' / 'feedwatch'}: Not a directory (create it, or pass "
                                    "--database)")


# ---------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+psycopg//user:S3cretPW@db.example.org/feeds",
     "--database postgresql+psycopg//user:***@db.example.org/feeds: looks like a database URL but is not one"),
    ("postgresql:/user:S3cretPW@db.example.org/feeds",
     "--database postgresql:/user:***@db.example.org/feeds: looks like a database URL but is not one"),
    ("user:S3cretPW@db.example.org/feeds",
     "--database user:***@db.example.org/feeds: looks like a database URL but is not one"),
    ("postgresql+psycopg://user:S3cretPW@db.example.org:notaport/feeds",
     "storage: invalid database URL: postgresql+psycopg://user:***@db.example.org:notaport/feeds (port "
     "'notaport' is not a number)"),
])
@pytest.mark.parametrize("where", ["option", "config"])
def test_a_malformed_database_url_is_refused_with_the_password_masked(url: str, expected: str, where: str,
                                                                      tmp_path: Path) -> None:
    if where == "config" and expected.startswith("--database"):
        expected = "storage: invalid database URL: " + expected.split(" ", 1)[1].split(": looks")[0]
    feed = feed_config(tmp_path)
    config = write_config(tmp_path / "feedwatch.yaml", feed.read_text().replace(
        "database: sqlite:///fw.db", f"database: '{url}'" if where == "config" else ""))
    args = ["--database", url] if where == "option" else []
    for command in (["run"], ["status"], ["check"]):
        result = run_cli("--config", str(config), *args, *command)
        assert "S3cretPW" not in result.err + result.out
        assert "Traceback" not in result.err
        assert result.code == 2, (command, result.err)
        assert expected in (result.err + result.out), (command, result.err, result.out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.xml", "feedwatch.yaml"]    # no directory made


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(url: str, tmp_path: Path) -> None:
    """It was accepted: every run a first poll into a database gone when the command ended, nothing ever
    notified, exit 0."""
    config = feed_config(tmp_path)
    for command in (["run"], ["status"]):
        result = run_cli("--config", str(config), "--database", url, *command)
        assert result.code == 2 and one_line(result.err) == f"feedwatch: storage: {url} is an in-memory database, " \
            "gone when the command ends: every run would be a first poll; give a file (sqlite:///path/feedwatch.db)"
