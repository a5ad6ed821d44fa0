"""Celery tasks: thin wrappers over :mod:`factpulse_tasks.polling`.

Add one entry to the beat schedule of the host project::

    CELERY_BEAT_SCHEDULE = {
        "factpulse-poll": {"task": "factpulse_tasks.poll_due_tasks", "schedule": 5.0},
    }
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from .polling import poll_due


@shared_task(name="factpulse_tasks.poll_due_tasks", ignore_result=True)
def poll_due_tasks() -> dict[str, Any]:
    """Run one polling cycle; return its report as a dict."""
    return poll_due().as_dict()
