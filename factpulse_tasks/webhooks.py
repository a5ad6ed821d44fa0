"""The webhook receiver: FactPulse tells that a task moved; the app polls it at once.

FactPulse POSTs a JSON event (``event_type`` such as ``generation.completed``,
``data.task_id``) signed with ``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of
the raw body>``. The signature is checked on the raw bytes, in constant time,
before anything is parsed; a request that fails it changes nothing. A verified
event only makes its task due now and asks for a cycle limited to it (see
:func:`factpulse_tasks.tasks.request_poll_of`): the result always comes from
the typed status endpoint, never from the event, so duplicate, late or
out-of-order events are harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import transitions
from .conf import app_settings
from .exceptions import (
    ConfigurationError,
    InvalidTaskId,
    InvalidWebhookEvent,
    PayloadError,
    WebhookVerificationError,
)
from .models import FactPulseTask
from .names import validate_task_id
from .payloads import decode_json

logger = logging.getLogger("factpulse_tasks")

SIGNATURE_HEADER = "X-Webhook-Signature"
SIGNATURE_PREFIX = "sha256="
#: The events FactPulse sends, and the kind of task each is about.
EVENT_TYPES = {
    f"{kind}.{outcome}": kind
    for kind in ("generation", "signature", "validation")
    for outcome in ("completed", "failed")
}
_EVENT_TYPE_MAX_LENGTH = 100


@dataclass(frozen=True)
class Event:
    """A verified FactPulse event: what happened, and to which task."""

    event_type: str
    task_id: str


def sign(body: bytes, secret: str) -> str:
    """The ``X-Webhook-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """Check that ``header`` signs ``body`` with ``secret``, in constant time.

    Raises :class:`WebhookVerificationError` when the secret is empty or the
    header is missing, malformed or wrong; its message quotes neither.
    """
    if not secret:
        raise WebhookVerificationError("No WEBHOOK_SECRET is configured; every event is refused.")
    if not header:
        raise WebhookVerificationError(f"The {SIGNATURE_HEADER} header is missing.")
    given = header.strip()
    if not given.isascii() or not given.lower().startswith(SIGNATURE_PREFIX):
        raise WebhookVerificationError(
            f"The {SIGNATURE_HEADER} header is not of the form sha256=<hex>."
        )
    expected = sign(body, secret)
    candidate = SIGNATURE_PREFIX + given[len(SIGNATURE_PREFIX):].lower()
    if not hmac.compare_digest(candidate.encode("ascii"), expected.encode("ascii")):
        raise WebhookVerificationError(
            f"The {SIGNATURE_HEADER} header does not match the body; it was not signed "
            "with WEBHOOK_SECRET, or the body was changed on the way."
        )


def parse_event(body: bytes) -> Event:
    """Read a verified body: a JSON object with ``event_type`` and ``data.task_id``.

    Raises :class:`InvalidWebhookEvent` for anything else.
    """
    try:
        document = decode_json(body)
    except PayloadError as exc:
        raise InvalidWebhookEvent("The event is not a JSON object.") from exc
    event_type = document.get("event_type")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= _EVENT_TYPE_MAX_LENGTH:
        raise InvalidWebhookEvent("The event has no event_type.")
    data = document.get("data")
    if not isinstance(data, dict):
        raise InvalidWebhookEvent("The event has no data object.")
    task_id = data.get("task_id", data.get("taskId"))
    if not isinstance(task_id, str) or not task_id:
        raise InvalidWebhookEvent("The event has no data.task_id.")
    return Event(event_type, task_id)


def receive(event: Event) -> str:
    """Make the event's task due now and, after the commit, poll it.

    Returns ``"due"``, ``"finished"`` (already final: nothing to do) or
    ``"unknown"`` (no such task tracked here).
    """
    try:
        validate_task_id(event.task_id)
    except InvalidTaskId:
        return "unknown"
    alias = transitions.database()
    pk = (
        FactPulseTask.objects.using(alias)
        .filter(task_id=event.task_id)
        .values_list("pk", flat=True)
        .first()
    )
    if pk is None:
        return "unknown"
    if event.event_type not in EVENT_TYPES:
        logger.info("FactPulse event of an unknown type %r for task %s; polling it anyway.",
                    event.event_type, event.task_id)
    if not transitions.make_due([pk]):
        return "finished"
    from .tasks import request_poll_of  # Celery is imported only when an event comes

    transaction.on_commit(lambda: request_poll_of([pk]), using=alias)
    return "due"


def _refuse(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def receive_webhook(request: HttpRequest) -> HttpResponse:
    """The view FactPulse posts events to (``factpulse_tasks:webhook``).

    403 when no ``WEBHOOK_SECRET`` is configured, 411 for a chunked body
    without ``Content-Length``, 413 for a body over
    ``WEBHOOK_MAX_BYTES``, 401 for a missing or wrong signature (nothing is
    written), 400 for a signed body that is not an event, and 200 otherwise,
    including for a task not tracked here (logged), so that FactPulse does not
    send it again and again.
    """
    client = request.META.get("REMOTE_ADDR", "?")
    try:
        secret = app_settings.WEBHOOK_SECRET
        limit = app_settings.WEBHOOK_MAX_BYTES
    except ConfigurationError as exc:
        logger.error("FactPulse webhook refused: %s", exc)
        return _refuse(403, "Webhooks are not configured.")
    if not secret:
        logger.warning("FactPulse webhook from %s refused: no WEBHOOK_SECRET is configured.",
                       client)
        return _refuse(403, "Webhooks are not configured.")
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get(
        "HTTP_TRANSFER_ENCODING", ""
    ).lower():
        # WSGI servers hand Django an empty body for these: say so, not "wrong signature".
        logger.warning("FactPulse webhook from %s refused: chunked, without Content-Length.",
                       client)
        return _refuse(411, "A Content-Length is required.")
    body = _read_body(request, limit)
    if body is None:
        logger.warning("FactPulse webhook from %s refused: body over WEBHOOK_MAX_BYTES (%d).",
                       client, limit)
        return _refuse(413, "The body is too large.")
    try:
        verify_signature(body, request.headers.get(SIGNATURE_HEADER), secret)
    except WebhookVerificationError as exc:
        logger.warning("FactPulse webhook from %s refused: %s", client, exc)
        return _refuse(401, "Invalid signature.")
    try:
        event = parse_event(body)
    except InvalidWebhookEvent as exc:
        logger.warning("Signed FactPulse webhook from %s refused: %s", client, exc)
        return _refuse(400, str(exc))
    outcome = receive(event)
    if outcome == "unknown":
        logger.warning("FactPulse event %r for task %r, which is not tracked here; ignored.",
                       event.event_type, event.task_id[:64])
    else:
        logger.info("FactPulse event %r for task %s: %s.", event.event_type, event.task_id,
                    outcome)
    return JsonResponse({"status": outcome})


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or ``None`` when it is longer than ``limit`` bytes."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body
