"""Claim due tasks, ask FactPulse for their status, and apply what it says.

This module is the only place that changes a task's state. Every write is a
conditional UPDATE on an unfinished row, so a final state is never changed
again, and whoever makes the move to a final state sends the signals, once,
after the commit. No network call happens inside a database transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from .client import FactPulseClient
from .conf import app_settings
from .exceptions import (
    AuthenticationError,
    EndpointNotFound,
    FactPulseError,
    PayloadError,
    PollInsideTransaction,
    TransportError,
)
from .kinds import get_kind
from .models import Artifact, FactPulseTask, artifact_storage, artifact_upload_to
from .names import safe_filename
from .payloads import MALFORMED, Failure, File, StatusUpdate, Success, Waiting, parse_status
from .querysets import UNFINISHED_STATES
from .signals import task_finished

logger = logging.getLogger("factpulse_tasks")

# A Retry-After longer than this is read as a mistake rather than obeyed.
MAX_RETRY_AFTER = 3600.0


@dataclass
class CycleReport:
    """What one polling cycle did."""

    claimed: int = 0
    polled: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    waiting: int = 0
    errors: int = 0
    refused: int = 0
    duration: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dict, for logs and Celery results."""
        return asdict(self)


def poll_due(
    *, now: datetime | None = None, limit: int | None = None, client: FactPulseClient | None = None
) -> CycleReport:
    """Run one polling cycle: claim the due tasks, poll each, apply the answers.

    ``limit`` defaults to ``FACTPULSE_TASKS['BATCH_SIZE']``. An authentication
    or address problem stops the cycle early (every other call would fail the
    same way); the tasks not polled keep their claim and come back after
    ``LEASE_SECONDS``. Raises :class:`PollInsideTransaction` when called inside
    a database transaction.
    """
    if connections[_database()].in_atomic_block:
        raise PollInsideTransaction(
            "poll_due() makes network calls and commits each task on its own; call it "
            "outside transaction.atomic() (and outside ATOMIC_REQUESTS views). In tests, "
            "use pytest-django's transactional_db or django_db(transaction=True)."
        )
    started = time.monotonic()
    report = CycleReport()
    tasks = claim_due(now=now, limit=limit)
    report.claimed = len(tasks)
    if tasks:
        own_client = client is None
        client = client or FactPulseClient.from_settings()
        try:
            # Start a poll only if it can end before the claim does: past it another
            # worker may take the task. The first one always goes, or nothing would.
            lease_end = started + app_settings.LEASE_SECONDS
            for task in tasks:
                if report.polled and time.monotonic() + client.longest_call > lease_end:
                    logger.warning("Polling cycle stopped at the end of its lease; "
                                   "the tasks left come back when the lease ends.")
                    break
                outcome = _poll_safely(task, client)
                report.polled += 1
                setattr(report, outcome, getattr(report, outcome) + 1)
                if outcome == "refused":
                    break
        finally:
            if own_client:
                client.close()
    report.duration = round(time.monotonic() - started, 3)
    if report.claimed:
        logger.info("factpulse poll cycle %s", report.as_dict())
    return report


def claim_due(*, now: datetime | None = None, limit: int | None = None) -> list[FactPulseTask]:
    """Take a batch of due tasks and push their next poll time forward by the lease.

    On PostgreSQL rows locked by another worker are skipped, so two workers
    never poll the same task at once; a worker that dies only delays its tasks.
    Without ``SKIP LOCKED`` (SQLite) each row is taken with a compare-and-set on
    its next poll time, one query per row.
    """
    now = now or timezone.now()
    limit = limit or app_settings.BATCH_SIZE
    lease_until = now + timedelta(seconds=app_settings.LEASE_SECONDS)
    queryset = FactPulseTask.objects.due(now).order_by("next_poll_at", "pk")
    database = _database()
    if not connections[database].features.has_select_for_update_skip_locked:
        # No SKIP LOCKED (SQLite): take each row only if nobody moved it since we read it.
        return [
            task
            for task in queryset[:limit]
            if FactPulseTask.objects.filter(pk=task.pk, next_poll_at=task.next_poll_at)
            .unfinished()
            .update(next_poll_at=lease_until)
        ]
    with transaction.atomic(using=database):
        tasks = list(queryset.select_for_update(skip_locked=True)[:limit])
        if tasks:
            FactPulseTask.objects.filter(pk__in=[t.pk for t in tasks]).update(
                next_poll_at=lease_until
            )
    return tasks


def _database() -> str:
    """The database alias tasks are written to (database routers are obeyed)."""
    return router.db_for_write(FactPulseTask) or "default"


def _poll_safely(task: FactPulseTask, client: FactPulseClient) -> str:
    """Poll one task; a bug or a database error on it must not stop the others."""
    try:
        return poll_task(task, client)
    except SoftTimeLimitExceeded:
        raise  # Celery asks the whole cycle to stop; the tasks left keep their claim.
    except Exception as exc:
        logger.exception("Unexpected error while polling FactPulse task %s", task.task_id)
        try:
            # Our own errors never carry secrets; others are named, not quoted.
            if not isinstance(exc, FactPulseError):
                exc = RuntimeError(f"Unexpected {type(exc).__name__}; the traceback is in the log.")
            return record_error(task, exc)
        except Exception:
            logger.exception("Could not record the error of FactPulse task %s", task.task_id)
            return "errors"


def poll_task(task: FactPulseTask, client: FactPulseClient) -> str:
    """Poll one task and apply the answer; return the report field it counts in."""
    spec = get_kind(task.kind)
    try:
        body = client.get_json(spec.path_for(task.task_id))
        _check_task_id(body, task)
        update = parse_status(body, spec.parse_result)
    except (AuthenticationError, EndpointNotFound) as exc:
        logger.error("FactPulse refused polling of task %s: %s", task.task_id, exc)
        # Not the task's fault: it neither expires nor fails until this is fixed.
        record_error(task, exc, may_expire=False)
        return "refused"
    except PayloadError as exc:
        if exc.final:
            return apply(task, Failure(task.remote_status, exc.code, str(exc)))
        return record_error(task, exc)
    except TransportError as exc:
        if exc.retryable:
            return record_error(task, exc)
        return apply(task, Failure(task.remote_status, f"HTTP_{exc.status}", str(exc)))
    return apply(task, update)


def _check_task_id(body: dict[str, Any], task: FactPulseTask) -> None:
    remote_id = body.get("taskId", body.get("task_id"))
    if remote_id is not None and remote_id != task.task_id:
        raise PayloadError(
            f"FactPulse answered for task {str(remote_id)[:64]!r} instead of {task.task_id}.",
            code=MALFORMED,
            final=False,
        )


def apply(task: FactPulseTask, update: StatusUpdate) -> str:
    """Apply a parsed status to a task; return the report field it counts in."""
    now = timezone.now()
    if isinstance(update, Waiting):
        if _overdue(task, now):
            return _expire(task, now, f"last remote status: {update.remote_status}")
        state = FactPulseTask.State.RUNNING if update.running else FactPulseTask.State.PENDING
        _update_unfinished(
            task,
            state=state,
            remote_status=update.remote_status[:32],
            last_polled_at=now,
            next_poll_at=now + timedelta(seconds=next_interval(task.poll_count)),
            poll_count=F("poll_count") + 1,
            error_count=0,
            last_error="",
        )
        return "waiting"
    if isinstance(update, Failure):
        _finish(
            task,
            now,
            FactPulseTask.State.FAILED,
            remote_status=update.remote_status[:32],
            result=update.result,
            error_code=update.code[:100],
            error_message=update.message,
            error_details=update.details,
        )
        return "failed"
    return _succeed(task, now, update)


def record_error(task: FactPulseTask, error: Exception, *, may_expire: bool = True) -> str:
    """Note a poll that got no usable answer and schedule the next try.

    The task is not failed: it is retried with a growing delay (or the one
    FactPulse asked for with ``Retry-After``) until it expires.
    """
    now = timezone.now()
    message = str(error)
    if may_expire and _overdue(task, now):
        return _expire(task, now, f"last polling error: {message}")
    logger.warning("Polling FactPulse task %s failed: %s", task.task_id, message)
    delay = next_interval(task.error_count)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
    _update_unfinished(
        task,
        last_polled_at=now,
        next_poll_at=now + timedelta(seconds=delay),
        poll_count=F("poll_count") + 1,
        error_count=F("error_count") + 1,
        last_error=message,
    )
    return "errors"


def next_interval(polls_done: int) -> float:
    """Seconds before the next poll: grows by ``POLL_BACKOFF`` per poll, up to the cap."""
    base = app_settings.POLL_INTERVAL
    cap = app_settings.POLL_MAX_INTERVAL
    try:
        return min(cap, base * app_settings.POLL_BACKOFF ** min(polls_done, 200))
    except OverflowError:
        return cap


def _overdue(task: FactPulseTask, now: datetime) -> bool:
    return task.created_at + timedelta(seconds=app_settings.TASK_TIMEOUT) <= now


def _update_unfinished(task: FactPulseTask, **fields: Any) -> bool:
    changed = FactPulseTask.objects.filter(pk=task.pk, state__in=UNFINISHED_STATES).update(
        **fields
    )
    return changed == 1


def _expire(task: FactPulseTask, now: datetime, why: str) -> str:
    timeout = app_settings.TASK_TIMEOUT
    _finish(
        task,
        now,
        FactPulseTask.State.EXPIRED,
        error_code="TASK_EXPIRED",
        error_message=f"The task did not finish within {timeout:g} seconds ({why}).",
    )
    return "expired"


def _succeed(task: FactPulseTask, now: datetime, update: Success) -> str:
    storage = artifact_storage()
    saved: list[tuple[File, str]] = []
    try:
        for file in update.files:
            artifact = Artifact(task=task, role=file.role)
            name = storage.save(
                artifact_upload_to(artifact, file.filename), ContentFile(file.content)
            )
            saved.append((file, name))
        won = _finish(
            task,
            now,
            FactPulseTask.State.SUCCEEDED,
            remote_status=update.remote_status,
            result=update.result,
            artifacts=[
                Artifact(
                    task=task,
                    role=file.role,
                    file=name,
                    filename=safe_filename(file.filename),
                    content_type=file.content_type,
                    size=len(file.content),
                    sha256=hashlib.sha256(file.content).hexdigest(),
                )
                for file, name in saved
            ],
        )
    except Exception as exc:
        _delete_files(storage, saved)
        if isinstance(exc, OSError):
            # The storage failed (disk full, bucket unreachable): try again later.
            return record_error(task, PayloadError(f"Could not store the result files: {exc}",
                                                   code="STORAGE_ERROR", final=False))
        raise
    if not won:
        _delete_files(storage, saved)
        return "waiting"
    return "succeeded"


def _delete_files(storage: Any, saved: list[tuple[File, str]]) -> None:
    for _, name in saved:
        try:
            storage.delete(name)
        except Exception:  # keep deleting the others, whatever the storage raises
            logger.exception("Could not delete the orphan file %s", name)


def _finish(
    task: FactPulseTask,
    now: datetime,
    state: Any,  # a FactPulseTask.State member; the stubs type members as tuples
    *,
    artifacts: list[Artifact] | None = None,
    **fields: Any,
) -> bool:
    """Move an unfinished task to a final state; True if this call made the move."""
    fields.update(
        state=state,
        finished_at=now,
        last_polled_at=now,
        next_poll_at=None,
        poll_count=F("poll_count") + 1,
        last_error="",
    )
    database = _database()
    with transaction.atomic(using=database):
        if not _update_unfinished(task, **fields):
            return False
        if artifacts:
            Artifact.objects.bulk_create(artifacts)
        transaction.on_commit(lambda: _send_finished(task.pk), using=database)
    logger.info("FactPulse task %s %s", task.task_id, state)
    return True


def _send_finished(pk: int) -> None:
    # Runs after the commit: nothing raised here may reach the caller, which
    # would take it for a failure of the (already committed) change.
    try:
        task = FactPulseTask.objects.get(pk=pk)
        signals = (task_finished, get_kind(task.kind).signal)
    except Exception:
        logger.exception("Could not send the finished signals of FactPulse task row %s", pk)
        return
    for signal in signals:
        if signal is None:
            continue
        for _receiver, response in signal.send_robust(sender=FactPulseTask, task=task):
            if isinstance(response, Exception):
                logger.error(
                    "A receiver of the finished signal failed for FactPulse task %s: %r",
                    task.task_id,
                    response,
                    exc_info=response,
                )
