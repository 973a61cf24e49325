"""Engine setup and schema upgrades.

SQLite (the default) is opened in WAL mode with a busy timeout, and every writing transaction starts
with ``BEGIN IMMEDIATE``: with pysqlite's default a read-then-write transaction either loses updates or
fails at once with "database is locked" when another process writes (notes/libraries.md §5a). Reads
(``readonly=True``) use a plain ``BEGIN`` and never wait for a writer.

PostgreSQL goes through psycopg 3 with pre-ping, so a long-running worker survives a server restart.

The schema is managed by Alembic (storage/migrations). Checking whether an upgrade is needed reads the
``alembic_version`` table directly, so commands that find the schema current never import Alembic, and a
new, empty SQLite file gets storage.schema's tables stamped at the head revision without it
(:func:`_create_fresh`; a test checks that this is the schema the migrations build).

Errors: every database error an engine raises is translated here, once, into feedwatch's own
(:func:`storage_error`, installed as the engine's ``handle_error`` hook): StorageUnavailable for what
may pass (server down, locked, disk full, read-only), StorageDataError for one statement refused for its
data, StorageError for a file that is not a usable database. Each is one line naming the file (or the
masked URL) and what to do. No SQLAlchemy exception leaves the storage package.

Broken files: a zero-length file is refused rather than silently made a new database (it is far more
often a truncated or failed copy of a history than a deliberate start); feedwatch itself never leaves
one, because a new database file appears under its name only once its header is written.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)

from monitor.errors import SchemaTooNewError, StorageDataError, StorageError, StorageUnavailable
from monitor.humanize import first_line

# Every migration revision, oldest first; tests check this against storage/migrations/versions.
REVISIONS = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]
BUSY_TIMEOUT_S = 30
SQLITE_PAGE_SIZE = 2048   # for new files; existing files keep theirs (README, Storage)
_PG_MIGRATION_LOCK = 0x66656564  # "feed": serialises schema upgrades of workers starting together


# A value that is meant as a server URL but is not one ("postgresql+psycopg//u:pw@h/db", "postgres:/h/db",
# "user:pw@host/db"): never to be taken for a relative SQLite file name.
_URLISH = re.compile(r"(?i)^(postgres(ql)?|sqlite|mysql|mariadb)(\+\w+)?(:|//)|^\w+\+\w+/|:[^/@\s]*@")
_PASSWORD = re.compile(r"(:)[^:/@\s]*(@)")


def mask_text(value: str) -> str:
    """Any text that may hold a URL's user:password@, with the password masked (for unparseable URLs)."""
    return _PASSWORD.sub(r"\1***\2", value)


def redact(url: str) -> str:
    """A database URL safe to print: the password is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_text(url)


def looks_like_url(value: str) -> bool:
    """True for a --database value without "://" that is a mistyped server URL rather than a file path."""
    return _URLISH.search(value) is not None


def open_engine(url: str, *, readonly: bool = False, create_dir: bool = True) -> Engine:
    """An engine for `url` with the pragmas and transaction mode feedwatch relies on."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:" or "mode=memory" in parsed.database:
            raise StorageError(f"storage: {mask_text(url)} is an in-memory database, gone when the command ends: "
                               "every run would be a first poll; give a file (sqlite:///path/feedwatch.db)")
        engine = _sqlite_engine(url, parsed.database, readonly=readonly, create_dir=create_dir)
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5,
                                   connect_args={"connect_timeout": 10, "application_name": "feedwatch"})
        except (ImportError, SQLAlchemyError) as exc:
            raise StorageError(f"storage: cannot use {redact(url)}: {exc} "
                               "(install feedwatch[postgresql] for psycopg)") from None
    else:
        raise StorageError(f"storage: unsupported database {redact(url)} (sqlite:/// or postgresql+psycopg://)")
    where = parsed.database if engine.dialect.name == "sqlite" and parsed.database else redact(url)

    @event.listens_for(engine, "handle_error")
    def _translate(context: ExceptionContext) -> None:
        if not context.is_pre_ping and isinstance(context.sqlalchemy_exception, DBAPIError):
            raise storage_error(context.sqlalchemy_exception, where)

    return engine


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018  (the port is parsed lazily: "host:notaport" fails here, not later)
    except ArgumentError:
        raise StorageError(f"storage: invalid database URL: {mask_text(url)} (expected e.g. "
                           "sqlite:///path/feedwatch.db or postgresql+psycopg://user@host/db)") from None
    except ValueError as exc:
        raise StorageError(f"storage: invalid database URL: {mask_text(url)} ({_value_reason(exc)})") from None
    return parsed


def _value_reason(exc: ValueError) -> str:
    match = re.search(r"invalid literal for int\(\) with base 10: '(.*)'", str(exc))
    return f"port '{match.group(1)}' is not a number" if match else first_line(str(exc))


def storage_error(exc: DBAPIError, where: str) -> StorageError:
    """feedwatch's own error for a database error: one line naming `where` and what to do."""
    reason = _reason(exc)
    # PostgreSQL classes 22 (data exception), 23 (integrity) and 54 (program limit exceeded: e.g. an index
    # row too big for a huge guid) are about one statement's data, not about the database.
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    if isinstance(exc, (DataError, IntegrityError)) or sqlstate[:2] in ("22", "23", "54"):
        return StorageDataError(f"storage: {where} refused the data: {reason}", reason)
    # Connection lost, out of resources (disk full), shutting down, a deadlock, or a server that is read-only
    # for now (a standby during a failover): all may pass.
    if sqlstate[:2] in ("08", "40", "53", "57") or sqlstate == "25006":
        return StorageUnavailable(f"storage: {where}: {reason}")
    # The tables went away under a running process (the database was dropped and created again, or is being
    # restored): `watch` waits for them rather than exit or set up a new history over a restore.
    if sqlstate == "42P01" or reason.startswith("no such table"):
        return StorageUnavailable(f"storage: {where} has lost feedwatch's tables ({reason}): restore it from a "
                                  "backup, or run `feedwatch run` to start a new history in it")
    code = getattr(exc.orig, "sqlite_errorname", "") or ""
    if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or code.startswith("SQLITE_CORRUPT"):
        return StorageError(f"storage: {where} is not a usable feedwatch database ({reason}): restore it from a "
                            "backup, or move it away to start a new history (or pass --database)")
    if code == "SQLITE_FULL":
        return StorageUnavailable(f"storage: cannot write {where}: the disk is full; free some space and run "
                                  "again (nothing already stored is lost)")
    if code.startswith("SQLITE_IOERR"):
        return StorageUnavailable(f"storage: cannot write {where}: {reason} (disk full, a file-size limit or a "
                                  "failing disk?); fix that and run again (nothing already stored is lost)")
    if code.startswith("SQLITE_READONLY"):
        return StorageUnavailable(f"storage: {where} is read-only here ({reason}): this command needs write "
                                  "access to the file and its directory (status, history, show, diff and "
                                  "report work read-only)")
    if code.startswith("SQLITE_CANTOPEN"):
        return StorageUnavailable(f"storage: cannot open {where}: {reason} (does its directory exist, and may "
                                  "this user write there?)")
    if isinstance(exc, (OperationalError, InterfaceError)):
        return StorageUnavailable(f"storage: {where}: {reason}")
    return StorageError(f"storage: {where}: {reason}")


def _sqlite_engine(url: str, database: str | None, *, readonly: bool, create_dir: bool) -> Engine:
    path = Path(database) if database and database != ":memory:" and not database.startswith("file:") else None
    if path is not None:
        _check_file(path)
        if create_dir and not readonly:
            _make_dir(path.parent)
            _create_sqlite(path)
    if readonly and path is not None:
        engine = create_engine(url, creator=lambda: _connect_readonly(path))
    else:
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    opened: set[Path] = set()   # once a connection was made, a missing file is one deleted meanwhile

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None        # the sqlite3 module must not emit its own BEGIN
        cur = dbapi_conn.cursor()
        if path is not None:        # nothing is read from or changed in another program's database
            record.info["file"] = _file_id(path)
            opened.add(path)
            tables = [r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if tables and "alembic_version" not in tables:
                raise _foreign(path, tables)
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

    if path is not None and not readonly:
        @event.listens_for(engine, "do_connect")
        def _existing_only(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
            # The file exists (_create_sqlite): a connection opens it, never creates an empty one in its place.
            if opened and _file_id(path) is None:
                raise _deleted(path)
            cargs[:] = ["file:" + quote(str(path.absolute())) + "?mode=rw"]
            cparams["uri"] = True

    if path is not None:
        @event.listens_for(engine, "checkout")
        def _same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            """A connection kept open would go on writing to a file deleted or replaced meanwhile (`watch`
            runs for months), where nothing can read it: it is dropped instead, and a replaced file opened
            anew; a deleted one is reported (StorageUnavailable) until it is back, never created empty."""
            now = _file_id(path)
            if now is None:
                raise _deleted(path)
            if record.info.get("file") != now:
                raise DisconnectionError(f"{path} was replaced", invalidate_pool=True)

    return engine


def _deleted(path: Path) -> StorageUnavailable:
    return StorageUnavailable(f"storage: {path} was deleted while feedwatch was using it: restore it from a "
                              "backup, or run `feedwatch run` to start a new history")


def _file_id(path: Path) -> tuple[int, int] | None:
    """Which file `path` names now (device, inode), or None when there is none."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:       # its directory made unreadable meanwhile, say
        raise StorageUnavailable(f"storage: cannot reach {path}: {exc.strerror or exc}") from None
    return st.st_dev, st.st_ino


def _check_file(path: Path) -> None:
    try:
        empty = path.is_file() and path.stat().st_size == 0
    except OSError:
        return                     # reported by SQLite when it tries to open it
    if empty:
        raise StorageError(f"storage: {path} is an empty file (0 bytes), not a feedwatch database: if it should "
                           "hold a history, restore it from a backup; to start a new one, delete it")


def _make_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"storage: cannot create the database directory {directory}: "
                           f"{exc.strerror or exc} (create it, or pass --database)") from None


def _create_sqlite(path: Path) -> None:
    """A new SQLite file appears under its name with its header already written (never 0 bytes, which
    _check_file refuses): it is made under a temporary name, then linked into place if still absent."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))    # mode as SQLite's own (umask)
    except OSError:
        return                     # SQLite reports the directory in its own words (SQLITE_CANTOPEN)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA user_version=0")     # writes the header
        finally:
            conn.close()
        os.link(tmp, path)
    except FileExistsError:
        pass                       # another process created it meanwhile: use theirs
    except (OSError, sqlite3.Error) as exc:
        raise StorageUnavailable(f"storage: cannot create {path}: {exc} (free some space, or pass "
                                 "--database)") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A reading connection, also where this user may not write: a WAL database normally needs its
    ``-shm`` file created or writable. Tried in order: normally, ``mode=ro`` (reads a writer's ``-shm``
    without writing it) and, only when no writer's ``-wal`` exists (so the file alone is the whole
    database), ``immutable=1``."""
    uri = "file:" + quote(str(path.absolute()))
    modes = ["", "?mode=ro"] + ([] if Path(f"{path}-wal").exists() else ["?immutable=1"])
    for i, mode in enumerate(modes):
        conn = sqlite3.connect(uri + mode, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if i == len(modes) - 1 or getattr(exc, "sqlite_errorname", "").split("_")[1:2] not in (
                    ["READONLY"], ["CANTOPEN"]):
                raise
    raise AssertionError("unreachable")


def upsert_insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT support for this connection's dialect. The dialect module is imported
    here, on use: importing SQLAlchemy's PostgreSQL dialects costs every SQLite user 25 ms of start-up."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table)


def _foreign(path: Path, tables: list[str]) -> StorageError:
    names = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
    return StorageError(f"storage: {path} is another program's SQLite database (tables {names}; no feedwatch "
                        "schema): feedwatch will not add its tables to it; give it a file of its own")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: Engine) -> Path | None:
    return Path(engine.url.database) if is_sqlite(engine) and engine.url.database else None


def schema_revision(conn: Connection) -> str | None:
    """The database's Alembic revision, or None for an empty database. (A SQLite file holding another
    program's tables is refused when it is opened: see _sqlite_engine; a PostgreSQL database may well be
    shared with other applications' tables.)"""
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def schema_state(engine: Engine) -> str:
    """'current', 'empty', 'older' — or raises SchemaTooNewError / StorageError."""
    with engine.connect() as conn:
        rev = schema_revision(conn)
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
    if is_sqlite(engine) and _create_fresh(engine):
        return
    migrate(engine)


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema with Alembic, to HEAD, under the same lock."""
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:   # BEGIN IMMEDIATE on SQLite: one process migrates, others wait
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        if _classify(schema_revision(conn)) == "current":
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# What Alembic creates to record the revision (alembic.runtime.migration), and what it writes into it.
_ALEMBIC_VERSION = ("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")


def _create_fresh(engine: Engine) -> bool:
    """An empty SQLite database gets the whole schema from storage.schema, stamped at HEAD, in one
    transaction, without importing and running Alembic (a third of a second of every first run).
    tests/test_storage.py checks that this is exactly the schema the migrations build. False when the
    database is not empty after all (another process created it meanwhile, or it holds other tables):
    then Alembic decides."""
    from storage.schema import metadata

    with engine.begin() as conn:     # BEGIN IMMEDIATE: one process creates, the others wait and see it
        if inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        conn.exec_driver_sql(_ALEMBIC_VERSION)
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD})
    return True


def _reason(exc: DBAPIError) -> str:
    text_ = str(exc.orig).strip() if exc.orig is not None else str(exc)
    return mask_text((text_.splitlines() or [type(exc.orig or exc).__name__])[0])


def worker_host() -> str:
    """The host part of lease owners: $FEEDWATCH_WORKER_ID, else the host name (a pod's name in Kubernetes)."""
    return os.environ.get("FEEDWATCH_WORKER_ID") or os.uname().nodename


def owner_id() -> str:
    """This process as a lease owner, "host:pid". Leases of dead pids of this host are freed at once; other
    hosts' leases are trusted until they expire."""
    return f"{worker_host()}:{os.getpid()}"
