"""End to end: submit, then the fake FactPulse posts its signed event to a live server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from django.urls import reverse

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.polling import poll_due
from factpulse_tasks.submissions import submit_signature, submit_validation
from factpulse_tasks.testing import FakeFactPulse, make_facturx_pdf

from .conftest import SignalLog

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "delivery-key-4d5e"
SECRET = "delivery-secret-8f7e6d5c4b3a29180f7e6d5c"


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return make_facturx_pdf("FA-2026-0077")


def configure(settings: Any, fake: FakeFactPulse, live_server: Any, secret: str = SECRET) -> None:
    settings.FACTPULSE_TASKS = {
        "BASE_URL": fake.base_url,
        "API_KEY": KEY,
        "WEBHOOK_SECRET": secret,
        "WEBHOOK_URL": live_server.url + reverse("factpulse_tasks:webhook"),
        # Polling alone would take an hour: only the events can finish the tasks quickly.
        "POLL_INTERVAL": 3600,
        "POLL_MAX_INTERVAL": 3600,
    }


@pytest.fixture
def remote(live_server: Any, settings: Any, eager_celery: Celery,
           tmp_path: Any) -> Iterator[FakeFactPulse]:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=3600) as fake:
        configure(settings, fake, live_server)
        yield fake


def states(*tasks: FactPulseTask) -> list[str]:
    return [FactPulseTask.objects.get(pk=task.pk).state for task in tasks]


def test_a_submitted_task_finishes_as_soon_as_factpulse_posts_its_event(
    remote: FakeFactPulse, pdf: bytes, signal_log: SignalLog
) -> None:
    task = submit_signature(pdf, reference="FA-2026-0077")
    assert remote.submissions[-1].callback_url.endswith("/factpulse/webhook/")
    assert remote.finish(task.task_id)
    (delivery,) = remote.wait_for_webhooks(1)
    assert (delivery.event.event_type, delivery.status) == ("signature.completed", 200)
    assert states(task) == ["succeeded"]
    assert remote.status_calls(task.task_id) == 1
    assert signal_log.names_for(task.task_id) == ["signature_finished", "task_finished"]


def test_a_duplicated_event_gives_one_final_move_and_one_set_of_signals(
    live_server: Any, settings: Any, eager_celery: Celery, pdf: bytes, signal_log: SignalLog
) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=3600,
                       webhook_copies=3) as fake:
        configure(settings, fake, live_server)
        task = submit_validation(pdf)
        fake.finish(task.task_id)
        deliveries = fake.wait_for_webhooks(3)
        assert [d.status for d in deliveries] == [200, 200, 200]
        assert fake.status_calls(task.task_id) == 1
    assert states(task) == ["succeeded"]
    assert signal_log.names_for(task.task_id) == ["task_finished", "validation_finished"]


def test_events_delivered_out_of_order_finish_every_task_once(
    live_server: Any, settings: Any, eager_celery: Celery, pdf: bytes, signal_log: SignalLog
) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=3600,
                       hold_webhooks=True, webhook_copies=2) as fake:
        configure(settings, fake, live_server)
        tasks = [submit_validation(pdf, reference=f"FA-{n}") for n in range(3)]
        for task in tasks:
            fake.finish(task.task_id)
        fake.release_webhooks(reverse=True)
        deliveries = fake.wait_for_webhooks(6)
    assert [d.event.task_id for d in deliveries][::2] == [t.task_id for t in reversed(tasks)]
    assert states(*tasks) == ["succeeded"] * 3
    for task in tasks:
        assert signal_log.names_for(task.task_id) == ["task_finished", "validation_finished"]


def test_events_signed_with_another_secret_are_refused_and_polling_still_finishes(
    live_server: Any, settings: Any, eager_celery: Celery, pdf: bytes
) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret="some-other-secret-0000000000000000",
                       finish_after=3600) as fake:
        configure(settings, fake, live_server)
        task = submit_validation(pdf)
        fake.finish(task.task_id)
        (delivery,) = fake.wait_for_webhooks(1)
        assert delivery.status == 401
        assert states(task) == ["pending"] and fake.status_calls() == 0
        assert poll_due().succeeded == 1  # the safety net: a beat cycle
