"""Answers built to hurt: redirects, trickling bodies, odd headers, huge structures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.payloads import MAX_DEPTH, MAX_TOKENS
from factpulse_tasks.polling import poll_due
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import API_KEY, drive

pytestmark = pytest.mark.django_db(transaction=True)

State = FactPulseTask.State


class RawServer:
    """A one-purpose HTTP server on 127.0.0.1 that records requests and answers by hand."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(65536))
                    self.respond(conn, self.stopped)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def thief() -> Iterator[RawServer]:
    def answer(conn: socket.socket, stopped: threading.Event) -> None:
        body = b'{"status": "PENDING"}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)

    server = RawServer(answer)
    yield server
    server.close()


def test_redirect_is_not_followed_and_the_key_stays_home(
    fake: FakeFactPulse, task_id: str, thief: RawServer
) -> None:
    fake.script(task_id, answers.http_error(
        302, b"", headers={"Location": f"http://127.0.0.1:{thief.port}/steal"}))
    FactPulseTask.objects.track(task_id, "generation")
    report = poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert thief.requests == []
    assert (report.refused, task.state) == (1, State.PENDING)
    assert "redirects" in task.last_error and "BASE_URL" in task.last_error


def trickle_body(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n")
    trickle(conn, stopped, b" ")


def trickle_headers(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    trickle(conn, stopped, b"X")


def trickle_until_close(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
    trickle(conn, stopped, b" ")


def trickle(conn: socket.socket, stopped: threading.Event, byte: bytes) -> None:
    for _ in range(200):
        if stopped.is_set():
            return
        conn.sendall(byte)
        time.sleep(0.05)


@pytest.mark.parametrize("respond", [trickle_body, trickle_headers, trickle_until_close],
                         ids=["body", "headers", "close-delimited-body"])
def test_trickling_answer_is_cut_off_at_the_whole_call_deadline(
    fake: FakeFactPulse, settings: Any, task_id: str, respond: Any
) -> None:
    slow = RawServer(respond)
    try:
        settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS,
                                    "BASE_URL": f"http://127.0.0.1:{slow.port}",
                                    "READ_TIMEOUT": 0.5, "TOTAL_TIMEOUT": 1}
        FactPulseTask.objects.track(task_id, "generation")
        started = time.monotonic()
        report = poll_due()
        elapsed = time.monotonic() - started
    finally:
        slow.close()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert report.errors == 1 and task.state == State.PENDING
    assert "took more than 1 s" in task.last_error
    assert elapsed < 2.5  # the trickle alone would last 10 s


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Retry-After": "\u00b2"}, 503), ({"Retry-After": "\u0661\u0662"}, 429),
     ({"Retry-After": "not a date"}, 503), ({"Retry-After": "\u00b2"}, 401)],
)
def test_odd_retry_after_is_ignored(fake: FakeFactPulse, task_id: str,
                                    headers: dict[str, str], status: int) -> None:
    fake.script(task_id, answers.http_error(status, headers=headers))
    FactPulseTask.objects.track(task_id, "signature")
    report = poll_due()
    assert report.errors + report.refused == 1
    assert FactPulseTask.objects.get(task_id=task_id).state == State.PENDING


def test_retry_after_as_an_http_date_is_obeyed(fake: FakeFactPulse, task_id: str) -> None:
    from email.utils import formatdate

    fake.script(task_id, answers.http_error(
        503, headers={"Retry-After": formatdate(time.time() + 120, usegmt=True)}))
    FactPulseTask.objects.track(task_id, "signature")
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.next_poll_at - task.last_polled_at).total_seconds() == pytest.approx(120, abs=3)


def test_content_length_with_unicode_digits_is_read_normally(
    fake: FakeFactPulse, task_id: str
) -> None:
    def answer(conn: socket.socket, stopped: threading.Event) -> None:
        body = json.dumps({"taskId": task_id, "status": "STARTED"}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: \xc2\xb2\r\n\r\n" + body)

    odd = RawServer(answer)
    try:
        from factpulse_tasks.client import FactPulseClient
        from factpulse_tasks.exceptions import FactPulseError

        client = FactPulseClient(f"http://127.0.0.1:{odd.port}", "k", read_timeout=1)
        try:
            client.get_json("/x")
        except FactPulseError:
            pass  # refused cleanly is fine too; anything else fails the test
    finally:
        odd.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "SUCCESS", "result": {"status": "SUCCESS", "x": '
        + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"}}",
        b'{"status": "SUCCESS", "result": {"status": "SUCCESS", "x": ['
        + b"{}," * MAX_TOKENS + b"{}]}}",
        b'{"status": "SUCCESS", "result": {"status": "SUCCESS", "x": ['
        + b"0," * MAX_TOKENS + b"0]}}",
    ],
    ids=["too-deep", "too-many-objects", "too-many-numbers"],
)
def test_answer_too_complex_for_any_result_fails_the_task(
    fake: FakeFactPulse, task_id: str, body: bytes
) -> None:
    fake.script(task_id, answers.raw(body))
    FactPulseTask.objects.track(task_id, "status")
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.FAILED, "RESPONSE_TOO_COMPLEX")


def test_file_name_with_control_characters_is_stored_safe_and_downloads(
    fake: FakeFactPulse, task_id: str, client: Client
) -> None:
    success = answers.generation_success(filename="../../FA-2026-0001.pdf\n")
    fake.script(task_id, success)
    FactPulseTask.objects.track(task_id, "generation")
    drive()
    task = FactPulseTask.objects.get(task_id=task_id)
    document = task.artifacts.get(role="document")
    assert document.filename == "FA-2026-0001.pdf"
    client.force_login(User.objects.create_superuser("root", password="pw"))
    response = client.get(reverse("admin:factpulse_tasks_factpulsetask_artifact_download",
                                  args=[task.pk, document.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="FA-2026-0001.pdf"'


def test_admin_list_does_not_load_the_json_columns(fake: FakeFactPulse, client: Client) -> None:
    fake.script("big-1", answers.validation_success(compliant=False))
    FactPulseTask.objects.track("big-1", "validation")
    drive()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("admin:factpulse_tasks_factpulsetask_changelist"))
    assert page.status_code == 200 and "big-1" in page.content.decode()
    selects = [q["sql"] for q in queries if "factpulse_tasks_factpulsetask" in q["sql"]
               and q["sql"].lstrip().upper().startswith("SELECT")]
    assert selects and not any('"result"' in sql or '"metadata"' in sql for sql in selects)


def test_admin_detail_shows_at_most_the_display_limit(client: Client) -> None:
    from factpulse_tasks.admin import JSON_DISPLAY_LIMIT

    task = FactPulseTask.objects.track("wide-1", "status")
    FactPulseTask.objects.filter(pk=task.pk).update(result={"text": "x" * 300_000})
    client.force_login(User.objects.create_superuser("root", password="pw"))
    page = client.get(reverse("admin:factpulse_tasks_factpulsetask_change", args=[task.pk]))
    html = page.content.decode()
    assert "more characters not shown" in html
    assert len(html) < JSON_DISPLAY_LIMIT + 60_000
    assert API_KEY not in html


def test_calls_stop_starting_threads_when_too_many_hang(
    fake: FakeFactPulse, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factpulse_tasks import client as client_module
    from factpulse_tasks.client import FactPulseClient
    from factpulse_tasks.exceptions import TransientError

    monkeypatch.setattr(client_module, "_runner", client_module._DaemonRunner())
    monkeypatch.setattr(client_module, "MAX_FETCH_THREADS", 2)
    fake.script(task_id, answers.hang(1.5))
    path = f"/api/v1/processing/tasks/{task_id}/validation-status"
    client = FactPulseClient(fake.base_url, API_KEY, total_timeout=0.2)
    for _ in range(2):
        with pytest.raises(TransientError, match="more than 0.2 s"):
            client.get_json(path)
    with pytest.raises(TransientError, match="2 calls to FactPulse are still waiting"):
        client.get_json(path)
    assert fake.status_calls(task_id) == 2  # the third was never sent
