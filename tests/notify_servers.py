"""Real local servers that receive notifications in tests: HTTP (apprise ``json://``),
SMTP (aiosmtpd, apprise ``mailto://``), and ports that refuse or never answer."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JsonSink:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self):
        self.received: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                sink.received.append({"path": self.path, **body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> JsonSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that accepts AUTH without TLS and keeps
    every message and every login it saw."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list = []      # email.message.EmailMessage
        self.recipients: list[list[str]] = []
        self.logins: list[tuple[str, str]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                sink.recipients.append(list(envelope.rcpt_tos))
                sink.messages.append(message_from_bytes(envelope.content,
                                                        policy=policy.default))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            sink.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=True)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_require_tls=False)

    def text(self, index: int = 0) -> str:
        """Subject and plain-text body of one message."""
        msg = self.messages[index]
        part = msg.get_body(preferencelist=("plain", "html"))
        return f"{msg['Subject']}\n{part.get_content()}"

    def __enter__(self) -> MailSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@contextlib.contextmanager
def closed_port():
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    yield free_port()


@contextlib.contextmanager
def silent_port():
    """A port that accepts TCP connections but never answers (a stuck server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]
