"""The Celery app of the worker tests' processes, with a receiver that logs each signal.

Every delivery of a finished signal appends one line to the file named by
``FACTPULSE_SIGNAL_LOG``: ``<signal> <task id> <state> <pid>``. Appends of one
short line are atomic, so several processes can share the file.
"""

from __future__ import annotations

import os
from typing import Any

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.worker_settings")
django.setup()

from factpulse_tasks import signals  # noqa: E402
from factpulse_tasks.models import FactPulseTask  # noqa: E402

app = Celery("factpulse-worker-tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["factpulse_tasks"])

SIGNAL_NAMES = ("task_finished", "generation_finished", "signature_finished",
                "validation_finished")


def _recorder(name: str) -> Any:
    def receive(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        line = f"{name} {task.task_id} {task.state} {os.getpid()}\n".encode()
        descriptor = os.open(os.environ["FACTPULSE_SIGNAL_LOG"],
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    return receive


for _name in SIGNAL_NAMES:
    getattr(signals, _name).connect(_recorder(_name), weak=False,
                                    dispatch_uid=f"worker-tests-{_name}")
