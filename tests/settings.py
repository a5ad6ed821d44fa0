"""Settings for the test suite.

``FACTPULSE_TEST_DATABASE=postgres`` runs it on PostgreSQL (``FACTPULSE_TEST_PG_*``
variables for the address); the default is SQLite.
"""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Paris"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "factpulse_tasks",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# "other" is a second database, for the tests of projects that route the app's
# tables elsewhere with a database router.
if os.environ.get("FACTPULSE_TEST_DATABASE", "sqlite") == "postgres":
    _PG_NAME = os.environ.get("FACTPULSE_TEST_PG_NAME", "factpulse_tasks")
    DATABASES = {
        alias: {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": os.environ.get("FACTPULSE_TEST_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("FACTPULSE_TEST_PG_PASSWORD", ""),
            "HOST": os.environ.get("FACTPULSE_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("FACTPULSE_TEST_PG_PORT", "5432"),
        }
        for alias, name in (("default", _PG_NAME), ("other", f"{_PG_NAME}_other"))
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }

MEDIA_ROOT = tempfile.mkdtemp(prefix="factpulse-tests-media-")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

FACTPULSE_TASKS = {
    "BASE_URL": "http://127.0.0.1:9",
    "API_KEY": "unused-replaced-by-fixtures",
    "POLL_ON_TRACK": False,
}

CELERY_TASK_ALWAYS_EAGER = True
