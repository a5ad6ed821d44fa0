"""Follow one task of every kind against the built-in fake FactPulse, and show the outcome.

The fake server answers over real HTTP with real Factur-X files; the tasks are
driven by the real Celery task ``factpulse_tasks.poll_due_tasks`` until every
one is finished, then a table shows states, stored files and the signals the
project's receivers got. With the default in-process Celery the task runs here;
with ``CELERY_BROKER_URL`` set, the command starts a Celery worker process and
sends the task through the broker.

Then the submit functions send one task of each kind twice: once with
webhooks (the fake posts signed events to this project, served over HTTP), once
with polling alone, and a table compares the delay from the remote finish to
the signal and the number of status calls (Celery in-process for both).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from example_project.celery import app as celery_app
from example_project.demo import comparison
from example_project.demo.models import SignalReceipt
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.tasks import poll_due_tasks
from factpulse_tasks.testing import FakeFactPulse, answers, make_facturx_pdf
from factpulse_tasks.testing.answers import Answer

POLL_INTERVAL = 0.2
POLL_MAX_INTERVAL = 1.0
BEAT_SECONDS = 0.25


def scenarios() -> list[tuple[str, str, list[Answer]]]:
    """(reference, kind, answers) for every case the demo shows."""
    return [
        ("FA-2026-0001 pdf", "generation",
         [answers.pending(), answers.started(),
          answers.generation_success(output="pdf", invoice_number="FA-2026-0001")]),
        ("FA-2026-0002 xml", "generation",
         [answers.started(), answers.camel_case(
             answers.generation_success(output="xml", invoice_number="FA-2026-0002"))]),
        ("FA-2026-0003 signed", "signature",
         [answers.pending(), answers.http_error(503, headers={"Retry-After": "0"}),
          answers.signature_success(pdf=make_facturx_pdf("FA-2026-0003"),
                                    filename="FA-2026-0003-signed.pdf")]),
        ("FA-2026-0004 check", "validation",
         [answers.started(), answers.validation_success(compliant=True)]),
        ("FA-2026-0005 check", "validation",
         [answers.validation_success(compliant=False)]),
        ("FA-2026-0006 any", "status",
         [answers.retry(), answers.status_success(invoice_number="FA-2026-0006")]),
        ("FA-2026-0007 bad", "generation", [answers.started(), answers.business_error()]),
        ("FA-2026-0008 crash", "signature", [answers.pending(), answers.celery_failure()]),
        ("FA-2026-0009 scan", "conversion",
         [answers.started(), answers.conversion_pending_input(["seller.siret"]),
          answers.started(), answers.conversion_success(output="xml",
                                                        invoice_number="FA-2026-0009")]),
        ("FA-2026-0010 verify", "verification",
         [answers.started(), answers.verification_success(compliant=False)]),
    ]


def asks_for_input(script: list[Answer]) -> bool:
    """Whether a script goes through a business PENDING_INPUT."""
    return any(((a.payload or {}).get("result") or {}).get("status") == "PENDING_INPUT"
               for a in script)


class Command(BaseCommand):
    help = "Follow tasks of every kind against the built-in fake FactPulse and print the outcome."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=60.0,
                            help="Give up after this many seconds (default 60).")

    def handle(self, *args: Any, **options: Any) -> None:
        with FakeFactPulse(api_key=secrets.token_urlsafe(24)) as fake:
            config = {"BASE_URL": fake.base_url, "API_KEY": fake.api_key,
                      "POLL_INTERVAL": POLL_INTERVAL, "POLL_MAX_INTERVAL": POLL_MAX_INTERVAL}
            with override_settings(FACTPULSE_TASKS=config), self._celery(fake):
                served = self._run(fake, options["timeout"])
        self._report(served)
        self._compare(options["timeout"])

    def _compare(self, timeout: float) -> None:
        self.stdout.write(
            f"\nSubmit and track: one task of each kind, finished by FactPulse "
            f"{comparison.FINISH_AFTER:g} s after its submission."
        )
        eager = celery_app.conf.task_always_eager
        celery_app.conf.task_always_eager = True  # the worker, if any, is gone by now
        try:
            runs = comparison.compare(timeout)
        finally:
            celery_app.conf.task_always_eager = eager
        self._table([("mode", "tasks", "status calls", "mean delay to signal", "max delay"),
                     *(run.row() for run in runs)])
        hooked, alone = runs
        faster = sum(alone.delays) / max(sum(hooked.delays), 1e-6)
        self.stdout.write(
            f"With webhooks the signals came {faster:.1f}x sooner after the remote finish, "
            f"with {hooked.status_calls} status calls instead of {alone.status_calls}."
        )

    @contextmanager
    def _celery(self, fake: FakeFactPulse) -> Iterator[None]:
        if celery_app.conf.task_always_eager:
            self.stdout.write("Celery: in-process (CELERY_TASK_ALWAYS_EAGER).")
            yield
            return
        self.stdout.write(
            f"Celery: a worker process with beat, broker {_safe(celery_app.conf.broker_url)}."
        )
        env = {
            **os.environ,
            "FACTPULSE_BASE_URL": fake.base_url,
            "FACTPULSE_API_KEY": fake.api_key or "",
            "FACTPULSE_POLL_INTERVAL": str(POLL_INTERVAL),
            "FACTPULSE_POLL_MAX_INTERVAL": str(POLL_MAX_INTERVAL),
            "FACTPULSE_BEAT_SECONDS": str(BEAT_SECONDS),
        }
        schedule = tempfile.mkdtemp(prefix="factpulse-demo-beat-")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "--quiet", "-A", "example_project", "worker", "--beat",
             f"--schedule={schedule}/schedule", "--loglevel=WARNING", "--concurrency=1",
             "--without-gossip", "--without-mingle",
             f"--hostname=factpulse-demo-{os.getpid()}@%h"],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            shutil.rmtree(schedule, ignore_errors=True)

    def _run(self, fake: FakeFactPulse, timeout: float) -> dict[str, dict[str, bytes]]:
        served: dict[str, dict[str, bytes]] = {}
        self.asked_input: set[str] = set()
        for reference, kind, script in scenarios():
            task_id = str(uuid.uuid4())
            fake.script(task_id, *script)
            served[task_id] = dict(script[-1].files)
            if asks_for_input(script):
                self.asked_input.add(task_id)
            FactPulseTask.objects.track(task_id, kind, reference=reference)
        self.stdout.write(f"Fake FactPulse at {fake.base_url}; tracking {len(served)} tasks.")
        started = time.monotonic()
        unfinished = FactPulseTask.objects.filter(task_id__in=served).unfinished()
        while unfinished.exists():
            if time.monotonic() - started > timeout:
                raise CommandError(f"Tasks still unfinished after {timeout:g} s.")
            if celery_app.conf.task_always_eager:
                poll_due_tasks.delay()  # what beat does with a real worker
            time.sleep(BEAT_SECONDS)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"All finished after {elapsed:.1f} s and {fake.status_calls()} status calls.\n"
        )
        return served

    def _report(self, served: dict[str, dict[str, bytes]]) -> None:
        tasks = FactPulseTask.objects.filter(task_id__in=served).prefetch_related("artifacts")
        receipts = Counter(
            SignalReceipt.objects.filter(task__in=tasks).values_list("task__task_id", "signal")
        )
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
            sent = sorted(f"{name}x{count}" for (tid, name), count in receipts.items()
                          if tid == task.task_id)
            # task_finished, the kind's own, and both needs-input signals when it asked.
            expected_signals = (1 if task.kind == "status" else 2) + (
                2 if task.task_id in self.asked_input else 0)
            if len(sent) != expected_signals or any(not s.endswith("x1") for s in sent):
                problems.append(f"{task.reference}: signals {sent}")
            first, *more = files or [("-", "-")]
            rows.append((task.reference, task.kind, task.state, task.remote_status,
                         str(task.poll_count), *first, _outcome(task), " ".join(sent)))
            rows.extend(("", "", "", "", "", *extra, "", "") for extra in more)
        self._table(rows)
        states = Counter(task.state for task in tasks)
        self.stdout.write("\nStates: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write("Every artifact matches what FactPulse sent; every signal was sent once.")

    def _table(self, rows: list[tuple[str, ...]]) -> None:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

        def line(row: tuple[str, ...]) -> str:
            return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

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
    verified = (task.result or {}).get("verification_result")
    if isinstance(verified, dict):
        apart = [f.get("businessTerm") for f in verified.get("fields") or []
                 if isinstance(f, dict) and f.get("status") != "COMPLIANT"]
        return "PDF and XML agree" if not apart else f"PDF and XML differ: {', '.join(apart)}"
    document = next((a for a in task.artifacts.all() if a.role == "document"), None)
    if document is not None and document.content_type == "application/pdf":
        import facturx
        from lxml import etree

        with document.file.open("rb") as handle:
            name, xml = facturx.get_xml_from_pdf(handle.read(), check_xsd=False)
        if not name:
            return "PDF without Factur-X XML"
        return f"Factur-X PDF, {name} ({facturx.get_level(etree.fromstring(xml))})"
    if document is not None and document.content_type == "application/xml":
        return "CII XML"
    return "ok"


def _safe(url: str) -> str:
    """A broker URL without its password."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0] + ':***@' if at else ''}{host}"
