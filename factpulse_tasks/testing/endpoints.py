"""What the fake FactPulse answers, request by request, without any socket.

:class:`FactPulseAPI` holds the scripts, submissions and tokens and turns one request
(method, path, headers, body) into a :class:`Reply`. :mod:`.server` puts it on HTTP.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from . import answers as build
from .answers import Answer
from .forms import FormError, UploadedFile, parse_form
from .tokens import TokenStore

__all__ = ["SUBMISSION_PATHS", "FactPulseAPI", "Reply", "Submission", "json_reply"]

#: Submission endpoints and the kind of task each one starts.
SUBMISSION_PATHS = {
    "/api/v1/processing/generate-invoice": "generation",
    "/api/v1/processing/sign-pdf-async": "signature",
    "/api/v1/processing/validate-facturx-async": "validation",
}
_REQUIRED_FIELD = {"generation": "invoice_data"}
_REQUIRED_FILE = {"signature": "pdf_file", "validation": "pdf_file"}

_STATUS_ROUTES = (
    re.compile(
        r"^/api/v1/processing/tasks/(?P<task_id>[^/]+)/"
        r"(?:status|generation-status|signature-status|validation-status)$"
    ),
    re.compile(r"^/api/v1/convert/tasks/(?P<task_id>[^/]+)/conversion-status$"),
    re.compile(r"^/api/v1/verification/verify-async/(?P<task_id>[^/]+)/typed-status$"),
)
_TOKEN_PATH = "/api/token/"

_PROFILE_LEVELS = {
    "MINIMUM": "minimum",
    "BASICWL": "basicwl",
    "BASIC": "basic",
    "EN16931": "en16931",
    "EXTENDED": "extended",
}
_OUTPUT_FORMATS = ("xml", "cii", "ubl", "pdf")

_UNAUTHORIZED = {
    "errorCode": "AUTHENTICATION_REQUIRED",
    "errorMessage": "Invalid or missing JWT token",
}


@dataclass(frozen=True)
class Reply:
    """What to send back for one request.

    ``status`` is ``None`` when the connection is to be reset. ``route`` is
    ``"status"``, ``"submission"``, ``"token"`` or ``"unknown"``.
    """

    status: int | None
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    reset: bool = False
    close: bool = False
    route: str = "unknown"
    task_id: str | None = None


def json_reply(status: int, document: Any, **kwargs: Any) -> Reply:
    """A :class:`Reply` carrying ``document`` as UTF-8 JSON."""
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return Reply(status=status, body=body, **kwargs)


@dataclass(frozen=True)
class Submission:
    """One accepted submission (``POST`` to a submission endpoint)."""

    kind: str
    task_id: str
    path: str
    fields: Mapping[str, str]
    files: Mapping[str, UploadedFile]

    @property
    def callback_url(self) -> str | None:
        """The ``callback_url`` form field, if one was sent."""
        return self.fields.get("callback_url") or None


class FactPulseAPI:
    """The scripted FactPulse endpoints. Thread-safe."""

    def __init__(
        self,
        *,
        api_key: str | None,
        username: str | None,
        password: str | None,
        token_lifetime: float,
    ) -> None:
        self.api_key = api_key
        self.username = username
        self.password = password
        self.tokens = TokenStore(token_lifetime)
        self._lock = threading.Lock()
        self._scripts: dict[str, tuple[Answer, ...]] = {}
        self._cursors: dict[str, int] = {}
        self._submission_scripts: dict[str, tuple[Answer, ...]] = {}
        self._timed: dict[str, tuple[float, Answer, Answer]] = {}
        self._submissions: list[Submission] = []

    def script(self, task_id: str, answers: Sequence[Answer]) -> None:
        """See :meth:`FakeFactPulse.script`."""
        _check_answers(answers)
        with self._lock:
            self._scripts[task_id] = tuple(answers)
            self._cursors[task_id] = 0

    def script_until(self, task_id: str, finish_at: float, before: Answer, after: Answer) -> None:
        """See :meth:`FakeFactPulse.script_until`."""
        _check_answers((before, after))
        with self._lock:
            self._timed[task_id] = (finish_at, before, after)

    def script_submissions(self, kind: str, answers: Sequence[Answer]) -> None:
        """See :meth:`FakeFactPulse.script_submissions`."""
        if kind not in SUBMISSION_PATHS.values():
            raise ValueError(f"unknown submission kind {kind!r}")
        if answers:
            _check_answers(answers)
        with self._lock:
            if answers:
                self._submission_scripts[kind] = tuple(answers)
            else:
                self._submission_scripts.pop(kind, None)

    @property
    def submissions(self) -> list[Submission]:
        """A copy of the accepted submissions, oldest first."""
        with self._lock:
            return list(self._submissions)

    def handle(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        """Answer one request; ``path`` has no query string."""
        for pattern in _STATUS_ROUTES:
            match = pattern.match(path)
            if match:
                task_id = unquote(match["task_id"])
                if method != "GET":
                    return _not_allowed(method, path, route="status", task_id=task_id)
                if not self._authorized(headers):
                    return _unauthorized(route="status", task_id=task_id)
                return self._status(task_id)
        if path in SUBMISSION_PATHS:
            if method != "POST":
                return _not_allowed(method, path, route="submission")
            if not self._authorized(headers):
                return _unauthorized(route="submission")
            return self._submit(SUBMISSION_PATHS[path], path, headers, body)
        if path == _TOKEN_PATH:
            if method != "POST":
                return _not_allowed(method, path, route="token")
            return self._token(headers, body)
        return json_reply(
            404, {"errorCode": "NOT_FOUND", "errorMessage": f"No endpoint {method} {path}"}
        )

    def _authorized(self, headers: Message) -> bool:
        key = headers.get("X-API-Key")
        if key is not None and self.api_key is not None:
            if hmac.compare_digest(key.encode("utf-8"), self.api_key.encode("utf-8")):
                return True
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        return scheme.lower() == "bearer" and bool(token) and self.tokens.is_valid(token)

    def _status(self, task_id: str) -> Reply:
        with self._lock:
            script = self._scripts.get(task_id)
            timed = self._timed.get(task_id)
            if timed is not None:
                finish_at, before, after = timed
                answer = after if time.time() >= finish_at else before
            elif script is None:
                answer = build.pending()
            else:
                cursor = self._cursors[task_id]
                answer = script[min(cursor, len(script) - 1)]
                self._cursors[task_id] = cursor + 1
        return Reply(
            status=None if answer.reset else answer.status,
            body=answer.body_for(task_id),
            content_type=answer.content_type,
            headers=answer.headers,
            delay=answer.delay,
            reset=answer.reset,
            route="status",
            task_id=task_id,
        )

    def _submit(self, kind: str, path: str, headers: Message, body: bytes) -> Reply:
        try:
            fields, files = parse_form(headers.get("Content-Type"), body)
        except FormError as exc:
            refused = {"detail": [{"type": "value_error", "loc": ["body"], "msg": str(exc)}]}
            return json_reply(422, refused, route="submission")
        if kind in _REQUIRED_FIELD and _REQUIRED_FIELD[kind] not in fields:
            return json_reply(422, _missing(_REQUIRED_FIELD[kind]), route="submission")
        if kind in _REQUIRED_FILE and _REQUIRED_FILE[kind] not in files:
            return json_reply(422, _missing(_REQUIRED_FILE[kind]), route="submission")
        with self._lock:
            script = self._submission_scripts.get(kind)
        if script is None:
            try:
                script = _default_script(kind, fields, files)
            except ValueError as exc:
                refused = {"detail": [{"type": "enum", "loc": ["body"], "msg": str(exc)}]}
                return json_reply(422, refused, route="submission")
        task_id = str(uuid.uuid4())
        submission = Submission(
            kind=kind,
            task_id=task_id,
            path=path,
            fields=MappingProxyType(dict(fields)),
            files=MappingProxyType(dict(files)),
        )
        with self._lock:
            self._scripts[task_id] = script
            self._cursors[task_id] = 0
            self._submissions.append(submission)
        accepted = {"taskId": task_id}
        if kind == "signature":
            # The signing endpoint documents this richer 202 body; taskId keeps it a TaskResponse.
            accepted.update(
                task_id=task_id, status="PENDING", message="Signature is being processed"
            )
        return json_reply(202, accepted, route="submission", task_id=task_id)

    def _token(self, headers: Message, body: bytes) -> Reply:
        credentials = _read_object(headers, body)
        if credentials is None:
            return json_reply(400, {"detail": "JSON parse error"}, route="token")
        missing = [name for name in ("username", "password") if not credentials.get(name)]
        if missing:
            required = {name: ["This field is required."] for name in missing}
            return json_reply(400, required, route="token")
        accepted = (
            self.username is not None
            and self.password is not None
            and hmac.compare_digest(str(credentials["username"]).encode(), self.username.encode())
            and hmac.compare_digest(str(credentials["password"]).encode(), self.password.encode())
        )
        if not accepted:
            refused = {"detail": "No active account found with the given credentials"}
            return json_reply(401, refused, route="token")
        client_uid = credentials.get("client_uid")
        pair = self.tokens.issue(client_uid=str(client_uid) if client_uid else None)
        return json_reply(200, pair, route="token")


def _check_answers(answers: Sequence[Answer]) -> None:
    if not answers:
        raise ValueError("a script needs at least one answer")
    for answer in answers:
        if not isinstance(answer, Answer):
            raise TypeError(f"expected an Answer, got {type(answer).__name__}")


def _unauthorized(**kwargs: Any) -> Reply:
    return json_reply(401, _UNAUTHORIZED, headers=(("WWW-Authenticate", "Bearer"),), **kwargs)


def _not_allowed(method: str, path: str, **kwargs: Any) -> Reply:
    document = {
        "errorCode": "METHOD_NOT_ALLOWED",
        "errorMessage": f"Method {method} is not allowed on {path}",
    }
    return json_reply(405, document, **kwargs)


def _missing(name: str) -> dict[str, Any]:
    """A FastAPI-style 422 body for a missing form field."""
    detail = {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": None}
    return {"detail": [detail]}


def _default_script(
    kind: str, fields: Mapping[str, str], files: Mapping[str, UploadedFile]
) -> tuple[Answer, ...]:
    """PENDING, STARTED, then the success that matches the submission."""
    profile = (fields.get("profile") or "").strip().upper()
    if profile and profile not in _PROFILE_LEVELS:
        raise ValueError(f"profile must be one of {', '.join(_PROFILE_LEVELS)}")
    if kind == "generation":
        output = (fields.get("output_format") or "xml").strip().lower()
        if output not in _OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(_OUTPUT_FORMATS)}")
        # UBL is not generated: the fake answers CII XML for it.
        success = build.generation_success(
            output="pdf" if output == "pdf" else "xml",
            invoice_number=_invoice_number(fields.get("invoice_data", "")),
            level=_PROFILE_LEVELS[profile or "EXTENDED"],
        )
    elif kind == "signature":
        upload = files["pdf_file"]
        stem = PurePosixPath(upload.filename or "document.pdf").stem or "document"
        success = build.signature_success(pdf=upload.content, filename=f"{stem}_signed.pdf")
    else:
        success = build.validation_success(profile=profile or "EN16931")
    return (build.pending(), build.started(), success)


def _read_object(headers: Message, body: bytes) -> dict[str, Any] | None:
    """A JSON object body, or a form body as a dict; ``None`` when it is neither."""
    content_type = (headers.get("Content-Type") or "").lower()
    if "json" in content_type or not content_type:
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return None
        return document if isinstance(document, dict) else None
    try:
        fields, _ = parse_form(headers.get("Content-Type"), body)
    except FormError:
        return None
    return dict(fields)


def _invoice_number(invoice_data: str) -> str:
    """The invoice number of an ``invoice_data`` JSON (classic or simplified format)."""
    try:
        data = json.loads(invoice_data)
    except ValueError:
        return build.DEFAULT_INVOICE_NUMBER
    if isinstance(data, dict):
        number = data.get("invoiceNumber") or data.get("number")
        if isinstance(number, str) and number.strip():
            return number.strip()
    return build.DEFAULT_INVOICE_NUMBER
