"""Real parts for tests: a threaded HTTP feed server on 127.0.0.1 and ways to run the CLI."""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The Kubernetes community replay corpus, kept in the repository so that a fresh clone tests everything.
CORPUS = Path(os.environ.get("FEEDWATCH_CORPUS", REPO / "tests" / "fixtures" / "corpus"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = True                       # answer with an ETag and honour If-None-Match
    last_modified: str | None = None        # answer with Last-Modified and honour If-Modified-Since
    delay: float = 0.0                      # seconds before answering
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None   # full control (hostile servers)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    status: int
    at: float


class FeedServer:
    """A real HTTP server on 127.0.0.1 serving feeds from routes that tests change between polls."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True   # headers and body are separate writes: avoid 40 ms stalls

            def do_GET(self) -> None:
                server._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, body: bytes | str = b"", **kw: Any) -> str:
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self.routes[path] = Route(body=body, **kw)
        return self.url(path)

    def count(self, path: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for h in self.hits if (path is None or h.path == path)
                       and (status is None or h.status == status))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?", 1)[0]
        with self._lock:
            route = self.routes.get(path)
        status = route.status if route else 404
        if route and route.handler:
            self._log(path, req, status)
            route.handler(req)
            return
        if route and route.delay:
            time.sleep(route.delay)
        if route is None:
            self._send(req, 404, b"not found", {"Content-Type": "text/plain"})
            self._log(path, req, 404)
            return
        headers = {"Content-Type": route.content_type, **route.headers}
        etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"' if route.etag else None
        if etag:
            headers["ETag"] = etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        not_modified = status == 200 and (
            (etag is not None and req.headers.get("If-None-Match") == etag)
            or (etag is None and route.last_modified is not None
                and req.headers.get("If-Modified-Since") == route.last_modified))
        if not_modified:
            status = 304
        self._log(path, req, status)
        self._send(req, status, b"" if status == 304 else route.body, headers)

    def _log(self, path: str, req: BaseHTTPRequestHandler, status: int) -> None:
        with self._lock:
            self.hits.append(Hit(path, dict(req.headers.items()), status, time.monotonic()))

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            req.send_response(status)
            for k, v in headers.items():
                req.send_header(k, v)
            if status != 304:
                req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            if status != 304:
                req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `feedwatch ARGS` in this process (fast); stdout and stderr captured."""
    from monitor.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _environ(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def feedwatch_cmd() -> list[str]:
    """How to start feedwatch as a real subprocess (the console script of this environment)."""
    script = Path(sys.executable).parent / "feedwatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def run_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                cwd: Path | None = None) -> Result:
    proc = subprocess.run([*feedwatch_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rss(*items: tuple[str, str]) -> str:
    """An RSS 2.0 feed of (guid, text) items; each item's title is its guid in capitals."""
    body = "".join(f"<item><guid>{g}</guid><title>{g.upper()}</title><link>https://example.org/{g}</link>"
                   f"<description>&lt;p&gt;{text}&lt;/p&gt;</description></item>" for g, text in items)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{body}</channel></rss>"


def corpus_steps() -> list[Path]:
    return sorted((CORPUS / "k8s-community").glob("step_*.xml"))


def corpus_step(n: int) -> bytes:
    """The body of replay-corpus step `n`."""
    return corpus_steps()[n].read_bytes()


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / "k8s-community" / "manifest.json").read_text(encoding="utf-8"))
    return data


def corpus_documents(step: int) -> dict[str, tuple[str, str]]:
    """guid -> (title, canonical text) of the documents of one corpus step, through feedwatch's own parser
    and normaliser (as `run` stores them)."""
    from monitor.models import FetchResult, Validators
    from monitor.normalize import normalize_item
    from monitor.parse import parse

    url = "https://www.kubernetes.dev/community/index.xml"
    fetched = FetchResult(url=url, status=200, body=corpus_steps()[step].read_bytes(),
                          content_type="application/rss+xml", validators=Validators())
    items = [normalize_item(p, base=url) for p in parse("corpus", fetched).items]
    return {i.guid or "": (i.title, i.text) for i in items}


def big_document(size: int) -> str:
    """Canonical text of at least `size` characters: the corpus's last documents over and over, each copy's
    top heading numbered ("… (part 7)") so that every section path is different."""
    texts = [text for _, text in corpus_documents(len(corpus_steps()) - 1).values()]
    parts: list[str] = []
    total = 0
    while total < size:
        for text in texts:
            head, _, rest = text.partition("\n")
            parts.append(f"{head} (part {len(parts) + 1})\n{rest}")
            total += len(parts[-1]) + 1
    return "\n".join(parts)


def empty_postgres(url: str) -> None:
    """Drop everything in a PostgreSQL test database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def replay_corpus(directory: Path, database: str | None = None) -> tuple[Path, list[Any]]:
    """Replay all 60 corpus steps through one URL of a local server with `run --force --json`.

    Returns the config file written in `directory` and each step's `run --json` output."""
    server = FeedServer()
    try:
        url = server.set("/community/index.xml", corpus_steps()[0].read_bytes())
        database = database or f"sqlite:///{directory / 'fw.db'}"
        config = write_config(directory / "feedwatch.yaml",
                              f"database: {database}\nfeeds:\n  - name: k8s-community\n    url: {url}\n")
        runs = []
        for path in corpus_steps():
            server.set("/community/index.xml", path.read_bytes())
            result = run_cli("--config", str(config), "run", "--force", "--json")
            assert result.code == 0, result.err
            runs.append(result.json())
        return config, runs
    finally:
        server.close()


def sqlite_file_size(db: Path) -> int:
    """The SQLite file's size once its WAL is checkpointed into it."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return db.stat().st_size
