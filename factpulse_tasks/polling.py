"""Polling cycles: claim the due tasks, ask FactPulse for their status, apply the answers.

The status calls of one batch run concurrently in a small thread pool over one
pooled HTTP session; each thread only fetches and parses. Everything that
touches the database runs in the calling thread, through
:mod:`factpulse_tasks.transitions`, and no network call happens inside a
database transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import connections

from . import notifications, transitions
from .client import FactPulseClient
from .conf import app_settings
from .exceptions import (
    AuthenticationError,
    EndpointNotFound,
    FactPulseError,
    PayloadError,
    PollInsideTransaction,
    TransportError,
)
from .kinds import get_kind
from .models import FactPulseTask
from .payloads import MALFORMED, Failure, StatusUpdate, Waiting

logger = logging.getLogger("factpulse_tasks")

# After this many transport errors in a row, a cycle stops calling FactPulse and
# gives its remaining tasks back with a delay: the service is down or overloaded.
ERROR_BURST = 5
# "Still waiting" answers are written this many at a time, in one UPDATE.
WAITING_LOT = 50


@dataclass
class CycleReport:
    """What one polling cycle did."""

    claimed: int = 0
    polled: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    waiting: int = 0
    errors: int = 0
    refused: int = 0
    released: int = 0
    renotified: int = 0
    duration: float = 0.0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.expired

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dict, for logs and Celery results."""
        return asdict(self)


def poll_due(
    *,
    now: datetime | None = None,
    limit: int | None = None,
    client: FactPulseClient | None = None,
    pks: Iterable[int] | None = None,
) -> CycleReport:
    """Run one polling cycle: claim the due tasks, poll them, apply the answers.

    ``limit`` defaults to ``FACTPULSE_TASKS['BATCH_SIZE']``; ``pks`` restricts
    the cycle to those tasks. Up to ``CONCURRENCY`` calls run at once. An
    authentication or address problem, or a burst of transport errors, stops
    the cycle early; the tasks not polled are given back with a delay. Raises
    :class:`PollInsideTransaction` when called inside a database transaction.
    """
    if connections[transitions.database()].in_atomic_block:
        raise PollInsideTransaction(
            "poll_due() makes network calls and commits each task on its own; call it "
            "outside transaction.atomic() (and outside ATOMIC_REQUESTS views). In tests, "
            "use pytest-django's transactional_db or django_db(transaction=True)."
        )
    started = time.monotonic()
    report = CycleReport()
    tasks = transitions.claim_due(now=now, limit=limit, pks=pks)
    report.claimed = len(tasks)
    if tasks:
        own_client = client is None
        concurrency = min(app_settings.CONCURRENCY, len(tasks))
        client = client or FactPulseClient.from_settings(pool_size=concurrency)
        try:
            _Batch(tasks, client, concurrency, started, report).run()
        finally:
            if own_client:
                client.close()
    if pks is None:
        report.renotified = notifications.resend_lost_notifications()
    report.duration = round(time.monotonic() - started, 3)
    if report.claimed or report.renotified:
        logger.info(
            "factpulse poll cycle claimed=%d polled=%d finished=%d waiting=%d errors=%d "
            "refused=%d released=%d duration=%.3fs",
            report.claimed, report.polled, report.finished, report.waiting, report.errors,
            report.refused, report.released, report.duration,
            extra={"factpulse_cycle": report.as_dict()},
        )
    return report


# What a fetch thread hands back: the parsed answer, or the error met.
Fetched = StatusUpdate | Exception


class _Batch:
    """One claimed batch: fetch concurrently, apply in the calling thread."""

    def __init__(
        self,
        tasks: list[FactPulseTask],
        client: FactPulseClient,
        concurrency: int,
        started: float,
        report: CycleReport,
    ) -> None:
        self.tasks = tasks
        self.client = client
        self.concurrency = concurrency
        # Start a call only if it can end before the claim does: past it another
        # worker may take the task. The first calls always go, or nothing would.
        self.lease_end = started + app_settings.LEASE_SECONDS
        self.report = report
        self.stop = threading.Event()
        self.calls_started = 0
        self.lock = threading.Lock()
        self.release_delay = 0.0
        self.transport_errors_in_a_row = 0
        self.waiting: list[tuple[FactPulseTask, Waiting]] = []

    def run(self) -> None:
        untouched = {task.pk: task for task in self.tasks}
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="factpulse-poll")
        try:
            futures: dict[Future[Fetched | None], FactPulseTask] = {
                pool.submit(self._fetch, task): task for task in self.tasks
            }
            for future in as_completed(futures):
                task = futures.pop(future)
                fetched = future.result()
                del future  # the answer may be large: keep it no longer than needed
                if fetched is None:
                    continue  # not started: given back below
                untouched.pop(task.pk)
                if isinstance(fetched, Waiting):
                    # Most answers say "not yet": written together, one UPDATE per lot.
                    self.waiting.append((task, fetched))
                    if len(self.waiting) >= WAITING_LOT:
                        self._flush_waiting()
                else:
                    self._apply(task, fetched)
                del fetched
            self._flush_waiting()
        except BaseException:
            # Celery's soft time limit, or a crash: let the calls in flight finish
            # on their own; the tasks they hold keep their claim until it ends.
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        if untouched:
            self.report.released = transitions.release(
                untouched.values(), delay=self.release_delay
            )

    def _fetch(self, task: FactPulseTask) -> Fetched | None:
        with self.lock:
            if self.stop.is_set():
                return None
            if self.calls_started and time.monotonic() + self.client.longest_call > self.lease_end:
                logger.warning("Polling cycle stopped near the end of its lease; "
                               "the tasks left are given back.")
                self.stop.set()
                return None
            self.calls_started += 1
        try:
            fetched: Fetched = fetch_status(task, self.client)
        except Exception as exc:  # handed to the calling thread, which records it
            fetched = exc
        self._note(fetched)
        return fetched

    def _note(self, fetched: Fetched) -> None:
        """Stop starting calls when FactPulse refuses them or keeps failing."""
        with self.lock:
            if isinstance(fetched, (AuthenticationError, EndpointNotFound)):
                self.release_delay = app_settings.POLL_MAX_INTERVAL
                self.stop.set()
            elif isinstance(fetched, TransportError) and fetched.retryable:
                self.transport_errors_in_a_row += 1
                if self.transport_errors_in_a_row >= ERROR_BURST and not self.stop.is_set():
                    logger.warning("%d FactPulse calls in a row failed; the cycle stops and "
                                   "gives its remaining tasks back.", ERROR_BURST)
                    self.release_delay = transitions.next_interval(self.transport_errors_in_a_row)
                    self.stop.set()
            else:
                self.transport_errors_in_a_row = 0

    def _apply(self, task: FactPulseTask, fetched: Fetched) -> None:
        self._count(_apply_safely(task, fetched))

    def _flush_waiting(self) -> None:
        pairs, self.waiting = self.waiting, []
        if not pairs:
            return
        try:
            outcomes = transitions.apply_waiting(pairs)
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            logger.exception("Could not write a lot of waiting answers; writing them one by one")
            outcomes = [_apply_safely(task, update) for task, update in pairs]
        for outcome in outcomes:
            self._count(outcome)

    def _count(self, outcome: str) -> None:
        self.report.polled += 1
        setattr(self.report, outcome, getattr(self.report, outcome) + 1)


def fetch_status(task: FactPulseTask, client: FactPulseClient) -> StatusUpdate:
    """Ask FactPulse for one task's status and parse it; no database access.

    Raises the client's errors and :class:`PayloadError` as they come.
    """
    spec = get_kind(task.kind)
    body = client.get_json(spec.path_for(task.task_id))
    remote_id = body.get("taskId", body.get("task_id"))
    if remote_id is not None and remote_id != task.task_id:
        raise PayloadError(
            f"FactPulse answered for task {str(remote_id)[:64]!r} instead of {task.task_id}.",
            code=MALFORMED,
            final=False,
        )
    return spec.parse(body)


def poll_task(task: FactPulseTask, client: FactPulseClient) -> str:
    """Poll one task in this thread and apply the answer; return its report field."""
    try:
        fetched: Fetched = fetch_status(task, client)
    except Exception as exc:
        fetched = exc
    return _apply_safely(task, fetched)


def _apply_safely(task: FactPulseTask, fetched: Fetched) -> str:
    """Apply one answer or error; a bug or a database error must not stop the others."""
    try:
        return _apply_fetched(task, fetched)
    except SoftTimeLimitExceeded:
        raise  # Celery asks the whole cycle to stop; the tasks left keep their claim.
    except Exception as exc:
        logger.exception("Unexpected error while polling FactPulse task %s", task.task_id)
        try:
            # Our own errors never carry secrets; others are named, not quoted.
            if not isinstance(exc, FactPulseError):
                exc = RuntimeError(f"Unexpected {type(exc).__name__}; the traceback is in the log.")
            return transitions.record_error(task, exc)
        except Exception:
            logger.exception("Could not record the error of FactPulse task %s", task.task_id)
            return "errors"


def _apply_fetched(task: FactPulseTask, fetched: Fetched) -> str:
    if not isinstance(fetched, Exception):
        return transitions.apply(task, fetched)
    if isinstance(fetched, (AuthenticationError, EndpointNotFound)):
        logger.error("FactPulse refused polling of task %s: %s", task.task_id, fetched)
        # Not the task's fault: it neither expires nor fails until this is fixed.
        transitions.record_error(task, fetched, may_expire=False)
        return "refused"
    if isinstance(fetched, PayloadError):
        if fetched.final:
            return transitions.apply(task, Failure(task.remote_status, fetched.code, str(fetched)))
        return transitions.record_error(task, fetched)
    if isinstance(fetched, TransportError):
        if fetched.retryable:
            return transitions.record_error(task, fetched)
        failure = Failure(task.remote_status, f"HTTP_{fetched.status}", str(fetched))
        return transitions.apply(task, failure)
    raise fetched  # a bug: logged and recorded by _apply_safely

