"""Every change to a task's state: claims, schedules, final states, operator moves.

This module is the only place that writes a task's state. Every move is a
conditional UPDATE, so a final state is never changed again by polling, and
only the process whose UPDATE changed the row sends the finished signals
(:mod:`factpulse_tasks.notifications`), once, after the commit. Nothing here
makes a network call.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.db import connections, router, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone

from .conf import app_settings
from .exceptions import PayloadError
from .models import (
    FILE_NAME_MAX_LENGTH,
    Artifact,
    FactPulseTask,
    artifact_storage,
    artifact_upload_to,
)
from .names import safe_filename
from .notifications import send_finished, send_needs_input
from .payloads import Failure, File, NeedsInput, StatusUpdate, Success, Waiting
from .querysets import MOVING_STATES, UNFINISHED_STATES

logger = logging.getLogger("factpulse_tasks")

# A Retry-After longer than this is read as a mistake rather than obeyed.
MAX_RETRY_AFTER = 3600.0


def database() -> str:
    """The database alias tasks are written to (database routers are obeyed)."""
    return router.db_for_write(FactPulseTask) or "default"


# Claims ------------------------------------------------------------------


def claim_due(
    *, now: datetime | None = None, limit: int | None = None, pks: Iterable[int] | None = None
) -> list[FactPulseTask]:
    """Take a batch of due tasks and push their next poll time forward by the lease.

    On PostgreSQL rows locked by another worker are skipped, so two workers
    never poll the same task at once; a worker that dies only delays its tasks.
    Without ``SKIP LOCKED`` (SQLite) the batch is moved by one UPDATE that only
    takes rows still due, then read back by the lease time this claim wrote.
    ``pks`` restricts the claim to those tasks (they must be due too).
    """
    now = now or timezone.now()
    limit = limit or app_settings.BATCH_SIZE
    # The random microseconds tell this claim's rows from another one's.
    lease_until = now + timedelta(
        seconds=app_settings.LEASE_SECONDS, microseconds=random.randrange(1_000_000)  # noqa: S311
    )
    queryset = FactPulseTask.objects.due(now).order_by("next_poll_at", "pk")
    if pks is not None:
        queryset = queryset.filter(pk__in=list(pks))
    alias = database()
    if not connections[alias].features.has_select_for_update_skip_locked:
        candidates = list(queryset.values_list("pk", flat=True)[:limit])
        if not candidates:
            return []
        FactPulseTask.objects.due(now).filter(pk__in=candidates).update(next_poll_at=lease_until)
        return list(
            FactPulseTask.objects.filter(pk__in=candidates, next_poll_at=lease_until)
            .unfinished()
            .order_by("pk")
        )
    with transaction.atomic(using=alias):
        tasks = list(queryset.select_for_update(skip_locked=True)[:limit])
        if tasks:
            FactPulseTask.objects.filter(pk__in=[t.pk for t in tasks]).update(
                next_poll_at=lease_until
            )
    for task in tasks:
        task.next_poll_at = lease_until
    return tasks


def release(tasks: Iterable[FactPulseTask], *, delay: float = 0.0) -> int:
    """Give back claimed tasks that were not polled; they are due again after ``delay``."""
    pks = [task.pk for task in tasks]
    if not pks:
        return 0
    when = timezone.now() + timedelta(seconds=delay)
    return FactPulseTask.objects.filter(pk__in=pks).unfinished().update(next_poll_at=when)


def make_due(pks: Iterable[int]) -> int:
    """Make unfinished tasks due now (poll now, or a webhook said they moved)."""
    return FactPulseTask.objects.filter(pk__in=list(pks)).unfinished().update(
        next_poll_at=timezone.now()
    )


# Answers -----------------------------------------------------------------


def apply(task: FactPulseTask, update: StatusUpdate) -> str:
    """Apply a parsed status to a task; return the report field it counts in."""
    now = timezone.now()
    if isinstance(update, Waiting):
        if _overdue(task, now):
            return _expire(task, now, f"last remote status: {update.remote_status[:32]}")
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
            result=None,  # what an earlier PENDING_INPUT asked for no longer holds
        )
        return "waiting"
    if isinstance(update, NeedsInput):
        if _overdue(task, now):
            return _expire(task, now, "still awaiting input")
        return _await_input(task, now, update)
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


def apply_waiting(pairs: list[tuple[FactPulseTask, Waiting]]) -> list[str]:
    """Apply many "still waiting" answers with one UPDATE; return each one's report field.

    Tasks past their timeout are expired one by one, as :func:`apply` does.
    """
    now = timezone.now()
    outcomes = []
    waiting: list[tuple[FactPulseTask, Waiting]] = []
    for task, update in pairs:
        if _overdue(task, now):
            outcomes.append(_expire(task, now, f"last remote status: {update.remote_status[:32]}"))
        else:
            waiting.append((task, update))
            outcomes.append("waiting")
    if waiting:
        alias = database()

        def each(values: list[Any]) -> RawSQL:
            # A plain "CASE id WHEN …" compiles in a tenth of the time of Case/When.
            column = connections[alias].ops.quote_name(FactPulseTask._meta.pk.column)
            branches = " ".join("WHEN %s THEN %s" for _ in values)
            params: list[Any] = []
            for (task, _), value in zip(waiting, values, strict=True):
                params += [task.pk, value]
            return RawSQL(f"CASE {column} {branches} END", params)

        adapt = connections[alias].ops.adapt_datetimefield_value
        FactPulseTask.objects.filter(
            pk__in=[task.pk for task, _ in waiting], state__in=UNFINISHED_STATES
        ).update(
            state=each(["running" if u.running else "pending" for _, u in waiting]),
            remote_status=each([u.remote_status[:32] for _, u in waiting]),
            next_poll_at=each([
                adapt(now + timedelta(seconds=next_interval(task.poll_count)))
                for task, _ in waiting
            ]),
            last_polled_at=now,
            updated_at=now,
            poll_count=F("poll_count") + 1,
            error_count=0,
            last_error="",
            result=None,  # what an earlier PENDING_INPUT asked for no longer holds
        )
    return outcomes


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
    """Seconds before the next poll.

    Grows by ``POLL_BACKOFF`` per poll up to ``POLL_MAX_INTERVAL``, then is
    spread by ``POLL_JITTER`` (a fraction, either way) so that tasks tracked
    together do not stay in step.
    """
    base = app_settings.POLL_INTERVAL
    cap = app_settings.POLL_MAX_INTERVAL
    try:
        interval = min(cap, base * app_settings.POLL_BACKOFF ** min(polls_done, 200))
    except OverflowError:
        interval = cap
    jitter = app_settings.POLL_JITTER
    if jitter:
        interval *= random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - not for secrets
    return interval


def _overdue(task: FactPulseTask, now: datetime) -> bool:
    started = task.retried_at or task.created_at
    return started + timedelta(seconds=app_settings.TASK_TIMEOUT) <= now


def _update_unfinished(task: FactPulseTask, **fields: Any) -> bool:
    fields.setdefault("updated_at", timezone.now())  # update() skips auto_now
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


def _await_input(task: FactPulseTask, now: datetime, update: NeedsInput) -> str:
    """Hold a task in ``awaiting_input``; only the move into it sends the signals."""
    fields: dict[str, Any] = {
        "state": FactPulseTask.State.AWAITING_INPUT,
        "remote_status": update.remote_status[:32],
        "result": update.result,
        "last_polled_at": now,
        "next_poll_at": now + timedelta(seconds=next_interval(task.poll_count)),
        "poll_count": F("poll_count") + 1,
        "error_count": 0,
        "last_error": "",
    }
    alias = database()
    with transaction.atomic(using=alias):
        entered = FactPulseTask.objects.filter(pk=task.pk, state__in=MOVING_STATES).update(
            **fields
        )
        if entered:
            transaction.on_commit(lambda: send_needs_input(task.pk), using=alias)
    if entered:
        logger.info("FactPulse task %s awaits input", task.task_id)
    else:
        _update_unfinished(task, **fields)  # already waiting: keep what is asked up to date
    return "waiting"


def _succeed(task: FactPulseTask, now: datetime, update: Success) -> str:
    storage = artifact_storage()
    saved: list[tuple[File, str]] = []
    try:
        for file in update.files:
            artifact = Artifact(task=task, role=file.role)
            name = storage.save(
                artifact_upload_to(artifact, file.filename),
                ContentFile(file.content),
                max_length=FILE_NAME_MAX_LENGTH,
            )
            saved.append((file, name))
        won = _finish(
            task,
            now,
            FactPulseTask.State.SUCCEEDED,
            remote_status=update.remote_status[:32],
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
        _delete_files(storage, [name for _, name in saved])
        if isinstance(exc, OSError):
            # The storage failed (disk full, bucket unreachable): try again later.
            return record_error(task, PayloadError(f"Could not store the result files: {exc}",
                                                   code="STORAGE_ERROR", final=False))
        raise
    if not won:
        _delete_files(storage, [name for _, name in saved])
        return "waiting"
    _delete_strays(storage, task, keep={name for _, name in saved})
    return "succeeded"


def _delete_strays(storage: Any, task: FactPulseTask, *, keep: set[str]) -> None:
    """Delete files an earlier attempt left in the task's folder.

    A worker killed between writing the files and committing the row leaves
    them behind; the worker that finishes the task later cleans them up.
    """
    folder = f"{app_settings.UPLOAD_PREFIX}/{task.kind}/{task.task_id}"
    try:
        _, names = storage.listdir(folder)
    except (NotImplementedError, OSError):
        return  # a storage that cannot list keeps them; nothing refers to them
    strays = [f"{folder}/{name}" for name in names if f"{folder}/{name}" not in keep]
    if strays:
        logger.warning("Deleting %s, left by an interrupted attempt", ", ".join(strays))
        _delete_files(storage, strays)


def _delete_files(storage: Any, names: Iterable[str]) -> None:
    for name in names:
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
        updated_at=now,
    )
    alias = database()
    # One UPDATE is atomic on its own; the artifact rows must join it.
    with transaction.atomic(using=alias) if artifacts else nullcontext():
        if not _update_unfinished(task, **fields):
            return False
        if artifacts:
            Artifact.objects.bulk_create(artifacts)
        _set_in_memory(task, fields)
        transaction.on_commit(lambda: send_finished(task), using=alias)
    logger.info("FactPulse task %s %s", task.task_id, state)
    return True


def _set_in_memory(task: FactPulseTask, fields: dict[str, Any]) -> None:
    """Give ``task`` the values just written, so the signals need no new SELECT.

    The winner of the final move held the claim, so nobody else wrote the row
    meanwhile: counters are the ones read plus one.
    """
    for name, value in fields.items():
        if name in ("poll_count", "error_count"):
            value = getattr(task, name) + 1
        setattr(task, name, value)


# Operator actions ----------------------------------------------------------


def mark_expired(pks: Iterable[int], *, why: str = "marked expired by an operator") -> int:
    """Give up on unfinished tasks: they end ``expired`` and their signals are sent."""
    now = timezone.now()
    done = 0
    for task in FactPulseTask.objects.filter(pk__in=list(pks)).unfinished():
        done += _finish(
            task,
            now,
            FactPulseTask.State.EXPIRED,
            error_code="TASK_EXPIRED",
            error_message=f"The task was given up ({why}).",
        )
    return done


def retry(pks: Iterable[int]) -> int:
    """Put failed or expired tasks back to pending, to be polled again at once.

    The result and error fields are cleared and ``TASK_TIMEOUT`` counts from
    now. When the task finishes again, its finished signals are sent again for
    the new outcome. Succeeded tasks are left alone.
    """
    now = timezone.now()
    return (
        FactPulseTask.objects.filter(pk__in=list(pks))
        .filter(state__in=(FactPulseTask.State.FAILED, FactPulseTask.State.EXPIRED))
        .update(
            state=FactPulseTask.State.PENDING,
            remote_status="",
            result=None,
            error_code="",
            error_message="",
            error_details=[],
            last_error="",
            error_count=0,
            finished_at=None,
            next_poll_at=now,
            retried_at=now,
            notified_at=None,
            notification_error="",
        )
    )
