"""Settings of the Celery worker and beat processes that the worker tests start.

They share the test database (``FACTPULSE_WORKER_DB``), the media folder and
the fake FactPulse of the test process; everything else comes from
``tests.settings``.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["FACTPULSE_WORKER_DB"]
DATABASES["default"]["TEST"] = {"NAME": os.environ["FACTPULSE_WORKER_DB"]}
MEDIA_ROOT = os.environ["FACTPULSE_WORKER_MEDIA"]
FACTPULSE_TASKS = json.loads(os.environ["FACTPULSE_WORKER_SETTINGS"])

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ["FACTPULSE_WORKER_BROKER"]
CELERY_TASK_DEFAULT_QUEUE = os.environ["FACTPULSE_WORKER_QUEUE"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "factpulse-poll": {
        "task": "factpulse_tasks.poll_due_tasks",
        "schedule": float(os.environ.get("FACTPULSE_WORKER_BEAT_SECONDS", "0.5")),
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"factpulse_tasks": {"handlers": ["console"], "level": "INFO"}},
}
