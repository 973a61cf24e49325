"""`feedwatch diff` and `history` after replaying the whole corpus through a real HTTP server.

What a maintainer sees when a mentoring program is discontinued (steps 55 and 56: a move, with both
section paths, one line per move) and when the Code of Conduct is bumped (steps 36, 38, 44: summaries that
name the sections), and that `run --json` reports the same diff as `feedwatch diff`.
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    feedwatch_cmd,
    manifest,
    replay_corpus,
    run_cli,
)

MENTORING = "https://deploy-preview-670--kubernetes-contributor.netlify.app/community/mentoring/"
COC = "https://deploy-preview-670--kubernetes-contributor.netlify.app/community/code-of-conduct/"
CURRENT = ["Kubernetes Upstream Mentoring Programs", "Current mentoring activities:"]
DISCONTINUED = ["Kubernetes Upstream Mentoring Programs", "Discontinued activities:"]


class Replayed:
    """A database holding the whole replay, and the version each step produced of each document."""

    def __init__(self, config: Path, runs: list[dict[str, Any]]) -> None:
        self.config = config
        self.runs = runs
        self.versions: dict[tuple[int, str], int] = {}
        for step, out in enumerate(runs):
            for change in out["changes"]:
                self.versions[(step, change["document"])] = change["version"]

    def cli(self, *args: str) -> Any:
        result = run_cli("--config", str(self.config), *args)
        assert result.code == 0, result.err
        return result

    def diff(self, guid: str, step: int, fmt: str) -> Any:
        version = self.versions[(step, guid)]
        result = self.cli("diff", guid, "--from", str(version - 1), "--to", str(version), "--format", fmt)
        return result.json() if fmt == "json" else result.out


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    config, runs = replay_corpus(tmp_path_factory.mktemp("diff-cli"))
    return Replayed(config, runs)


def test_step_55_json_has_the_move_with_both_section_paths(replayed: Replayed) -> None:
    out = replayed.diff(MENTORING, 55, "json")
    assert {"text": "The 1:1 Hour", "from": CURRENT, "to": DISCONTINUED} in out["moves"]
    assert [s["path"] for s in out["sections"]] == [DISCONTINUED]          # only the new heading
    assert not any("1:1" in text for s in out["sections"] for _, text in s["ops"])


def test_step_56_json_has_the_move_and_its_edit(replayed: Replayed) -> None:
    out = replayed.diff(MENTORING, 56, "json")
    [move] = [m for m in out["moves"] if m["text"].startswith("Google Season of Docs")]
    assert move["from"] == CURRENT and move["to"] == DISCONTINUED
    assert move["text"] == "Google Season of Docs (2019-2024)"
    assert ["insert", " (2019-2024)"] in move["ops"]
    assert "(2019-2024)" in out["inserted"] and not any("Google" in d for d in out["deleted"])


@pytest.mark.parametrize("step, program", [(55, "The 1:1 Hour"), (56, "Google Season of Docs")])
def test_markdown_reads_one_line_per_move(replayed: Replayed, step: int, program: str) -> None:
    md = replayed.diff(MENTORING, step, "markdown")
    title, summary, *body = [line for line in md.splitlines() if line]
    assert title.startswith("**Community: Mentoring Programs and Resources")
    assert summary.startswith("_") and program in summary                  # the one-line summary says it too
    [line] = [line for line in body if program in line]
    assert line.startswith("\u27a1 Moved ")
    assert "from _Current mentoring activities_ to _Discontinued activities_" in line
    assert f"~~{program}" not in md and f"**{program}" not in md              # not a deletion + insertion


def test_text_format_off_a_terminal_uses_markers_and_names_the_move(replayed: Replayed) -> None:
    text = replayed.diff(MENTORING, 56, "text")
    assert "\x1b[" not in text                                            # run_cli's stdout is no TTY
    assert ("Moved \u201cTech Writers\u201d, \u201cGoogle Season of Docs{+ (2019-2024)+}\u201d from Current "
            "mentoring activities to Discontinued activities") in text


def test_html_format_escapes_and_styles_inline(replayed: Replayed) -> None:
    html = replayed.diff(MENTORING, 55, "html")
    assert "<em>Discontinued activities</em>" in html and "<style" not in html and "class=" not in html


def test_default_diff_is_the_last_two_versions(replayed: Replayed) -> None:
    latest = replayed.cli("diff", MENTORING, "--format", "json").json()
    version = replayed.versions[(56, MENTORING)]
    assert (latest["from"], latest["to"]) == (version - 1, version)


@pytest.mark.parametrize("step, expected", [
    (36, ["CNCF Community Code of Conduct v1.1", "Scope (new)", "Our Standards (new)"]),
    (38, ["CNCF Community Code of Conduct v1.2: heading \u201cv1.1\u201d \u2192 \u201cv1.2\u201d",
          "Reporting: 1 paragraph changed", "Enforcement: 1 paragraph changed"]),
    (44, ["CNCF Community Code of Conduct v1.3", "Community Code of Conduct", "Our Standards", "Amendments (new)"]),
])
def test_coc_bumps_have_summaries_that_name_the_sections(replayed: Replayed, step: int, expected: list[str]) -> None:
    history = replayed.cli("history", "--document", COC, "--json").json()
    [doc] = history["documents"]
    [entry] = [v for v in doc["versions"] if v["version"] == replayed.versions[(step, COC)]]
    for fragment in expected:
        assert fragment in entry["summary"]
    assert len(entry["summary"]) <= 200
    assert manifest()["steps"][step]["changed"] == [COC]


def test_run_json_reports_the_same_diff_as_the_diff_command(replayed: Replayed) -> None:
    [change] = replayed.runs[55]["changes"]
    out = replayed.diff(MENTORING, 55, "json")
    assert change["summary"] == out["summary"]
    assert change["sections"] == [" > ".join(DISCONTINUED)]
    assert (change["inserted"], change["deleted"]) == (out["inserted"], out["deleted"])


def _on_a_terminal(replayed: Replayed, env: dict[str, str]) -> str:
    """`feedwatch diff` as a real process whose stdout is a pseudo-terminal."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([*feedwatch_cmd(), "--config", str(replayed.config), "diff", MENTORING],
                              stdout=follower, stderr=subprocess.PIPE, timeout=60,
                              env={**os.environ, **env}, check=True)
        assert proc.returncode == 0
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:          # EIO: the terminal has no writer left
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)


def test_text_is_coloured_on_a_terminal_unless_no_color(replayed: Replayed) -> None:
    coloured = _on_a_terminal(replayed, {"NO_COLOR": "", "TERM": "xterm-256color"})
    assert "\x1b[32m{+ (2019-2024)+}\x1b[0m" in coloured
    assert "\x1b[1mCommunity: Mentoring Programs and Resources" in coloured     # the heading, in bold
    for env in ({"NO_COLOR": "1"}, {"NO_COLOR": "", "TERM": "dumb"}):
        plain = _on_a_terminal(replayed, env)
        assert "\x1b[" not in plain and "{+ (2019-2024)+}" in plain, env
