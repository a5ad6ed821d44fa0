"""Query logic for FactPulse tasks: which are due, unfinished, and how to track one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

from .exceptions import TaskKindMismatch
from .kinds import get_kind
from .names import validate_metadata, validate_reference, validate_task_id

if TYPE_CHECKING:
    from .models import FactPulseTask

UNFINISHED_STATES = ("pending", "running", "awaiting_input")
FINISHED_STATES = ("succeeded", "failed", "expired")
# Unfinished states that a status answer can move a task out of, into awaiting_input.
MOVING_STATES = ("pending", "running")


class FactPulseTaskQuerySet(models.QuerySet["FactPulseTask"]):
    """Queries on tasks; also the manager, ``FactPulseTask.objects``."""

    def unfinished(self) -> FactPulseTaskQuerySet:
        """Tasks still followed: pending, running or awaiting input."""
        return self.filter(state__in=UNFINISHED_STATES)

    def awaiting_input(self) -> FactPulseTaskQuerySet:
        """Tasks FactPulse holds until the host gives the data it asked for."""
        return self.filter(state="awaiting_input")

    def finished(self) -> FactPulseTaskQuerySet:
        """Tasks in a final state: succeeded, failed or expired."""
        return self.filter(state__in=FINISHED_STATES)

    def due(self, now: datetime | None = None) -> FactPulseTaskQuerySet:
        """Unfinished tasks whose next poll time has come."""
        return self.unfinished().filter(next_poll_at__lte=now or timezone.now())

    def track(
        self,
        task_id: str,
        kind: str,
        *,
        reference: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> FactPulseTask:
        """Start following FactPulse task ``task_id`` of ``kind``; return its row.

        Idempotent: the same id again returns the existing row unchanged. A new
        task is due at once, and after the commit a Celery cycle is asked for
        (see ``POLL_ON_TRACK``), so the first poll does not wait for beat.
        Raises :class:`~factpulse_tasks.exceptions.InvalidTaskId` for an id that
        is not UUID-like, :class:`~factpulse_tasks.exceptions.UnknownKind` for an
        unknown kind, :class:`~factpulse_tasks.exceptions.InvalidTrackingData`
        for a reference or metadata that cannot be stored as given, and
        :class:`~factpulse_tasks.exceptions.TaskKindMismatch` when the id is
        already tracked with another kind.
        """
        validate_task_id(task_id)
        get_kind(kind)
        validate_reference(reference)
        validate_metadata(metadata)
        defaults = {
            "kind": kind,
            "reference": reference,
            "metadata": metadata or {},
            "next_poll_at": timezone.now(),
        }
        # get_or_create copes with another process inserting the same id meanwhile.
        task, created = self.get_or_create(task_id=task_id, defaults=defaults)
        if task.kind != kind:
            raise TaskKindMismatch(
                f"Task {task_id} is already tracked as a {task.kind} task, not {kind}."
            )
        if created:
            from .tasks import request_poll  # Celery is imported only when tracking

            transaction.on_commit(request_poll, using=self.db)
        return task
