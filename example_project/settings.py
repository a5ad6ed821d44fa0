"""Settings of the example host project, read from the environment.

Defaults run everything on one machine with nothing to set up: SQLite and an
in-process ("eager") Celery. ``DATABASE_URL`` (for example
``postgres://postgres@127.0.0.1:5432/factpulse_example``) and
``CELERY_BROKER_URL`` (for example ``redis://127.0.0.1:6379/0``) switch to
PostgreSQL and a real broker; with a broker, run a worker and beat:
``celery -A example_project worker -B``.
"""

from __future__ import annotations

from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="example-project-not-for-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "factpulse_tasks",
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo serves webhooks from a thread while it polls from another: let
    # readers and the writer work side by side, and writers queue up at BEGIN.
    # Django 5.1 brought these two SQLite options; older versions wait on the lock instead.
    if django.VERSION >= (5, 1):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            transaction_mode="IMMEDIATE",
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "fr"
# French by default; a browser that asks for English gets English.
LANGUAGES = [("fr", "Français"), ("en", "English")]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

# Artifacts are invoices: keep them out of any public MEDIA_URL. The admin
# serves them to users allowed to view the tasks.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "demo-media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

FACTPULSE_TASKS = {
    "BASE_URL": env.str("FACTPULSE_BASE_URL", default="https://factpulse.fr"),
    # A placeholder so that manage.py works out of the box; FactPulse answers 401 to it.
    "API_KEY": env.str("FACTPULSE_API_KEY", default="replace-with-your-factpulse-api-key"),
    "POLL_INTERVAL": env.float("FACTPULSE_POLL_INTERVAL", default=2.0),
    "POLL_MAX_INTERVAL": env.float("FACTPULSE_POLL_MAX_INTERVAL", default=60.0),
    # The secret FactPulse signs webhook events with; the default only suits a
    # machine of one's own, like SECRET_KEY's.
    "WEBHOOK_SECRET": env.str(
        "FACTPULSE_WEBHOOK_SECRET", default="example-project-webhook-secret-not-for-production"
    ),
    # The public address of /factpulse/webhook/, sent as callback_url; empty: no webhooks.
    "WEBHOOK_URL": env.str("FACTPULSE_WEBHOOK_URL", default=""),
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL.startswith("memory://")
)
POLL_EVERY = env.float("FACTPULSE_BEAT_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE = {
    "factpulse-poll": {
        "task": "factpulse_tasks.poll_due_tasks",
        "schedule": POLL_EVERY,
        # A poll request older than two ticks is useless: let the worker drop it.
        "options": {"expires": 2 * POLL_EVERY},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "factpulse_tasks": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "WARNING")}
    },
}
