"""Files feedwatch writes (`report -o`, `export -o`, `opml export -o`, `run --metrics-file`, `opml import`
into the config) appear whole, and only a regular file is replaced (monitor/files.py): a symbolic link stays
a link to the file it names, and a named pipe (like a device, /dev/null or /dev/stdout) is written into as a
shell's `>` would. Replacing them broke links into web roots and, run as root, turned /dev/null into a file.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tests.helpers import FeedServer, rss, run_cli, write_config

OUTPUTS = {
    "report": ("report", "-o"),
    "report-markdown": ("report", "--format", "markdown", "-o"),
    "export": ("export", "-o"),
    "opml": ("opml", "export", "-o"),
    "metrics": ("run", "--force", "--metrics-file"),
}
EXPECTED = {"report": b"<!DOCTYPE html>", "report-markdown": b"# ", "export": b'{"', "opml": b"<?xml",
            "metrics": b"# HELP"}


@pytest.fixture
def cfg(tmp_path: Path, server: FeedServer) -> Path:
    server.set("/f.xml", rss(("a", "<p>First text.</p>"), ("b", "<p>Second text.</p>")))
    path = write_config(tmp_path / "feedwatch.yaml", f"database: sqlite:///{tmp_path / 'fw.db'}\n"
                        f"feeds:\n  - {{name: f, url: '{server.url('/f.xml')}'}}\n")
    assert run_cli("--config", str(path), "run").code == 0
    return path


@pytest.mark.parametrize("what", OUTPUTS)
def test_a_named_pipe_is_written_into_not_replaced(what: str, cfg: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run_cli("--config", str(cfg), *OUTPUTS[what], str(fifo))
    reader.join(timeout=30)
    assert result.code == 0, result.err
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the pipe was replaced by a file"
    assert got and got[0].startswith(EXPECTED[what]), got
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("what", OUTPUTS)
def test_a_symbolic_link_stays_a_link_and_its_file_is_replaced(what: str, cfg: Path, tmp_path: Path) -> None:
    published = tmp_path / "www" / "index.out"
    published.parent.mkdir()
    published.write_bytes(b"old")
    published.chmod(0o644)
    link = tmp_path / "link.out"
    link.symlink_to(published)
    result = run_cli("--config", str(cfg), *OUTPUTS[what], str(link))
    assert result.code == 0, result.err
    assert link.is_symlink() and link.resolve() == published.resolve()
    assert published.read_bytes().startswith(EXPECTED[what])
    assert stat.S_IMODE(published.stat().st_mode) == 0o644       # the replaced file keeps its mode


def test_opml_import_into_a_linked_config_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "dotfiles").mkdir()
    real = write_config(tmp_path / "dotfiles" / "feedwatch.yaml",
                        f"database: sqlite:///{tmp_path / 'fw.db'}\nfeeds:\n  - {{name: a, url: 'http://a.example/f'}}\n")
    real.chmod(0o600)
    link = tmp_path / "feedwatch.yaml"
    link.symlink_to(real)
    opml = tmp_path / "in.opml"
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><body>'
                    '<outline text="b" xmlUrl="http://b.example/f"/></body></opml>', encoding="utf-8")
    result = run_cli("--config", str(link), "opml", "import", str(opml))
    assert result.code == 0, result.err
    assert link.is_symlink() and "http://b.example/f" in real.read_text(encoding="utf-8")
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
