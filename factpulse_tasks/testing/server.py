"""A fake FactPulse HTTP server, for tests and demos.

It runs in a daemon thread on ``127.0.0.1`` (a free port) and answers over real HTTP,
so the code under test uses its normal HTTP client. Status answers are scripted per
task id (see :mod:`factpulse_tasks.testing.answers`); submissions get a new task id
and a default script. Standard library only.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from .answers import Answer
from .endpoints import FactPulseAPI, Reply, Submission, json_reply

__all__ = ["FakeFactPulse", "RequestRecord"]

#: Largest request body the fake reads; bigger ones get 413.
MAX_BODY_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received.

    ``route`` is ``"status"``, ``"submission"``, ``"token"`` or ``"unknown"``.
    ``status`` is the HTTP status the fake chose, ``None`` when it reset the
    connection. ``at`` is ``time.monotonic()`` on arrival. Credentials are never kept.
    """

    method: str
    path: str
    route: str
    task_id: str | None
    status: int | None
    at: float


class FakeFactPulse:
    """A scripted FactPulse server on ``127.0.0.1``.

    ``api_key`` is the accepted ``X-API-Key`` (``None``: only bearer tokens).
    ``username``/``password`` enable ``POST /api/token/`` (401 for everyone without
    them); its access tokens live ``token_lifetime`` seconds and are accepted as
    ``Authorization: Bearer``. ``latency`` seconds are added to every answer; it can be
    changed while the server runs.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        api_key: str | None = "test-key",
        *,
        username: str | None = None,
        password: str | None = None,
        token_lifetime: float = 1800.0,
        latency: float = 0.0,
    ) -> None:
        self.latency = float(latency)
        self._api = FactPulseAPI(
            api_key=api_key, username=username, password=password, token_lifetime=token_lifetime
        )
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._errors: list[str] = []
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self.max_in_flight = 0
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeFactPulse:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeFactPulse is already running")
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # bounds how long stop() waits
            name=f"FakeFactPulse:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; waiting answers are dropped. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeFactPulse:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; only while running."""
        if self._httpd is None:
            raise RuntimeError("FakeFactPulse is not running: call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_key(self) -> str | None:
        """The accepted ``X-API-Key``."""
        return self._api.api_key

    def script(self, task_id: str, *answers: Answer) -> None:
        """Answer the next status requests for ``task_id`` with ``answers``, in order.

        Each status request, on any status endpoint, consumes one answer; the last one
        then repeats for ever. Scripting a task again starts its new script from the top.
        Unscripted ids answer ``PENDING``. Raises ``ValueError`` without answers.
        """
        self._api.script(task_id, answers)

    def script_submissions(self, kind: str, *answers: Answer) -> None:
        """Script every later submission of ``kind`` with ``answers`` instead of the default.

        ``kind`` is ``"generation"``, ``"signature"`` or ``"validation"``. The default
        script is PENDING, STARTED, then the matching success; calling this without
        answers brings it back.
        """
        self._api.script_submissions(kind, answers)

    def script_until(self, task_id: str, finish_at: float, before: Answer, after: Answer) -> None:
        """Answer ``before`` for ``task_id`` until ``time.time()`` reaches ``finish_at``,
        then ``after`` for ever: a task that finishes at a set moment, however often
        it is polled."""
        self._api.script_until(task_id, finish_at, before, after)

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid, as if they had timed out."""
        self._api.tokens.expire_access_tokens()

    @property
    def submissions(self) -> list[Submission]:
        """A copy of the accepted submissions, oldest first."""
        return self._api.submissions

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected errors inside the fake (answered with HTTP 500)."""
        with self._lock:
            return list(self._errors)

    def status_calls(self, task_id: str | None = None) -> int:
        """How many status requests arrived, for ``task_id`` or for all tasks.

        Refused (401) requests count too: they are calls the client made.
        """
        with self._lock:
            return sum(
                1
                for record in self._records
                if record.route == "status" and (task_id is None or record.task_id == task_id)
            )

    def _enter(self, entering: bool) -> None:
        """Count the requests being answered at once (``max_in_flight``)."""
        with self._lock:
            self._in_flight += 1 if entering else -1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _record(self, method: str, path: str, reply: Reply, at: float) -> None:
        record = RequestRecord(method, path, reply.route, reply.task_id, reply.status, at)
        with self._lock:
            self._records.append(record)

    def _record_error(self) -> None:
        with self._lock:
            self._errors.append(traceback.format_exc())

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeFactPulse

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can be slow; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Quiet: a client that went away is normal here; anything else is kept for tests.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            self.fake._record_error()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end on their own
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # the client's delayed ACK add about 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, open_=False)

    def version_string(self) -> str:
        return "FakeFactPulse"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _read_body(self) -> bytes | Reply:
        if self.headers.get("Transfer-Encoding"):
            return json_reply(
                411,
                {"errorCode": "LENGTH_REQUIRED", "errorMessage": "Send a Content-Length"},
                close=True,
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            return json_reply(
                413,
                {"errorCode": "PAYLOAD_TOO_LARGE", "errorMessage": "Request body too large"},
                close=True,
            )
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        fake._enter(True)
        try:
            self._answer(method, fake)
        finally:
            fake._enter(False)

    def _answer(self, method: str, fake: FakeFactPulse) -> None:
        arrived = time.monotonic()
        path = urlsplit(self.path).path
        body = self._read_body()
        if isinstance(body, Reply):
            reply = body
        else:
            try:
                reply = fake._api.handle(method, path, self.headers, body)
            except Exception:
                fake._record_error()
                reply = json_reply(
                    500, {"errorCode": "INTERNAL_ERROR", "errorMessage": "FakeFactPulse failed"}
                )
        fake._record(method, path, reply, arrived)
        wait = fake.latency + reply.delay
        if (wait > 0 and fake._stopping.wait(wait)) or reply.reset:
            self._drop()
            return
        self.send_response(reply.status or 500)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(reply.body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection at once (RST) without sending anything."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
        except OSError:
            pass
