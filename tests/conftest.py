"""Shared fixtures. Every test is offline: feeds come from a real HTTP server on 127.0.0.1 or files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CORPUS, FeedServer

# Tests must never read the developer's own config or state.
for var in ("FEEDWATCH_CONFIG", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "STATE_DIRECTORY"):
    os.environ.pop(var, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not (CORPUS / "k8s-community" / "manifest.json").exists():
        raise pytest.UsageError(f"the replay corpus is missing at {CORPUS} (set FEEDWATCH_CORPUS)")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a real config or state directory, and relative paths land in tmp_path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    s = FeedServer()
    yield s
    s.close()
