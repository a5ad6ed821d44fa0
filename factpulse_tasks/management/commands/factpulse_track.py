"""``manage.py factpulse_track TASK_ID --kind KIND [--reference REF]``: follow a task."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from factpulse_tasks.exceptions import FactPulseError
from factpulse_tasks.kinds import REGISTRY
from factpulse_tasks.models import FactPulseTask


class Command(BaseCommand):
    help = "Start following a FactPulse task submitted elsewhere (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task_id", help="The id FactPulse returned for the task.")
        parser.add_argument("--kind", required=True, choices=sorted(REGISTRY),
                            help="Which status endpoint to poll.")
        parser.add_argument("--reference", default="",
                            help="Free text such as an invoice number.")

    def handle(self, *args: Any, **options: Any) -> None:
        task_id: str = options["task_id"]
        known = FactPulseTask.objects.filter(task_id=task_id).exists()
        try:
            task = FactPulseTask.objects.track(task_id, options["kind"],
                                               reference=options["reference"])
        except FactPulseError as exc:
            raise CommandError(str(exc)) from exc
        values = {"task_id": task.task_id, "kind": task.kind_label,
                  "state": task.get_state_display()}
        if known:
            self.stdout.write(_("Already tracked: %(kind)s %(task_id)s, %(state)s.") % values)
        else:
            self.stdout.write(self.style.SUCCESS(
                _("Tracking %(kind)s %(task_id)s; it is polled at the next cycle.") % values))
