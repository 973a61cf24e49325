"""Engine setup and schema upgrades.

SQLite (the default) is opened in WAL mode with a busy timeout, and every writing transaction starts
with ``BEGIN IMMEDIATE``: with pysqlite's default a read-then-write transaction either loses updates or
fails at once with "database is locked" when another process writes (notes/libraries.md §5a). Reads
(``readonly=True``) use a plain ``BEGIN`` and never wait for a writer.

PostgreSQL goes through psycopg 3 with pre-ping, so a long-running worker survives a server restart.

The schema is managed by Alembic (storage/migrations). Checking whether an upgrade is needed reads the
``alembic_version`` table directly, so commands that find the schema current never import Alembic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from monitor.errors import SchemaTooNewError, StorageError

# Every migration revision, oldest first; tests check this against storage/migrations/versions.
REVISIONS = ("0001", "0002", "0003")
HEAD = REVISIONS[-1]
BUSY_TIMEOUT_S = 30
SQLITE_PAGE_SIZE = 2048   # for new files; existing files keep theirs (README, Storage)
_PG_MIGRATION_LOCK = 0x66656564  # "feed": serialises schema upgrades of workers starting together


def redact(url: str) -> str:
    """A database URL safe to print: the password is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def open_engine(url: str, *, readonly: bool = False, create_dir: bool = True) -> Engine:
    """An engine for `url` with the pragmas and transaction mode feedwatch relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"storage: invalid database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, readonly=readonly, create_dir=create_dir)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5,
                                 connect_args={"connect_timeout": 10, "application_name": "feedwatch"})
        except (ImportError, SQLAlchemyError) as exc:
            raise StorageError(f"storage: cannot use {redact(url)}: {exc} "
                               "(install feedwatch[postgresql] for psycopg)") from None
    raise StorageError(f"storage: unsupported database {redact(url)} (sqlite:/// or postgresql+psycopg://)")


def _sqlite_engine(url: str, database: str | None, *, readonly: bool, create_dir: bool) -> Engine:
    if database and database != ":memory:" and create_dir and not readonly:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None        # the sqlite3 module must not emit its own BEGIN
        cur = dbapi_conn.cursor()
        if not readonly:
            # Both take effect only when the file is new (before the first table). Incremental auto-vacuum
            # lets `prune` give space back without rewriting the whole file. Small pages: every table and
            # index takes at least one page, and most rows are far smaller than a page (README, Storage).
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA synchronous=NORMAL")   # durable at checkpoints; safe with WAL
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def upsert_insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT support for this connection's dialect. The dialect module is imported
    here, on use: importing SQLAlchemy's PostgreSQL dialects costs every SQLite user 25 ms of start-up."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: Engine) -> Path | None:
    return Path(engine.url.database) if is_sqlite(engine) and engine.url.database else None


def schema_revision(conn: Connection) -> str | None:
    """The database's Alembic revision, or None for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def schema_state(engine: Engine) -> str:
    """'current', 'empty', 'older' — or raises SchemaTooNewError / StorageError."""
    try:
        with engine.connect() as conn:
            rev = schema_revision(conn)
    except OperationalError as exc:
        raise StorageError(f"storage: cannot open {redact(str(engine.url))}: {_reason(exc)}") from None
    return _classify(rev)


def _classify(rev: str | None) -> str:
    if rev is None:
        return "empty"
    if rev == HEAD:
        return "current"
    if rev in REVISIONS:
        return "older"
    raise SchemaTooNewError(f"storage: database schema {rev} is newer than this feedwatch knows (up to {HEAD});"
                            " upgrade feedwatch")


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the schema, under a lock so that workers starting together do not race."""
    if schema_state(engine) == "current":
        return
    from alembic import command
    from alembic.config import Config

    try:
        with engine.begin() as conn:   # BEGIN IMMEDIATE on SQLite: one process migrates, others wait
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            if _classify(schema_revision(conn)) == "current":
                return
            cfg = Config()
            cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise StorageError(f"storage: cannot upgrade {redact(str(engine.url))}: {_reason(exc)}") from None


def _reason(exc: OperationalError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]


def worker_host() -> str:
    """The host part of lease owners: $FEEDWATCH_WORKER_ID, else the host name (a pod's name in Kubernetes)."""
    return os.environ.get("FEEDWATCH_WORKER_ID") or os.uname().nodename


def owner_id() -> str:
    """This process as a lease owner, "host:pid". Leases of dead pids of this host are freed at once; other
    hosts' leases are trusted until they expire."""
    return f"{worker_host()}:{os.getpid()}"
