"""The signals that tell the host project about a task, and the record of their sending.

Sent after the commit of the change they report. Whether the finished signals
went out, and what a failing receiver raised, is kept on the task
(``notified_at``, ``notification_error``); nothing here changes a task's state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import django
from django.utils import timezone

from .conf import app_settings
from .kinds import get_kind
from .models import FactPulseTask
from .signals import task_finished, task_needs_input

logger = logging.getLogger("factpulse_tasks")

# Django 5.0 and later log a failing receiver's traceback in send_robust();
# logging it again would print every traceback twice.
RECEIVER_TRACEBACKS = django.VERSION < (5, 0)
# Longest text kept of what failing receivers raised.
NOTIFICATION_ERROR_LIMIT = 2000


def resend_finished(pks: Iterable[int]) -> tuple[int, int]:
    """Send the finished signals of finished tasks again, now, in this process.

    Every receiver gets the signal again, including those that took it the
    first time. Returns ``(sent, failed)``: how many tasks were notified, and
    how many of those had a receiver raise (recorded on the task).
    """
    sent = failed = 0
    for pk in FactPulseTask.objects.filter(pk__in=list(pks)).finished().values_list(
        "pk", flat=True
    ):
        sent += 1
        failed += not send_finished(pk)
    return sent, failed


def resend_lost_notifications(*, limit: int = 100) -> int:
    """Send the signals of tasks whose finishing process died before notifying.

    A task finished more than ``LEASE_SECONDS`` ago with no notification on
    record is taken with a compare-and-set, so only one worker sends it.
    """
    before = timezone.now() - timedelta(seconds=app_settings.LEASE_SECONDS)
    candidates = (
        FactPulseTask.objects.filter(notified_at__isnull=True, finished_at__lt=before)
        .order_by("finished_at")
        .values_list("pk", flat=True)[:limit]
    )
    resent = 0
    for pk in list(candidates):
        if FactPulseTask.objects.filter(pk=pk, notified_at__isnull=True).update(
            notified_at=timezone.now()
        ):
            logger.warning("Sending the finished signals of FactPulse task row %s late", pk)
            send_finished(pk)
            resent += 1
    return resent


def send_needs_input(pk: int) -> bool:
    """Send the needs-input signals of one task; False when a receiver raised (logged).

    Runs after the commit of the move into ``awaiting_input``; nothing raised
    here reaches the caller.
    """
    try:
        task = FactPulseTask.objects.get(pk=pk)
        signals = (task_needs_input, get_kind(task.kind).input_signal)
    except Exception:
        logger.exception("Could not send the needs-input signals of FactPulse task row %s", pk)
        return False
    return not _send(task, signals, "needs-input")


def send_finished(task: FactPulseTask | int) -> bool:
    """Send the finished signals of one task and record how that went.

    ``task`` is the row, or its primary key. Runs after the commit of the
    final state: nothing raised here may reach the caller, which would take it
    for a failure of the committed change. Returns False when a receiver
    raised; its error is logged with the task and kept in
    ``notification_error`` for the admin's resend action.
    """
    try:
        row = FactPulseTask.objects.get(pk=task) if isinstance(task, int) else task
        signals = (task_finished, get_kind(row.kind).signal)
    except Exception:
        logger.exception("Could not send the finished signals of FactPulse task %s", task)
        return False
    failures = _send(row, signals, "finished")
    note = "\n".join(failures)[:NOTIFICATION_ERROR_LIMIT]
    try:
        # Not if the task was retried meanwhile: its next outcome has its own notification.
        FactPulseTask.objects.filter(pk=row.pk, finished_at=row.finished_at).update(
            notified_at=timezone.now(), notification_error=note
        )
    except Exception:
        logger.exception("Could not record the notification of FactPulse task %s", row.task_id)
    return not failures


def _send(task: FactPulseTask, signals: tuple[Any, ...], what: str) -> list[str]:
    """Send ``signals`` (``None`` entries skipped) robustly; describe each receiver that raised."""
    failures: list[str] = []
    for signal in signals:
        if signal is None:
            continue
        for receiver, response in signal.send_robust(sender=FactPulseTask, task=task):
            if isinstance(response, Exception):
                name = getattr(receiver, "__qualname__", type(receiver).__qualname__)
                failures.append(f"{name}: {type(response).__name__}: {response}")
                logger.error(
                    "A receiver of the %s signal failed for FactPulse task %s: %r",
                    what,
                    task.task_id,
                    response,
                    exc_info=response if RECEIVER_TRACEBACKS else None,
                )
    return failures
