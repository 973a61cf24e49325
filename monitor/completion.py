"""Shell completion for bash, zsh and fish (the one argcomplete importer).

`feedwatch completion SHELL` prints the script to load; the shell then runs feedwatch itself with
``_ARGCOMPLETE`` set for every completion, and :func:`autocomplete` answers from the argument parser:
subcommands, options, ``--format`` values (their ``choices``), and feed and target names read from the
config the command line names (or the usual config search), which is why argcomplete, with its dynamic
completers, was chosen over a static script generator. argcomplete is imported only in those two cases.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

SHELLS = ("bash", "zsh", "fish")


def active() -> bool:
    """Whether this process was started by a shell to complete a command line."""
    return "_ARGCOMPLETE" in os.environ


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Print the completions of the command line in the environment and exit (when `active`)."""
    import argcomplete

    argcomplete.autocomplete(parser)


def script(shell: str) -> str:
    """The completion script for `shell`, to be evaluated by it."""
    from argcomplete.shell_integration import shellcode

    return shellcode(["feedwatch"], shell=shell)


def feed_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """argcomplete completer: the names of the feeds in the config."""
    return _names(parsed_args, "feeds", prefix)


def target_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """argcomplete completer: the names of the notification targets in the config."""
    return _names(parsed_args, "targets", prefix)


def _names(parsed_args: argparse.Namespace, section: str, prefix: str) -> list[str]:
    from monitor import config

    path = config.find_config(getattr(parsed_args, "config", None))
    names = config.listed_names(path, section) if path is not None else []
    return [n for n in names if n.startswith(prefix)]
