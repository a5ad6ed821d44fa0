"""A database router that keeps the app's tables in the "other" database."""

from __future__ import annotations

from typing import Any


class FactPulseTasksElsewhere:
    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return "other" if model._meta.app_label == "factpulse_tasks" else None

    db_for_write = db_for_read

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return None
