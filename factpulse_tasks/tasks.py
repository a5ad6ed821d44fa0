"""Celery tasks: thin wrappers over :mod:`factpulse_tasks.polling`.

Add one entry to the beat schedule of the host project::

    CELERY_BEAT_SCHEDULE = {
        "factpulse-poll": {"task": "factpulse_tasks.poll_due_tasks", "schedule": 5.0},
    }
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import current_app, shared_task
from django.core.cache import cache

from .conf import app_settings
from .polling import poll_due

logger = logging.getLogger("factpulse_tasks")

# At most one early cycle is asked for per this many seconds, however many
# tasks are tracked: each cycle takes a whole batch.
REQUEST_DEBOUNCE = 1


@shared_task(name="factpulse_tasks.poll_due_tasks", ignore_result=True)
def poll_due_tasks() -> dict[str, Any]:
    """Run one polling cycle; return its report as a dict."""
    return poll_due().as_dict()


@shared_task(name="factpulse_tasks.poll_tasks", ignore_result=True)
def poll_tasks(pks: list[int]) -> dict[str, Any]:
    """Run a cycle limited to the tasks ``pks`` (those still due); return its report."""
    return poll_due(pks=pks).as_dict()


def request_poll_of(pks: Iterable[int]) -> bool:
    """Have the tasks ``pks`` polled now, in a cycle of their own.

    With a Celery worker, the cycle is sent to it; when Celery runs tasks
    eagerly or has no broker configured (no worker), it runs here and now, so
    call this outside any
    transaction (``transaction.on_commit`` does). A broker that cannot be
    reached is logged, not raised: the tasks stay due and the next beat cycle
    polls them. Returns True if the cycle ran or was sent.
    """
    pks = list(pks)
    if not pks:
        return False
    if not current_app.conf.broker_url and not current_app.conf.task_always_eager:
        # No broker configured (a project without Celery workers): poll here and now.
        try:
            poll_tasks(pks)
        except Exception:
            logger.exception("Could not poll %d task(s) now; they wait for the next cycle.",
                             len(pks))
            return False
        return True
    try:
        poll_tasks.apply_async((pks,), retry=False, ignore_result=True)
    except Exception as exc:
        logger.warning("Could not ask Celery to poll %d task(s) now (%s); they wait for the "
                       "next beat tick.", len(pks), type(exc).__name__)
        return False
    return True


def request_poll() -> bool:
    """Ask a Celery worker for a polling cycle now, rather than at the next beat tick.

    Does nothing when ``POLL_ON_TRACK`` is off, when Celery has no broker
    configured, or when it runs tasks eagerly (the cycle would run inside the
    caller's request); asks at most once per
    second per cache. A broker that cannot be reached is logged, not raised:
    the beat schedule still polls the task. Returns True if a cycle was asked for.
    """
    if not app_settings.POLL_ON_TRACK or current_app.conf.task_always_eager:
        return False
    if not current_app.conf.broker_url:
        # No broker configured: the project runs no Celery (cron, factpulse_poll), and
        # Celery's default would be a RabbitMQ on this machine, perhaps someone else's.
        logger.debug("No Celery broker is configured; the task waits for the next cycle.")
        return False
    try:
        if not cache.add("factpulse_tasks:poll-requested", True, REQUEST_DEBOUNCE):
            return False
    except Exception:
        logger.warning("The cache is unavailable; asking for a polling cycle anyway.")
    try:
        poll_due_tasks.apply_async(retry=False, ignore_result=True)
    except Exception as exc:
        logger.warning("Could not ask Celery for an early polling cycle (%s); the task "
                       "waits for the next beat tick.", type(exc).__name__)
        return False
    return True
