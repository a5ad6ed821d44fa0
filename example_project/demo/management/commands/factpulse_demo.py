"""Follow one task of every kind against the built-in fake FactPulse, and show the outcome.

The fake server answers over real HTTP with real Factur-X files; the tasks are
driven by the real Celery task ``factpulse_tasks.poll_due_tasks`` until every
one is finished, then a table shows states, stored files and signals.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from factpulse_tasks import signals
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.tasks import poll_due_tasks
from factpulse_tasks.testing import FakeFactPulse, answers
from factpulse_tasks.testing.answers import Answer

SIGNALS = ("task_finished", "generation_finished", "signature_finished", "validation_finished")


def scenarios() -> list[tuple[str, str, list[Answer]]]:
    """(reference, kind, answers) for every case the demo shows."""
    return [
        ("FA-2026-0001 pdf", "generation",
         [answers.pending(), answers.started(), answers.generation_success(output="pdf")]),
        ("FA-2026-0002 xml", "generation",
         [answers.started(), answers.camel_case(answers.generation_success(output="xml"))]),
        ("FA-2026-0003 signed", "signature",
         [answers.pending(), answers.http_error(503, headers={"Retry-After": "0"}),
          answers.signature_success()]),
        ("FA-2026-0004 check", "validation",
         [answers.started(), answers.validation_success(compliant=True)]),
        ("FA-2026-0005 check", "validation",
         [answers.validation_success(compliant=False)]),
        ("FA-2026-0006 any", "status", [answers.retry(), answers.status_success()]),
        ("FA-2026-0007 bad", "generation", [answers.started(), answers.business_error()]),
        ("FA-2026-0008 crash", "signature", [answers.pending(), answers.celery_failure()]),
    ]


class Command(BaseCommand):
    help = "Follow tasks of every kind against the built-in fake FactPulse and print the outcome."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=60.0,
                            help="Give up after this many seconds (default 60).")

    def handle(self, *args: Any, **options: Any) -> None:
        received: Counter[tuple[str, str]] = Counter()
        receivers = []
        for name in SIGNALS:
            def receiver(sender: Any, task: FactPulseTask, _name: str = name, **kw: Any) -> None:
                received[(task.task_id, _name)] += 1

            getattr(signals, name).connect(receiver, weak=False)
            receivers.append((name, receiver))
        try:
            with FakeFactPulse(api_key=secrets.token_urlsafe(24)) as fake:
                config = {"BASE_URL": fake.base_url, "API_KEY": fake.api_key,
                          "POLL_INTERVAL": 0.2, "POLL_MAX_INTERVAL": 1.0}
                with override_settings(FACTPULSE_TASKS=config):
                    served = self._run(fake, options["timeout"])
        finally:
            for name, receiver in receivers:
                getattr(signals, name).disconnect(receiver)
        self._report(served, received)

    def _run(self, fake: FakeFactPulse, timeout: float) -> dict[str, dict[str, bytes]]:
        served: dict[str, dict[str, bytes]] = {}
        for reference, kind, script in scenarios():
            task_id = str(uuid.uuid4())
            fake.script(task_id, *script)
            served[task_id] = dict(script[-1].files)
            FactPulseTask.objects.track(task_id, kind, reference=reference)
        self.stdout.write(f"Fake FactPulse at {fake.base_url}; tracking {len(served)} tasks.")
        started = time.monotonic()
        cycles = 0
        pending = FactPulseTask.objects.filter(task_id__in=served).unfinished()
        while pending.exists():
            if time.monotonic() - started > timeout:
                raise CommandError(f"Tasks still unfinished after {timeout:g} s.")
            poll_due_tasks.apply()  # the real Celery task, run here
            cycles += 1
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        calls = fake.status_calls()
        self.stdout.write(
            f"All finished after {cycles} Celery cycles, {elapsed:.1f} s, "
            f"{calls} status calls.\n"
        )
        return served

    def _report(self, served: dict[str, dict[str, bytes]],
                received: Counter[tuple[str, str]]) -> None:
        tasks = FactPulseTask.objects.filter(task_id__in=served).prefetch_related("artifacts")
        rows = [("reference", "kind", "state", "remote", "polls", "artifacts", "sha256",
                 "outcome", "signals")]
        problems = []
        for task in sorted(tasks, key=lambda t: t.reference):
            files = []
            for artifact in task.artifacts.all():
                with artifact.file.open("rb") as handle:
                    stored = hashlib.sha256(handle.read()).hexdigest()
                expected = hashlib.sha256(served[task.task_id][artifact.role]).hexdigest()
                ok = stored == expected == artifact.sha256
                if not ok:
                    problems.append(f"{task.reference}: {artifact.role} differs from what was sent")
                files.append((f"{artifact.role} {artifact.size:,} B",
                              f"{artifact.sha256[:12]} {'ok' if ok else 'MISMATCH'}"))
            outcome = _outcome(task)
            sent = sorted(f"{name}x{count}" for (tid, name), count in received.items()
                          if tid == task.task_id)
            if any(not s.endswith("x1") for s in sent) or not sent:
                problems.append(f"{task.reference}: signals {sent}")
            first, *more = files or [("-", "-")]
            rows.append((task.reference, task.kind, task.state, task.remote_status,
                         str(task.poll_count), *first, outcome, " ".join(sent)))
            rows.extend(("", "", "", "", "", *extra, "", "") for extra in more)
        self._table(rows)
        verdict = _verdict(tasks)
        self.stdout.write(f"\n{verdict}")
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write("Every artifact matches what FactPulse sent; every signal was sent once.")

    def _table(self, rows: list[tuple[str, ...]]) -> None:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        line: Callable[[tuple[str, ...]], str] = lambda row: "  ".join(  # noqa: E731
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        self.stdout.write(line(rows[0]))
        self.stdout.write("  ".join("-" * w for w in widths))
        for row in rows[1:]:
            self.stdout.write(line(row))


def _outcome(task: FactPulseTask) -> str:
    """One line on what the task produced: the verdict, the embedded XML, or the error."""
    if task.error_code:
        return task.error_code
    verdict = (task.result or {}).get("validation_result")
    if isinstance(verdict, dict):
        errors = sum(len(verdict.get(k) or []) for k in ("xmlErrors", "pdfaErrors", "xmpErrors"))
        return "compliant" if verdict.get("isCompliant") else f"not compliant, {errors} errors"
    document = task.artifacts.all()[0] if task.artifacts.all() else None
    if document is not None and document.content_type == "application/pdf":
        import facturx
        from lxml import etree

        with document.file.open("rb") as handle:
            name, xml = facturx.get_xml_from_pdf(handle.read(), check_xsd=False)
        level = facturx.get_level(etree.fromstring(xml)) if xml else "?"
        return f"Factur-X PDF, {name} ({level})" if name else "PDF without Factur-X XML"
    if document is not None and document.content_type == "application/xml":
        return "CII XML"
    return "ok"


def _verdict(tasks: Any) -> str:
    states = Counter(task.state for task in tasks)
    return "States: " + ", ".join(f"{state} {count}" for state, count in sorted(states.items()))
