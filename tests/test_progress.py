"""Progress on a terminal only: a cold `run` of 200 local feeds on a pseudo-terminal shows feeds done,
changes and errors; the same run piped, with -q or with --json shows none."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.helpers import FeedServer, feedwatch_cmd, run_cli, write_config

FEEDS = 200
FAILING = 5
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
DEADLINE = 180          # a hang guard, not a timing assertion


def rss(i: int) -> str:
    items = "".join(f"<item><guid>g{i}-{j}</guid><title>Item {j}</title><description>&lt;p&gt;Text {i} {j}"
                    "&lt;/p&gt;</description></item>" for j in range(2))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>F{i}</title>{items}</channel></rss>'


@pytest.fixture
def farm(tmp_path: Path, server: FeedServer) -> Path:
    lines = ["database: sqlite:///fw.db", "feeds:"]
    for i in range(FEEDS):
        if i < FAILING:
            server.set(f"/f{i}.xml", "broken", status=500)
        else:
            server.set(f"/f{i}.xml", rss(i))
        lines.append(f"  - {{name: f{i}, url: '{server.url(f'/f{i}.xml')}'}}")
    return write_config(tmp_path / "farm.yaml", "\n".join(lines) + "\n")


def on_pty(*args: str) -> tuple[int, str]:
    """Run feedwatch with stdin, stdout and stderr on a pseudo-terminal of 120 columns; all it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*feedwatch_cmd(), *args], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:      # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=30), CONTROL.sub("\n", COLOUR.sub("", out.decode("utf-8", "replace")))


BAR = re.compile(r"polling\b.*?(\d+)/200 feeds\s+(\d+) changes, (\d+) errors")


def test_a_cold_run_on_a_terminal_shows_feeds_done_changes_and_errors(farm: Path) -> None:
    code, screen = on_pty("--config", str(farm), "run")
    assert code == 1, screen[-2000:]           # five feeds failed, the rest ran
    frames = [tuple(map(int, m.groups())) for m in BAR.finditer(screen)]
    assert frames, screen[-2000:]
    assert frames[-1] == (FEEDS, 2 * (FEEDS - FAILING), FAILING)
    assert any(0 < f[0] < FEEDS for f in frames)     # shown while the feeds were being polled
    assert max(frames) == frames[-1]


@pytest.mark.parametrize("how", ["piped", "json"])
def test_no_progress_when_piped_or_with_json(farm: Path, how: str) -> None:
    args = ["--config", str(farm), "run"]
    if how == "piped":
        proc = subprocess.run([*feedwatch_cmd(), *args], capture_output=True, text=True, timeout=DEADLINE,
                              env={**os.environ, "TERM": "xterm-256color"})
        code, screen = proc.returncode, proc.stdout + proc.stderr
        assert "f9: first poll: 2 documents recorded" in screen     # the run did run
    else:
        code, screen = on_pty(*args, "--json")
    assert code == 1
    assert "/200 feeds" not in screen and "polling" not in screen
    if how == "json":
        assert '"status": "error"' in screen


@pytest.mark.parametrize(("argv", "shown"), [(["run"], True), (["run", "-q"], False), (["run", "--json"], False),
                                             (["-q", "prune"], False)])
def test_progress_only_without_quiet_or_json_on_a_terminal(argv: list[str], shown: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import progress
    from monitor.cli import build_parser

    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        monkeypatch.setattr("sys.stderr", terminal)
        monkeypatch.setenv("TERM", "xterm")
        assert progress.wanted(build_parser().parse_args(argv)) is shown
        monkeypatch.setenv("TERM", "dumb")
        assert progress.wanted(build_parser().parse_args(argv)) is False
    os.close(master)


def test_long_history_commands_show_progress_on_a_terminal_only(tmp_path: Path, server: FeedServer) -> None:
    lines = [f"database: sqlite:///{tmp_path / 'h.db'}", "feeds:"]
    for i in range(15):                        # 30 documents: enough changes for a report's bar
        lines.append(f"  - name: f{i}\n    url: '{server.set(f'/f{i}.xml', rss(i))}'")
    config = write_config(tmp_path / "h.yaml", "\n".join(lines) + "\n")
    assert run_cli("--config", str(config), "run").code == 0
    history = tmp_path / "history.jsonl"
    shown = {
        "exporting": ["--config", str(config), "export", "--output", str(history)],
        "importing": ["--database", str(tmp_path / "imported.db"), "import", str(history)],
        "copying": ["--config", str(config), "db", "copy", "--to", str(tmp_path / "copy.db")],
        "report": ["--config", str(config), "report", "--output", str(tmp_path / "report.html")],
    }
    for word, args in shown.items():
        code, screen = on_pty(*args)
        assert code == 0, screen[-2000:]
        assert re.search(rf"{word}\b.*?\d+/(\d+|\?) (versions|rows|changes)", screen), (word, screen[-2000:])
    pruning = write_config(tmp_path / "prune.yaml", config.read_text(encoding="utf-8").replace(
        "    url:", "    retention: {versions: 2}\n    url:"))
    code, screen = on_pty("--config", str(pruning), "prune", "--dry-run")
    assert code == 0 and re.search(r"pruning\b.*?15/15 feeds", screen), screen[-2000:]
    piped = subprocess.run([*feedwatch_cmd(), "--config", str(config), "export"], capture_output=True, text=True,
                           timeout=DEADLINE)
    assert piped.returncode == 0 and "exporting" not in piped.stderr and piped.stdout.startswith('{"format"')
