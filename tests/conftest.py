"""Shared fixtures. Every test is offline: feeds come from a real HTTP server on 127.0.0.1 or files."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.helpers import CORPUS, FeedServer, empty_postgres
from tests.receivers import SMTPServer, Webhook

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


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps the mail it receives."""
    s = SMTPServer()
    yield s
    s.close()


@pytest.fixture
def hook() -> Iterator[Webhook]:
    """A webhook receiver on 127.0.0.1 that answers 200 and keeps what it was sent."""
    h = Webhook()
    yield h
    h.down()


# ---------------------------------------------------------------------------------------------- resources
# Tests that need PostgreSQL or Chromium skip *loudly* when those are missing, and fail instead in CI
# (FEEDWATCH_REQUIRE_ALL=1, set by .ci/run): nothing passes vacuously.

REQUIRE_ALL = os.environ.get("FEEDWATCH_REQUIRE_ALL") == "1"
_MISSING: dict[str, str] = {}
_UNAVAILABLE = re.compile(r"(?:Skipped: )?(?P<resource>[\w ]+?) unavailable: (?P<reason>.*)", re.S)
POSTGRES_URL = os.environ.get("FEEDWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def require(resource: str, reason: str) -> NoReturn:
    """Skip (loudly) or, in CI, fail: `resource` is needed and unavailable for `reason`."""
    if REQUIRE_ALL:
        pytest.fail(f"{resource} is required (FEEDWATCH_REQUIRE_ALL=1) but unavailable: {reason}")
    pytest.skip(f"{resource} unavailable: {reason}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the skips of require() from the reports, which reach the process that prints the summary
    whether tests run here or in pytest-xdist workers."""
    if (report.skipped and isinstance(report.longrepr, tuple)
            and (m := _UNAVAILABLE.fullmatch(str(report.longrepr[2])))):
        _MISSING[m["resource"]] = m["reason"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MISSING:
        return
    terminalreporter.write_sep("!", "SOME TESTS DID NOT RUN", red=True, bold=True)
    for resource, reason in _MISSING.items():
        terminalreporter.write_line(f"  {resource}: {reason}", red=True, bold=True)
    terminalreporter.write_line("  (see README, 'Running the tests'; CI sets FEEDWATCH_REQUIRE_ALL=1 and runs all)",
                                red=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this test session — for each pytest-xdist worker its
    own (a worker is a session of its own) — dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    try:
        import psycopg  # noqa: F401
    except ImportError:
        require("PostgreSQL", "psycopg is not installed (pip install -e '.[test]')")
    base = make_url(POSTGRES_URL)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"feedwatch_test_{worker}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        require("PostgreSQL", f"cannot reach {base.render_as_string(hide_password=True)} "
                f"({str(exc.orig).strip().splitlines()[0]}); set FEEDWATCH_TEST_POSTGRES_URL")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied for this test."""
    empty_postgres(postgres_server)
    yield postgres_server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedwatch.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
