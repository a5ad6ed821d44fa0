"""Signed webhook events the fake FactPulse posts to the ``callback_url`` of a submission.

An event is ``{"event_type": "<kind>.completed" | "<kind>.failed", "data": {"task_id": …}}``
with ``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>``. A
:class:`WebhookSender` posts them from one thread, in order, each as many times
as asked (duplicates), or holds them until :meth:`WebhookSender.release`, which
can send them in reverse order. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .answers import Answer

__all__ = ["Delivery", "WebhookEvent", "WebhookSender", "event_type_for", "make_event"]

SIGNATURE_HEADER = "X-Webhook-Signature"
#: Seconds the sender waits for the receiver of one event.
DELIVERY_TIMEOUT = 10.0


@dataclass(frozen=True)
class WebhookEvent:
    """One event as it is posted: exact body and signature header."""

    task_id: str
    event_type: str
    callback_url: str
    body: bytes
    signature: str


@dataclass(frozen=True)
class Delivery:
    """One attempt to post an event.

    ``status`` is the HTTP status the receiver gave, ``None`` when it could not
    be reached. ``at`` is ``time.time()`` when the post started.
    """

    event: WebhookEvent
    status: int | None
    at: float


def event_type_for(kind: str, answer: Answer) -> str:
    """``<kind>.completed`` for a Celery and business success, ``<kind>.failed`` otherwise."""
    document = answer.json_for("")
    completed = (
        answer.status == 200
        and isinstance(document, dict)
        and document.get("status") == "SUCCESS"
        and isinstance(document.get("result"), dict)
        and document["result"].get("status") == "SUCCESS"
    )
    return f"{kind}.{'completed' if completed else 'failed'}"


def make_event(
    task_id: str, event_type: str, callback_url: str, secret: str
) -> WebhookEvent:
    """Build and sign one event."""
    body = json.dumps(
        {"event_type": event_type, "data": {"task_id": task_id}}, separators=(",", ":")
    ).encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return WebhookEvent(task_id, event_type, callback_url, body, f"sha256={digest}")


class WebhookSender:
    """Posts events from ``workers`` daemon threads.

    With one worker (the default) events are posted one at a time, in the order
    they are sent; with more, several at once, in no set order. ``copies`` is how
    many times each event is posted (FactPulse may deliver an event more than
    once). With ``hold``, events wait in :attr:`held` until :meth:`release`.
    """

    def __init__(self, *, copies: int = 1, hold: bool = False, workers: int = 1) -> None:
        if copies < 1 or workers < 1:
            raise ValueError("copies and workers must be at least 1")
        self.copies = copies
        self.hold = hold
        self._lock = threading.Lock()
        self._held: list[WebhookEvent] = []
        self._deliveries: list[Delivery] = []
        self._queue: queue.Queue[WebhookEvent | None] = queue.Queue()
        self._done = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._run, name=f"FakeFactPulse-webhooks-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def held(self) -> list[WebhookEvent]:
        with self._lock:
            return list(self._held)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def send(self, event: WebhookEvent) -> None:
        """Post ``event`` (``copies`` times), or hold it."""
        with self._lock:
            if self.hold:
                self._held.append(event)
                return
        for _ in range(self.copies):
            self._queue.put(event)

    def release(self, *, reverse: bool = False) -> int:
        """Post the held events (newest first with ``reverse``); return how many."""
        with self._lock:
            events, self._held = self._held, []
        for event in reversed(events) if reverse else events:
            for _ in range(self.copies):
                self._queue.put(event)
        return len(events)

    def wait(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Wait until ``count`` deliveries were made in all; return every delivery."""
        deadline = time.monotonic() + timeout
        with self._done:
            while len(self._deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self._deliveries)} webhook deliveries after {timeout:g} s, "
                        f"expected {count}"
                    )
                self._done.wait(left)
            return list(self._deliveries)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=DELIVERY_TIMEOUT + 1)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            at = time.time()
            status = _post(event)
            with self._done:
                self._deliveries.append(Delivery(event, status, at))
                self._done.notify_all()


def _post(event: WebhookEvent) -> int | None:
    request = urllib.request.Request(
        event.callback_url,
        data=event.body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "FakeFactPulse-Webhooks",
            SIGNATURE_HEADER: event.signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
    except (OSError, ValueError):
        return None
