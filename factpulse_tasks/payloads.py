"""Pure parsing of FactPulse task status answers into typed updates.

Nothing here touches Django, the database or the network: a status answer goes
in (bytes or an already decoded JSON object), a :data:`StatusUpdate` comes out,
or :class:`~factpulse_tasks.exceptions.PayloadError` is raised. Both spellings
of field names (``content_b64`` and ``contentB64``) are accepted and stored under
the spelling of the reference schema.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import PayloadError
from .names import ESCAPED_UNSTORABLE, UNSTORABLE

RUNNING_STATES = frozenset({"STARTED", "RETRY"})

MALFORMED = "MALFORMED_RESPONSE"
INVALID_RESULT = "INVALID_RESULT"

# Bounds on the shape of an answer. Each JSON value costs tens of bytes of
# memory once decoded, so a few megabytes of "[{},{},...]" could cost gigabytes;
# real results have a few hundred values and their files are long strings.
MAX_TOKENS = 2_000_000
MAX_DEPTH = 64
# Longest error message, and most AFNOR details, kept from one answer.
MAX_MESSAGE_LENGTH = 10_000
MAX_DETAILS = 1_000
# Strings, commas and openings of objects and arrays: a value is at most two.
# A string that never closes runs to the end of the text: otherwise the scan would
# start again at every quote inside it, in time growing with the square of the size.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[,\[{]', re.DOTALL)

# Names of the fields we read, spelled as in the reference schemas.
ENVELOPE_FIELDS = ("taskId", "status", "result")
ERROR_FIELDS = ("status", "errorCode", "errorMessage", "details", "traceback")
ERROR_DETAIL_FIELDS = ("level", "item", "reason", "source", "code")


# What a file carried by a result can be: content_b64, or xml_content.
ARTIFACT_ROLES = ("document", "xml")


@dataclass(frozen=True)
class File:
    """A file carried by a result: ``role`` is ``document`` or ``xml``."""

    role: str
    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Waiting:
    """The remote task is not finished; ``remote_status`` is its Celery state."""

    remote_status: str

    @property
    def running(self) -> bool:
        return self.remote_status in RUNNING_STATES


@dataclass(frozen=True)
class NeedsInput:
    """The remote task stopped to wait for data only the host can give.

    Not a final outcome: ``result`` says what is missing (for a conversion,
    ``missing_fields`` and the ``extracted_data`` so far).
    """

    remote_status: str
    result: dict[str, Any]


@dataclass(frozen=True)
class Success:
    """The remote task succeeded. ``result`` is JSON-ready and holds no file content."""

    remote_status: str
    result: dict[str, Any]
    files: tuple[File, ...] = ()


@dataclass(frozen=True)
class Failure:
    """The remote task failed, at the Celery level or at the business level."""

    remote_status: str
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None


StatusUpdate = Waiting | NeedsInput | Success | Failure
ResultParser = Callable[[dict[str, Any]], Success]
# Reads a result whose business status is neither SUCCESS nor ERROR (PENDING_INPUT…).
BusinessParser = Callable[[dict[str, Any]], StatusUpdate]


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def canonical(obj: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Return ``obj`` with keys respelled as in ``names`` (``contentB64`` → ``content_b64``).

    Keys that fold to no known name are kept as they are. When both spellings
    are present, the one already spelled as in ``names`` wins.
    """
    spelling = {_fold(name): name for name in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        target = spelling.get(_fold(key), key) if isinstance(key, str) else str(key)
        if target in out and key != target:
            continue
        out[target] = value
    return out


def decode_text(raw: bytes | bytearray) -> str:
    """The body of an answer as text; it must be UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_json(raw[:60].decode("utf-8", "replace")) from exc


def decode_json(raw: bytes | bytearray | str) -> dict[str, Any]:
    """Decode a status answer body: UTF-8 JSON whose top level is an object.

    ``NaN`` and infinite numbers are refused (they are not JSON and no database
    stores them), and so are answers with more than :data:`MAX_TOKENS` strings,
    commas and brackets, or nested deeper than :data:`MAX_DEPTH`, which no
    FactPulse result comes near and which would cost far more memory than their
    size. Escaped NUL characters and lone surrogates are replaced by U+FFFD so
    that the text can be stored anywhere. Pass text already decoded (see
    :func:`decode_text`) to keep only one copy of a large body in memory.
    """
    text = raw if isinstance(raw, str) else decode_text(raw)
    if _count_tokens(text) > MAX_TOKENS:
        raise _too_complex(f"more than {MAX_TOKENS} strings, commas and brackets")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise _too_complex(f"nesting deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise _not_json(text[:60]) from exc
    if not isinstance(value, dict):
        raise PayloadError(
            f"FactPulse answered with JSON {type(value).__name__}, expected an object.",
            code=MALFORMED,
            final=False,
        )
    if _depth(value) > MAX_DEPTH:
        raise _too_complex(f"nesting deeper than {MAX_DEPTH} levels")
    if ESCAPED_UNSTORABLE.search(text):
        value = scrub(value)
    return value


def _not_json(preview: str) -> PayloadError:
    return PayloadError(
        f"FactPulse answered with a body that is not UTF-8 JSON (starts with {preview!r}).",
        code=MALFORMED,
        final=False,
    )


def _count_tokens(raw: str) -> int:
    """Strings, commas and brackets outside strings, counted up to just past the cap."""
    count = 0
    for count, _ in enumerate(_TOKENS.finditer(raw), start=1):  # noqa: B007
        if count > MAX_TOKENS:
            break
    return count


def _too_complex(what: str) -> PayloadError:
    return PayloadError(
        f"FactPulse answered with {what}; no task result looks like that.",
        code="RESPONSE_TOO_COMPLEX",
        final=True,
    )


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:20]} is too large")
    return number


def scrub(value: Any) -> Any:
    """Replace NUL characters and lone surrogates in every string of ``value``."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    return value


def parse_status(
    body: Mapping[str, Any],
    parse_result: ResultParser,
    business_states: Mapping[str, BusinessParser] | None = None,
) -> StatusUpdate:
    """Turn a decoded status answer into a :data:`StatusUpdate`.

    ``parse_result`` reads the business result of a Celery ``SUCCESS`` whose
    ``result.status`` is ``SUCCESS``; business errors are read here, the same
    way for every kind. ``business_states`` reads the other business statuses a
    kind has (``PENDING_INPUT``…); any other value is an invalid result.
    Raises :class:`PayloadError`.
    """
    if not isinstance(body, Mapping):
        raise PayloadError("The status answer is not a JSON object.", code=MALFORMED, final=False)
    envelope = canonical(body, ENVELOPE_FIELDS)
    status = envelope.get("status")
    if not isinstance(status, str) or not status:
        raise PayloadError(
            "The status answer has no 'status' string.", code=MALFORMED, final=False
        )
    status = status.upper()
    result = envelope.get("result")
    if status == "SUCCESS":
        if not isinstance(result, dict):
            raise PayloadError(
                "Celery reported SUCCESS but 'result' is not an object.",
                code=INVALID_RESULT,
                final=True,
            )
        return _parse_business_result(result, parse_result, business_states or {})
    if status == "FAILURE":
        return _parse_celery_failure(result)
    if status == "REVOKED":
        return Failure(status, "TASK_REVOKED", "The task was revoked on the FactPulse side.")
    # PENDING, STARTED, RETRY, and any state Celery may add later: keep waiting.
    return Waiting(status)


def _parse_business_result(
    result: dict[str, Any], parse_result: ResultParser, others: Mapping[str, BusinessParser]
) -> StatusUpdate:
    business = result.get("status")
    if business is None:
        # ``status`` may be left out: it defaults to SUCCESS in success results
        # and to ERROR in error results, which are told apart by their errorCode.
        business = "ERROR" if "errorCode" in canonical(result, ERROR_FIELDS) else "SUCCESS"
    if isinstance(business, str):
        business = business.upper()
    if business == "ERROR":
        return business_error(result)
    if isinstance(business, str) and business in others:
        return others[business](result)
    if business != "SUCCESS":
        raise PayloadError(
            f"Unknown business status {str(business)[:100]!r} in the result.",
            code=INVALID_RESULT,
            final=True,
        )
    return parse_result(result)


def business_error(result: Mapping[str, Any], remote_status: str = "SUCCESS") -> Failure:
    """Read an AFNOR error result (``errorCode``, ``errorMessage``, ``details``)."""
    error = canonical(result, ERROR_FIELDS)
    code = error.get("errorCode")
    message = error.get("errorMessage")
    # Code, message and details have fields of their own; the rest stays in result.
    rest = {k: v for k, v in error.items() if k not in ("errorCode", "errorMessage", "details")}
    if isinstance(rest.get("traceback"), str):
        rest["traceback"] = _clip(rest["traceback"])
    return Failure(
        remote_status,
        code=str(code) if code not in (None, "") else "UNKNOWN_ERROR",
        message=_clip(str(message)) if message is not None else "",
        details=error_details(error.get("details")),
        result=rest,
    )


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE_LENGTH:
        return text
    return f"{text[:MAX_MESSAGE_LENGTH]}… ({len(text) - MAX_MESSAGE_LENGTH} characters cut)"


def _parse_celery_failure(result: Any) -> Failure:
    fallback = "FactPulse reported a system failure (Celery FAILURE)."
    if not isinstance(result, dict):
        text = str(result) if result not in (None, "") else ""
        return Failure("FAILURE", "TASK_FAILURE", text or fallback)
    failure = business_error(result, "FAILURE")
    return Failure(
        "FAILURE",
        "TASK_FAILURE" if failure.code == "UNKNOWN_ERROR" else failure.code,
        failure.message or fallback,
        failure.details,
        failure.result,
    )


def error_details(value: Any) -> list[dict[str, Any]]:
    """Normalise an AFNOR ``details`` list.

    Every entry gets the five AFNOR keys (missing ones are ``None``) and keeps
    any other key it had; an entry that is not an object is kept as its text in
    ``reason``. Past :data:`MAX_DETAILS` entries, one last entry says how many
    were left out.
    """
    if not isinstance(value, list):
        return []
    details = []
    for entry in value[:MAX_DETAILS]:
        if isinstance(entry, dict):
            item = canonical(entry, ERROR_DETAIL_FIELDS)
            details.append({**{name: None for name in ERROR_DETAIL_FIELDS}, **item})
        else:
            details.append({"level": None, "item": None, "reason": _clip(str(entry)),
                            "source": None, "code": None})
    if len(value) > MAX_DETAILS:
        details.append({"level": "Warning", "item": None, "source": None, "code": None,
                        "reason": f"{len(value) - MAX_DETAILS} more details not kept."})
    return details
