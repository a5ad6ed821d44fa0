"""Webhooks against polling alone: the same submissions, timed from remote finish to signal.

The project is served over HTTP by a small WSGI server thread so that the fake
FactPulse can post its signed events to ``/factpulse/webhook/``. Each run
submits one task of each kind with the submit functions; the fake finishes
every task ``FINISH_AFTER`` seconds after its submission, whatever the number
of status calls, and the run measures, per task, the time from that finish to
the ``task_finished`` signal, and counts the status calls.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.core.management.base import CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.test.utils import override_settings
from django.urls import resolve, reverse

from example_project.demo.models import SignalReceipt
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.submissions import submit_generation, submit_signature, submit_validation
from factpulse_tasks.tasks import poll_due_tasks
from factpulse_tasks.testing import FakeFactPulse, make_facturx_pdf

# FactPulse finishes each task this long after its submission.
FINISH_AFTER = 1.5
BEAT_SECONDS = 0.25
# Polling alone, scaled down ten times from the defaults (2 s, x1.5, up to 60 s).
POLLING = {"POLL_INTERVAL": 0.2, "POLL_BACKOFF": 1.5, "POLL_MAX_INTERVAL": 6.0}
# With webhooks, polling is only the safety net for a lost event.
SAFETY_NET = {"POLL_INTERVAL": 30.0, "POLL_BACKOFF": 1.5, "POLL_MAX_INTERVAL": 60.0}

INVOICE = {
    "number": "FA-2026-0101",
    "supplier": {"siret": "92019522900017", "iban": "FR7630001007941234567890185"},
    "recipient": {"siret": "35600000000048"},
    "lines": [{"description": "Conseil", "quantity": 10, "unitPrice": "100.00",
               "vatRate": 20.0}],
}


@dataclass
class Run:
    """What one run measured."""

    label: str
    delays: list[float]
    status_calls: int

    def row(self) -> tuple[str, ...]:
        mean = sum(self.delays) / len(self.delays)
        return (self.label, str(len(self.delays)), str(self.status_calls),
                f"{mean:.3f} s", f"{max(self.delays):.3f} s")


class _QuietHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and
        # the sender's delayed ACK add about 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_project() -> Iterator[str]:
    """Serve this project on a free port of 127.0.0.1; yields its base URL."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="demo-wsgi", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # Load the URLconf now, as in a server that has been up a while.
    resolve(reverse("factpulse_tasks:webhook"))
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def submit_all(reference: str) -> list[FactPulseTask]:
    """Submit one task of each kind with the submit functions."""
    pdf = make_facturx_pdf("FA-2026-0102")
    return [
        submit_generation(INVOICE, profile="EN16931", reference=f"{reference} generation"),
        submit_signature(pdf, filename="FA-2026-0102.pdf", reference=f"{reference} signature"),
        submit_validation(pdf, reference=f"{reference} validation"),
    ]


def run(label: str, *, webhook_base: str | None, timeout: float,
        beat: Callable[[], object]) -> Run:
    """Submit one task of each kind and drive them to the end; measure."""
    secret = secrets.token_urlsafe(32)
    with FakeFactPulse(api_key=secrets.token_urlsafe(24), webhook_secret=secret,
                       finish_after=FINISH_AFTER, webhook_workers=4) as fake:
        config: dict[str, Any] = {"BASE_URL": fake.base_url, "API_KEY": fake.api_key}
        if webhook_base is None:
            config.update(POLLING)
        else:
            config.update(SAFETY_NET, WEBHOOK_SECRET=secret,
                          WEBHOOK_URL=webhook_base + reverse("factpulse_tasks:webhook"))
        with override_settings(FACTPULSE_TASKS=config):
            tasks = submit_all(label)
            started = time.monotonic()
            unfinished = FactPulseTask.objects.filter(pk__in=[t.pk for t in tasks]).unfinished()
            while unfinished.exists():
                if time.monotonic() - started > timeout:
                    raise CommandError(f"{label}: tasks still unfinished after {timeout:g} s.")
                beat()
                time.sleep(BEAT_SECONDS)
        delays = []
        for task in tasks:
            receipt = SignalReceipt.objects.get(task=task, signal="task_finished")
            finished_at = fake.finished_at(task.task_id)
            if finished_at is None:
                raise CommandError(f"{label}: FactPulse never finished {task.task_id}.")
            delays.append(receipt.received_at.timestamp() - finished_at)
        return Run(label, delays, fake.status_calls())


def compare(timeout: float) -> tuple[Run, Run]:
    """Run with webhooks, then with polling alone; Celery runs in this process."""

    def beat() -> None:
        poll_due_tasks.delay()  # what beat does with a real worker

    with serve_project() as base_url:
        hooked = run("webhooks (polling every 30 s as a safety net)", webhook_base=base_url,
                     timeout=timeout, beat=beat)
    alone = run("polling alone (every 0.2 s, x1.5, up to 6 s)", webhook_base=None,
                timeout=timeout, beat=beat)
    return hooked, alone
