"""The exception family of factpulse_tasks.

Every error the app raises on purpose derives from :class:`FactPulseError`, so a
host can catch them all at once. None of them ever carries a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation


class FactPulseError(Exception):
    """Root of every error raised by factpulse_tasks."""


class ConfigurationError(FactPulseError, ImproperlyConfigured):
    """A ``FACTPULSE_TASKS`` setting is missing or has a value the app cannot use."""


class InvalidTaskId(FactPulseError, ValueError):
    """A task id is empty, too long, or holds characters a FactPulse id never has."""


class InvalidTrackingData(FactPulseError, ValueError):
    """The reference or metadata given to ``track()`` cannot be stored as they are."""


class TaskKindMismatch(FactPulseError, ValueError):
    """The task id is already tracked with another kind."""


class UnknownKind(FactPulseError, ValueError):
    """The kind is not one the app knows."""


class InvalidKindSpec(FactPulseError, ValueError):
    """A kind given to ``register_kind()`` cannot be used, or its name is taken."""


class PollInsideTransaction(FactPulseError, RuntimeError):
    """Polling was asked for inside a database transaction.

    Polling makes network calls and must commit each task on its own, so it
    refuses to run inside ``atomic()`` (or a request under ``ATOMIC_REQUESTS``).
    """


class WebhookVerificationError(FactPulseError, SuspiciousOperation):
    """A webhook request did not prove it comes from FactPulse.

    Raised when the ``X-Webhook-Signature`` header is missing, malformed or does
    not match the body, or when no ``WEBHOOK_SECRET`` is configured. The message
    never holds the secret nor the signature received.
    """


class InvalidWebhookEvent(FactPulseError, ValueError):
    """A signed webhook body is not a FactPulse event (not JSON, or no ``data.task_id``)."""


class PayloadError(FactPulseError):
    """A status answer from FactPulse could not be understood.

    ``code`` is a stable, upper-case identifier stored on the task. ``final``
    tells whether the answer can never get better: a Celery ``SUCCESS`` whose
    result breaks the schema is final (Celery results do not change), a body
    that is not JSON at all may be a passing proxy fault and is not.
    """

    def __init__(self, message: str, *, code: str, final: bool) -> None:
        super().__init__(message)
        self.code = code
        self.final = final


class TransportError(FactPulseError):
    """A request to FactPulse did not give a usable answer.

    ``retryable`` says whether asking again later can help; ``status`` is the
    HTTP status when there was one; ``retry_after`` is the delay in seconds that
    FactPulse asked for, if any.
    """

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientError(TransportError):
    """Timeouts, connection errors, 5xx and 429: asking again later can help."""


class AuthenticationError(TransportError):
    """FactPulse refused the credentials (401/403).

    Tasks are not failed for this: the credentials must be fixed, then polling
    resumes where it stopped.
    """


class EndpointNotFound(TransportError):
    """FactPulse answered 404 for a status endpoint: ``BASE_URL`` is most likely wrong."""


class PermanentError(TransportError):
    """FactPulse refused the request for good (4xx other than 401/403/404/408/429)."""

    retryable = False


class SubmissionRejected(PermanentError):
    """FactPulse refused a submission (HTTP 400 or 422); nothing was tracked.

    ``errors`` lists the field errors FactPulse gave, each a dict with ``loc``
    (the path of the field, such as ``["body", "invoice_data"]``), ``msg`` and
    ``type``; it is empty when the answer held none. ``status`` is the HTTP status.
    """

    def __init__(
        self, message: str, *, status: int, errors: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        super().__init__(message, status=status)
        self.errors = [dict(error) for error in errors]
