"""HTTP access to FactPulse: one pooled session, authentication, timeouts, a size cap.

Every failure is turned into a :class:`~factpulse_tasks.exceptions.TransportError`
subclass that says whether asking again can help, or a
:class:`~factpulse_tasks.exceptions.PayloadError` for a body that is not a JSON
object. No message ever holds a credential.
"""

from __future__ import annotations

import email.utils
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import requests.adapters

from . import __version__
from .auth import TOKEN_PATH, ApiKeyAuth, TokenAuth, shared_token_auth
from .conf import app_settings
from .exceptions import (
    AuthenticationError,
    EndpointNotFound,
    PayloadError,
    PermanentError,
    SubmissionRejected,
    TransientError,
    TransportError,
)
from .payloads import decode_json, decode_text

USER_AGENT = f"factpulse-tasks/{__version__}"
# Most threads waiting on FactPulse at once in one process (calls past their
# deadline included, until the server lets them go).
MAX_FETCH_THREADS = 256
_CHUNK = 256 * 1024
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
Auth = ApiKeyAuth | TokenAuth


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class FactPulseClient:
    """A small FactPulse client: task status calls, submissions, and their authentication.

    Build it with :meth:`from_settings`; it keeps one ``requests.Session`` so
    connections are reused, with a connection pool of ``pool_size``. The
    threads of one polling cycle share it. ``auth`` is an
    :class:`~factpulse_tasks.auth.ApiKeyAuth` (made from ``api_key`` when not
    given) or a :class:`~factpulse_tasks.auth.TokenAuth`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        auth: Auth | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        total_timeout: float = 120.0,
        max_response_bytes: int = 128 * 1024 * 1024,
        session: requests.Session | None = None,
        pool_size: int = 1,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if auth is None:
            if not api_key:
                raise ValueError("FactPulseClient needs an api_key or an auth")
            auth = ApiKeyAuth(api_key)
        self.auth = auth
        self.timeout = (connect_timeout, read_timeout)
        self.total_timeout = total_timeout
        self.max_response_bytes = max_response_bytes
        if session is None:
            session = requests.Session()
            # One connection per concurrent call; more would only sit idle.
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session

    @classmethod
    def from_settings(cls, *, pool_size: int = 1) -> FactPulseClient:
        """A client configured from ``settings.FACTPULSE_TASKS``.

        ``pool_size`` is the number of threads that will share it. With
        ``USERNAME``/``PASSWORD`` (and no ``API_KEY``) its JWT is shared with
        every other client of this process for the same account.
        """
        base_url = app_settings.BASE_URL
        api_key = app_settings.API_KEY
        auth: Auth
        if api_key:
            auth = ApiKeyAuth(api_key)
        else:
            auth = shared_token_auth(
                base_url, app_settings.USERNAME, app_settings.PASSWORD, app_settings.CLIENT_UID
            )
        return cls(
            base_url,
            auth=auth,
            connect_timeout=app_settings.CONNECT_TIMEOUT,
            read_timeout=app_settings.READ_TIMEOUT,
            total_timeout=app_settings.TOTAL_TIMEOUT,
            max_response_bytes=app_settings.MAX_RESPONSE_BYTES,
            pool_size=pool_size,
        )

    def __repr__(self) -> str:
        return f"<FactPulseClient {self.base_url}>"

    def close(self) -> None:
        self.session.close()

    def get_json(self, path: str) -> dict[str, Any]:
        """GET ``path`` (relative to the base URL) and return the decoded JSON object.

        The whole call, headers and body, must end within ``total_timeout``
        seconds: the timeouts of ``requests`` bound each read, not the sum, so a
        server sending a byte now and then could otherwise hold a poll for ever.
        Past the deadline the call is abandoned (its socket is shut down when it
        can be reached) and :class:`TransientError` is raised.
        """
        return self._call("GET", path, {})

    def post_form(
        self,
        path: str,
        fields: Mapping[str, str],
        files: Mapping[str, tuple[str, bytes, str]],
    ) -> dict[str, Any]:
        """POST a multipart form to ``path`` and return the decoded JSON answer.

        ``files`` maps a field name to ``(filename, content, content type)``.
        Raises :class:`SubmissionRejected` with the field errors for HTTP 400 and
        422, and the errors of :meth:`get_json` otherwise. The request is never
        sent again, except once after a 401 when a fresh token may be accepted.
        """
        return self._call("POST", path, {"data": dict(fields), "files": dict(files)})

    def _call(self, method: str, path: str, send: dict[str, Any]) -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        responses: list[requests.Response] = []
        done = threading.Event()

        def fetch() -> None:
            try:
                # Decoded here, so that the bytes are gone before the JSON is parsed.
                outcome["text"] = decode_text(self._fetch(method, path, send, responses))
            except BaseException as exc:  # handed over to the calling thread
                outcome["error"] = exc
            finally:
                done.set()

        if not _runner.run(fetch):
            raise TransientError(
                f"{MAX_FETCH_THREADS} calls to FactPulse are still waiting for answers; "
                f"{path} was not sent and will be retried."
            )
        if not done.wait(self.total_timeout):
            for response in responses:
                _interrupt(response)
            raise TransientError(
                f"FactPulse took more than {self.total_timeout:g} s to answer {path}; "
                + ("polling will retry." if method == "GET" else
                   "whether it was taken into account is unknown.")
            )
        if "error" in outcome:
            raise outcome["error"]
        return decode_json(outcome.pop("text"))

    @property
    def longest_call(self) -> float:
        """The most seconds one call can take."""
        return self.total_timeout

    def _fetch(
        self, method: str, path: str, send: dict[str, Any], responses: list[requests.Response]
    ) -> bytearray:
        for attempt in (1, 2):
            headers = {
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                **self.auth.headers(self._request_token),
            }
            response = self._send(method, path, headers, send)
            responses.append(response)
            with response:
                if response.status_code == 401 and attempt == 1 and self.auth.refused(headers):
                    continue  # the token ran out early or was revoked: once more, with a new one
                if method == "POST" and response.status_code in (400, 422):
                    raise self._rejected(response, path)
                self._raise_for_status(response, path, retried_by_polling=method == "GET")
                return self._read_capped(response, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, method: str, path: str, headers: dict[str, str], send: dict[str, Any]
    ) -> requests.Response:
        try:
            # No redirects: credentials must never travel to another address.
            return self.session.request(
                method, f"{self.base_url}{path}", headers=headers, timeout=self.timeout,
                stream=True, allow_redirects=False, **send,
            )
        except requests.Timeout as exc:
            raise TransientError(f"FactPulse did not answer in time ({path}).") from exc
        except requests.RequestException as exc:
            raise TransientError(
                f"Could not reach FactPulse ({type(exc).__name__} on {path})."
            ) from exc

    def _request_token(self, credentials: Mapping[str, str]) -> dict[str, Any]:
        """Ask ``POST /api/token/`` for a token pair; the answer is never logged."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        response = self._send("POST", TOKEN_PATH, headers, {"json": dict(credentials)})
        with response:
            if response.status_code in (400, 401, 403):
                raise AuthenticationError(
                    f"FactPulse refused the account at {TOKEN_PATH} (HTTP "
                    f"{response.status_code}): {self.auth.hint}.",
                    status=response.status_code,
                )
            self._raise_for_status(response, TOKEN_PATH, retried_by_polling=False)
            body = self._read_capped(response, TOKEN_PATH)
        try:
            return decode_json(body)
        except PayloadError:
            # Not quoted: whatever it holds may be a token.
            raise AuthenticationError(
                f"FactPulse answered {TOKEN_PATH} with a body that is not a JSON object."
            ) from None

    def _rejected(self, response: requests.Response, path: str) -> SubmissionRejected:
        status = response.status_code
        try:
            document: Any = decode_json(self._read_capped(response, path))
        except (PayloadError, TransientError):
            document = {}
        errors = field_errors(document)
        listed = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '?'}: {error['msg']}"
            for error in errors[:10]
        )
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        return SubmissionRejected(
            f"FactPulse refused the submission to {path} (HTTP {status})"
            + (f": {listed}{more}" if listed else "."),
            status=status,
            errors=errors,
        )

    def _read_capped(self, response: requests.Response, path: str) -> bytearray:
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and len(declared) < 19:
            if int(declared) > self.max_response_bytes:
                raise self._too_large(path, int(declared))
        body = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > self.max_response_bytes:
                    raise self._too_large(path, len(body))
        except requests.RequestException as exc:
            raise TransientError(
                f"The answer from FactPulse was cut off ({type(exc).__name__} on {path})."
            ) from exc
        return body  # not copied to bytes: a 67 MB answer would be held twice

    def _too_large(self, path: str, size: int) -> PayloadError:
        return PayloadError(
            f"The answer for {path} is larger than MAX_RESPONSE_BYTES "
            f"({size} > {self.max_response_bytes} bytes); raise "
            "FACTPULSE_TASKS['MAX_RESPONSE_BYTES'] to accept it.",
            code="RESPONSE_TOO_LARGE",
            final=True,
        )

    def _raise_for_status(
        self, response: requests.Response, path: str, *, retried_by_polling: bool = True
    ) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error: type[TransportError]
        if 300 <= status < 400:
            error = EndpointNotFound
            hint = (
                f"it redirects to {response.headers.get('Location', '?')[:200]!r}; set "
                "FACTPULSE_TASKS['BASE_URL'] to the final address."
            )
        elif status >= 500 or status in _TRANSIENT_STATUSES:
            error = TransientError
            hint = "FactPulse is busy or failing; " + (
                "polling will retry." if retried_by_polling else "try again later."
            )
        elif status in (401, 403):
            error = AuthenticationError
            hint = f"{self.auth.hint}; tasks stay as they are until it works."
        elif status == 404:
            error = EndpointNotFound
            hint = "check FACTPULSE_TASKS['BASE_URL']."
        else:
            error, hint = PermanentError, "FactPulse refused the request."
        raise error(
            f"FactPulse answered HTTP {status} for {path}: {hint}",
            status=status,
            retry_after=retry_after,
        )


def field_errors(document: Any) -> list[dict[str, Any]]:
    """The ``{loc, msg, type}`` field errors of a 422 answer (``HTTPValidationError``).

    An AFNOR ``APIError`` (``errorCode``, ``errorMessage``, ``details``) gives one
    error per detail, or one for the whole when it has none. Anything else gives
    no errors. Texts are cut to 500 characters, and at most 100 errors are kept.
    """
    if not isinstance(document, dict):
        return []
    errors: list[dict[str, Any]] = []
    detail = document.get("detail")
    if isinstance(detail, list):
        for item in detail[:100]:
            if isinstance(item, dict):
                loc = item.get("loc")
                errors.append({
                    "loc": [part if isinstance(part, int) else str(part)[:100]
                            for part in (loc if isinstance(loc, list) else [])][:20],
                    "msg": str(item.get("msg", ""))[:500],
                    "type": str(item.get("type", ""))[:100],
                })
    elif isinstance(detail, str):
        errors.append({"loc": [], "msg": detail[:500], "type": ""})
    elif "errorMessage" in document or "errorCode" in document:
        details = document.get("details")
        for item in (details if isinstance(details, list) else [])[:100]:
            if isinstance(item, dict):
                errors.append({
                    "loc": [str(item.get("item", ""))[:100]],
                    "msg": str(item.get("reason", ""))[:500],
                    "type": str(item.get("code", ""))[:100],
                })
        if not errors:
            errors.append({
                "loc": [],
                "msg": str(document.get("errorMessage", ""))[:500],
                "type": str(document.get("errorCode", ""))[:100],
            })
    return errors


class _DaemonRunner:
    """Runs functions on reusable daemon threads.

    Each status call runs on a thread of its own so that the caller can give up
    at the deadline; starting a new thread per call cost about as much as the
    call. A thread stuck on a hostile server is simply not reused until it
    ends, and being a daemon it never holds the process at exit. At most
    :data:`MAX_FETCH_THREADS` exist: past that, calls fail at once rather than
    pile up threads behind a server that never answers.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also run in a forked child: the parent's threads do not exist there.
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []
        self._threads = 0

    def run(self, function: Callable[[], None]) -> bool:
        """Start ``function`` on a thread; False when every thread is busy and none can start."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                if self._threads >= MAX_FETCH_THREADS:
                    return False
                self._threads += 1
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name="factpulse-fetch",
                             daemon=True).start()
        inbox.put(function)
        return True

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            inbox.get()()
            with self._lock:
                self._idle.append(inbox)


_runner = _DaemonRunner()
os.register_at_fork(after_in_child=_runner._reset)


def _interrupt(response: requests.Response) -> None:
    """Unblock a read in progress on ``response`` by shutting its socket down."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
