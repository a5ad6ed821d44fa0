"""``manage.py factpulse_status [TASK_ID]``: counts per state and kind, or one task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from factpulse_tasks.kinds import REGISTRY, kind_label
from factpulse_tasks.models import FactPulseTask


class Command(BaseCommand):
    help = ("Show how many FactPulse tasks are in each state, per kind; with a task id, "
            "show that task.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task_id", nargs="?", help="Show this task in detail.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["task_id"]:
            self.show_task(options["task_id"])
        else:
            self.show_counts()

    def show_counts(self) -> None:
        counts: dict[tuple[str, str], int] = {
            (row["kind"], row["state"]): row["n"]
            for row in FactPulseTask.objects.values("kind", "state")
            .annotate(n=Count("pk")).order_by()
        }
        states = FactPulseTask.State
        header = [_("kind"), *(str(label) for label in states.labels), _("total")]
        rows = []
        # Every registered kind, and any kind of a task whose kind is no longer registered.
        kinds = list(REGISTRY) + sorted({kind for kind, _ in counts} - set(REGISTRY))
        for kind in kinds:
            numbers = [counts.get((kind, state), 0) for state in states.values]
            rows.append([str(kind_label(kind)), *map(str, numbers), str(sum(numbers))])
        totals = [sum(counts.get((k, s), 0) for k in kinds) for s in states.values]
        rows.append([_("total"), *map(str, totals), str(sum(totals))])
        self.table(header, rows)
        oldest = FactPulseTask.objects.unfinished().order_by("created_at", "pk").first()
        if oldest is None:
            self.stdout.write(_("No unfinished task."))
        else:
            self.stdout.write(_("Oldest unfinished task: %(task_id)s (%(kind)s), tracked "
                                "%(age)s ago.") % {
                "task_id": oldest.task_id, "kind": oldest.kind_label,
                "age": timesince(oldest.created_at, depth=1)})

    def show_task(self, task_id: str) -> None:
        try:
            task = FactPulseTask.objects.get(task_id=task_id)
        except FactPulseTask.DoesNotExist:
            raise CommandError(_("No tracked task has the id %(task_id)s.")
                               % {"task_id": task_id}) from None
        fields = [
            (_("task id"), task.task_id),
            (_("kind"), task.kind_label),
            (_("state"), task.get_state_display()),
            (_("reference"), task.reference),
            (_("remote status"), task.remote_status),
            (_("poll count"), str(task.poll_count)),
            (_("created at"), _when(task.created_at)),
            (_("last polled at"), _when(task.last_polled_at)),
            (_("next poll at"), _when(task.next_poll_at)),
            (_("finished at"), _when(task.finished_at)),
            (_("error code"), task.error_code),
            (_("error message"), task.error_message),
            (_("last polling error"), task.last_error),
            (_("notified at"), _when(task.notified_at)),
            (_("notification error"), task.notification_error),
        ]
        width = max(len(name) for name, _value in fields)
        for name, value in fields:
            if value:
                self.stdout.write(f"{name.ljust(width)}  {value}")
        details = [d for d in task.error_details or [] if isinstance(d, dict)]
        if details:
            self.stdout.write("")
            columns = ("level", "item", "reason", "source", "code")
            self.table([_("level"), _("item"), _("reason"), _("source"), _("code")],
                       [[str(d.get(c) or "") for c in columns] for d in details])
        artifacts = list(task.artifacts.all())
        if artifacts:
            self.stdout.write("")
            self.table(
                [_("file"), _("content type"), _("size"), _("SHA-256")],
                [[a.filename, a.content_type, filesizeformat(a.size), a.sha256]
                 for a in artifacts],
            )

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

        def line(row: Sequence[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                      strict=True)).rstrip()

        self.stdout.write(line(header))
        self.stdout.write(line(["-" * width for width in widths]))
        for row in rows:
            self.stdout.write(line(row))


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
