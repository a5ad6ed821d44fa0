"""``manage.py factpulse_poll``: run polling cycles without Celery beat (cron, scripts)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Min
from django.utils import timezone

from factpulse_tasks.exceptions import FactPulseError
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.polling import CycleReport, poll_due
from factpulse_tasks.querysets import MOVING_STATES


class Command(BaseCommand):
    help = (
        "Poll the FactPulse tasks that are due: one cycle, or cycles until no task is "
        "left unfinished (--until-idle)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Keep polling, sleeping until the next task is due, until every task is "
            "finished or awaiting input.",
        )
        parser.add_argument(
            "--max-seconds",
            type=float,
            default=None,
            help="With --until-idle, stop after this many seconds even if tasks are left.",
        )
        parser.add_argument(
            "--max-sleep",
            type=float,
            default=5.0,
            help="Longest pause between two cycles, in seconds (default 5): tasks tracked "
            "meanwhile wait at most this long.",
        )

    def handle(self, *args: Any, until_idle: bool, max_seconds: float | None,
               max_sleep: float, **options: Any) -> None:
        if max_sleep <= 0 or (max_seconds is not None and max_seconds <= 0):
            raise CommandError("--max-sleep and --max-seconds must be positive numbers.")
        try:
            self._run(until_idle, max_seconds, max_sleep)
        except KeyboardInterrupt:
            # Tasks claimed by an interrupted cycle come back when their lease ends.
            self.stdout.write("Interrupted.")

    def _run(self, until_idle: bool, max_seconds: float | None, max_sleep: float) -> None:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while True:
            try:
                report = poll_due()
            except FactPulseError as exc:
                raise CommandError(str(exc)) from exc
            if report.claimed or report.renotified or not until_idle:
                self._print(report)
            if not until_idle:
                return
            # Tasks awaiting input wait for the host, not for FactPulse: they do not keep
            # the command running (the next run, or beat, still polls them).
            unfinished = FactPulseTask.objects.filter(state__in=MOVING_STATES)
            next_due = unfinished.aggregate(next_due=Min("next_poll_at"))["next_due"]
            if next_due is None:
                waiting = FactPulseTask.objects.awaiting_input().count()
                self.stdout.write("No unfinished task left." if not waiting else
                                  f"No task left but {waiting} awaiting input.")
                return
            pause = min(max_sleep, max(0.0, (next_due - timezone.now()).total_seconds()))
            if report.refused:
                pause = max_sleep  # FactPulse refuses us: asking at once would not help
            if deadline is not None and time.monotonic() + pause > deadline:
                self.stdout.write(f"Stopped after --max-seconds; {unfinished.count()} "
                                  "task(s) still unfinished.")
                return
            time.sleep(pause)

    def _print(self, report: CycleReport) -> None:
        line = (
            f"claimed {report.claimed}, polled {report.polled}, finished {report.finished} "
            f"(succeeded {report.succeeded}, failed {report.failed}, expired "
            f"{report.expired}), waiting {report.waiting}, errors {report.errors}, "
            f"refused {report.refused}, in {report.duration:.2f} s"
        )
        style = self.style.WARNING if report.errors or report.refused else self.style.SUCCESS
        self.stdout.write(style(line))
