"""The fake FactPulse's webhooks and time-based finish, seen from a plain HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from factpulse_tasks.testing import FakeFactPulse, answers

KEY = "fake-webhooks-key"
SECRET = "fake-webhooks-secret-0123456789abcdef"


class Receiver(ThreadingHTTPServer):
    """Records every POST: (headers, body)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answer = 200
        super().__init__(("127.0.0.1", 0), _Record)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Record(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        self.send_response(self.server.answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def submit(fake: FakeFactPulse, kind: str = "validation", callback_url: str | None = None,
           **fields: str) -> str:
    path = {"generation": "generate-invoice", "signature": "sign-pdf-async",
            "validation": "validate-facturx-async"}[kind]
    data = dict(fields)
    if callback_url:
        data["callback_url"] = callback_url
    pdf = ("a.pdf", b"%PDF-1.7 x", "application/pdf")
    files = {} if kind == "generation" else {"pdf_file": pdf}
    if kind == "generation":
        data.setdefault("invoice_data", "{}")
    response = requests.post(f"{fake.base_url}/api/v1/processing/{path}", data=data,
                             files=files or None, headers={"X-API-Key": KEY}, timeout=5)
    assert response.status_code == 202, response.text
    return str(response.json()["taskId"])


def status(fake: FakeFactPulse, task_id: str) -> str:
    response = requests.get(f"{fake.base_url}/api/v1/processing/tasks/{task_id}/status",
                            headers={"X-API-Key": KEY}, timeout=5)
    return str(response.json()["status"])


def test_a_held_task_never_reaches_its_last_answer_before_it_finishes(receiver: Receiver) -> None:
    with FakeFactPulse(api_key=KEY, finish_after=60) as fake:
        task_id = submit(fake)
        assert [status(fake, task_id) for _ in range(5)] == ["PENDING"] + ["STARTED"] * 4
        assert fake.finished_at(task_id) is None
        before = time.time()
        assert fake.finish(task_id) is True
        assert fake.finish(task_id) is False
        assert status(fake, task_id) == "SUCCESS"
        assert before <= (fake.finished_at(task_id) or 0) <= time.time()


def test_finish_after_ends_a_submitted_task_on_time_and_posts_a_signed_event(
    receiver: Receiver,
) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=0.3) as fake:
        submitted = time.time()
        task_id = submit(fake, "generation", receiver.url)
        (delivery,) = fake.wait_for_webhooks(1, timeout=5)
    assert delivery.status == 200
    assert 0.3 <= delivery.at - submitted < 2
    ((headers, body),) = receiver.received
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Webhook-Signature"] == f"sha256={expected}"
    assert json.loads(body) == {"event_type": "generation.completed",
                                "data": {"task_id": task_id}}
    assert delivery.event.body == body


def test_a_failed_task_sends_a_failed_event(receiver: Receiver) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=60) as fake:
        fake.script_submissions("signature", answers.started(), answers.celery_failure())
        task_id = submit(fake, "signature", receiver.url)
        fake.finish(task_id)
        (delivery,) = fake.wait_for_webhooks(1)
    assert delivery.event.event_type == "signature.failed"


def test_events_can_be_delivered_twice(receiver: Receiver) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=60,
                       webhook_copies=2) as fake:
        task_id = submit(fake, "validation", receiver.url)
        fake.finish(task_id)
        deliveries = fake.wait_for_webhooks(2)
    assert [d.event.task_id for d in deliveries] == [task_id, task_id]
    assert receiver.received[0] == receiver.received[1]


def test_held_events_can_be_released_newest_first(receiver: Receiver) -> None:
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=60,
                       hold_webhooks=True) as fake:
        first, second = submit(fake, callback_url=receiver.url), submit(fake,
                                                                        callback_url=receiver.url)
        fake.finish(first)
        fake.finish(second)
        assert [e.task_id for e in fake.held_webhooks] == [first, second]
        assert receiver.received == []
        assert fake.release_webhooks(reverse=True) == 2
        deliveries = fake.wait_for_webhooks(2)
        assert fake.held_webhooks == []
    assert [d.event.task_id for d in deliveries] == [second, first]


def test_no_event_without_a_secret_or_a_callback_url(receiver: Receiver) -> None:
    with FakeFactPulse(api_key=KEY, finish_after=60) as fake:
        fake.finish(submit(fake, callback_url=receiver.url))
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=60) as fake:
        fake.finish(submit(fake))
        assert fake.webhook_deliveries == []
    assert receiver.received == []


def test_a_receiver_that_refuses_or_is_gone_is_recorded(receiver: Receiver) -> None:
    receiver.answer = 401
    with FakeFactPulse(api_key=KEY, webhook_secret=SECRET, finish_after=60) as fake:
        fake.finish(submit(fake, callback_url=receiver.url))
        fake.finish(submit(fake, callback_url="http://127.0.0.1:9/hook"))
        deliveries = fake.wait_for_webhooks(2)
    assert [d.status for d in deliveries] == [401, None]


def test_without_finish_after_scripts_advance_per_request_as_before() -> None:
    with FakeFactPulse(api_key=KEY) as fake:
        task_id = submit(fake)
        assert [status(fake, task_id) for _ in range(4)] == [
            "PENDING", "STARTED", "SUCCESS", "SUCCESS"]
        assert fake.finish(task_id) is False
