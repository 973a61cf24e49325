"""Real notification receivers on 127.0.0.1: an SMTP server (aiosmtpd) and a webhook receiver."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd on a free port (Controller(port=0) is broken in 1.4.6, so a port is picked first)."""

    def __init__(self) -> None:
        self.sink = _Sink()
        self.port = free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "steering@example.org", user: str = "") -> str:
        auth = f"{user}@" if user else ""
        return (f"mailto://{auth}example.org?smtp=127.0.0.1&port={self.port}&mode=insecure"
                f"&from=feedwatch@example.org&to={to}")

    @property
    def messages(self) -> list[EmailMessage]:
        return self.sink.messages

    def close(self) -> None:
        self.controller.stop()


@dataclass
class Webhook:
    """Receives POSTs; `status` answers each one (500 to fail); `down()` closes the port entirely."""

    status: int = 200
    delay: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                hook.bodies.append(body)
                hook.headers.append(dict(self.headers.items()))
                if hook.delay:
                    time.sleep(hook.delay)
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str = "/hook", user: str = "") -> str:
        auth = f"{user}@" if user else ""
        return f"json://{auth}127.0.0.1:{self.port}{path}"
