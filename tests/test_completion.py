"""Shell completion: scripts for bash, zsh and fish; a real bash completes commands, --format values and
feed names from the config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import feedwatch_cmd, run_process, write_config

CONFIG = """\
targets:
  chat: {urls: ["json://127.0.0.1:9/${MISSING_SECRET}"]}   # unset variables must not stop completion
feeds:
  - {name: k8s-community, url: "https://www.kubernetes.dev/community/index.xml"}
  - {name: k8s-blog, url: "https://kubernetes.io/feed.xml"}
  - {name: lwn, url: "https://lwn.net/headlines/rss"}
"""

SHELL_MARKS = {
    "bash": "complete -o nospace -o default -o bashdefault -F _python_argcomplete feedwatch",
    "zsh": "#compdef feedwatch",
    "fish": "complete --command feedwatch",
}


@pytest.mark.parametrize("shell", sorted(SHELL_MARKS))
def test_completion_script_generates_for_each_shell(shell: str) -> None:
    result = run_process("completion", shell)
    assert result.code == 0, result.err
    assert SHELL_MARKS[shell] in result.out
    if shutil.which(shell):          # bash is always here; zsh and fish where installed
        check = subprocess.run([shell, "-n"], input=result.out, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr


def complete(line: str, cwd: Path) -> list[str]:
    """What a real bash, with feedwatch's completion loaded, offers for `line` (the cursor at its end)."""
    bin_dir = str(Path(feedwatch_cmd()[0]).parent)
    script = r'''
source <(feedwatch completion bash)
COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
[[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}
_python_argcomplete feedwatch
printf '%s\n' "${COMPREPLY[@]}"
'''
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LINE": line}
    env.pop("MISSING_SECRET", None)
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


def test_bash_completes_feed_names_from_the_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "team.yaml", CONFIG)
    assert complete(f"feedwatch --config {cfg} run --feed k8s-", tmp_path) == ["k8s-community", "k8s-blog"]
    assert complete(f"feedwatch --config {cfg} history l", tmp_path) == ["lwn"]
    assert complete(f"feedwatch --config {cfg} notify-test c", tmp_path) == ["chat"]
    assert complete(f"feedwatch --config {cfg} deliveries retry --target c", tmp_path) == ["chat"]
    assert complete(f"feedwatch --config {cfg} deliveries retry --feed k8s-b", tmp_path) == ["k8s-blog"]


def test_bash_finds_the_config_as_feedwatch_does(tmp_path: Path) -> None:
    write_config(tmp_path / "feedwatch.yaml", CONFIG)            # ./feedwatch.yaml, no --config
    assert complete("feedwatch report --feed lw", tmp_path) == ["lwn"]


def test_bash_completes_commands_options_and_format_values(tmp_path: Path) -> None:
    assert complete("feedwatch op", tmp_path) == ["opml"]
    assert {"export", "import"} <= set(complete("feedwatch opml ", tmp_path))
    assert complete("feedwatch diff 3 --format ", tmp_path) == ["text", "markdown", "html", "json"]
    assert complete("feedwatch report --format a", tmp_path) == ["atom"]
    assert "--no-notify" in complete("feedwatch run --no", tmp_path)
