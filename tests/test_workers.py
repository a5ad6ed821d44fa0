"""Real Celery worker and beat processes, Redis as broker, PostgreSQL as database.

The processes share the test database, the media folder and the fake
FactPulse of this test process. Each finished signal they send is appended to
a log file, so the tests can count deliveries across processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from factpulse_tasks.models import Artifact, FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("FACTPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
State = FactPulseTask.State

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="worker processes share the test database: PostgreSQL only"),
]


@dataclass
class Cluster:
    """Worker and beat processes started for one test."""

    tmp: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def media(self) -> Path:
        return Path(self.env["FACTPULSE_WORKER_MEDIA"])

    def start(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.worker_app", *args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )

    def worker(self, name: str) -> None:
        self.start(name, "worker", "-P", "solo", "-n", f"{name}@%h", "--loglevel=INFO",
                   "--without-gossip", "--without-mingle", "--without-heartbeat")

    def beat(self) -> None:
        self.start("beat", "beat", "-s", str(self.tmp / "beat-schedule"), "--loglevel=INFO")

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(10)

    def signals(self) -> list[tuple[str, str, str, str]]:
        path = Path(self.env["FACTPULSE_SIGNAL_LOG"])
        if not path.exists():
            return []
        return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None and process.returncode != -signal.SIGKILL:
                    pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}\n{self.log(n)[-3000:]}" for n in self.processes)
                pytest.fail(f"Timed out waiting for {what}.\n{logs}")
            time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture
def redis_db() -> Iterator[Any]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # Redis must run: make test starts it
    client.flushdb()
    yield client
    client.flushdb()


def cluster_for(fake: FakeFactPulse, tmp_path: Path, **app_settings: Any) -> Cluster:
    settings = {"BASE_URL": fake.base_url, "API_KEY": API_KEY, "POLL_ON_TRACK": False,
                **app_settings}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        FACTPULSE_WORKER_DB=connection.settings_dict["NAME"],
        FACTPULSE_WORKER_MEDIA=str(tmp_path / "media"),
        FACTPULSE_WORKER_SETTINGS=json.dumps(settings),
        FACTPULSE_WORKER_BROKER=REDIS_URL,
        FACTPULSE_WORKER_QUEUE=f"factpulse-tests-{uuid.uuid4().hex[:8]}",
        FACTPULSE_SIGNAL_LOG=str(tmp_path / "signals.log"),
    )
    return Cluster(tmp_path, env)


@pytest.fixture
def cluster(fake: FakeFactPulse, tmp_path: Path, redis_db: Any) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(**app_settings: Any) -> Cluster:
        made.append(cluster_for(fake, tmp_path, **app_settings))
        return made[-1]

    yield make
    for one in made:
        one.stop()


def expect_once_each(cluster: Cluster, outcomes: dict[str, tuple[str, str]]) -> None:
    """Every task has its expected state and got exactly one of each of its signals."""
    delivered = Counter((name, task_id) for name, task_id, _, _ in cluster.signals())
    for task_id, (kind, state) in outcomes.items():
        task = FactPulseTask.objects.get(task_id=task_id)
        assert task.state == state, (task_id, task.state, task.error_code, task.last_error)
        assert delivered.pop(("task_finished", task_id)) == 1, task_id
        assert delivered.pop((f"{kind}_finished", task_id)) == 1, task_id
        assert task.notified_at is not None and task.notification_error == ""
    assert not delivered, f"signals for no expected task, or sent twice: {delivered}"


def expect_files_match(cluster: Cluster, sent: dict[str, dict[str, str]]) -> None:
    """Artifacts hold the bytes FactPulse sent, and storage holds nothing else."""
    kept = set()
    for task_id, digests in sent.items():
        artifacts = {a.role: a for a in Artifact.objects.filter(task__task_id=task_id)}
        assert {role: a.sha256 for role, a in artifacts.items()} == digests, task_id
        for artifact in artifacts.values():
            path = cluster.media / artifact.file.name
            assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.sha256
            kept.add(path)
    stored = {p for p in cluster.media.rglob("*") if p.is_file()}
    assert stored == kept, f"orphan files: {sorted(map(str, stored - kept))}"


def test_a_real_worker_and_beat_finish_every_task_and_signal_each_once(
    fake: FakeFactPulse, cluster: Callable[..., Cluster]
) -> None:
    one = cluster(POLL_INTERVAL=0.2, POLL_MAX_INTERVAL=0.5)
    scripts = {
        "generation": (answers.pending(), answers.started(), answers.generation_success()),
        "signature": (answers.started(), answers.signature_success()),
        "validation": (answers.pending(), answers.validation_success(compliant=False)),
    }
    outcomes: dict[str, tuple[str, str]] = {}
    sent: dict[str, dict[str, str]] = {}
    for n in range(12):
        kind = ("generation", "signature", "validation")[n % 3]
        task_id = str(uuid.uuid4())
        script = scripts[kind] if n != 11 else (answers.business_error(),)
        fake.script(task_id, *script)
        FactPulseTask.objects.track(task_id, kind, reference=f"INV-{n}")
        outcomes[task_id] = (kind, State.FAILED if n == 11 else State.SUCCEEDED)
        sent[task_id] = script[-1].sha256
    one.worker("worker")
    one.beat()
    one.wait_for(lambda: len(one.signals()) == 24, 60, "24 finished signals")
    time.sleep(1)  # a duplicate would show up now
    expect_once_each(one, outcomes)
    expect_files_match(one, sent)
    assert "factpulse poll cycle claimed=" in one.log("worker")


def test_a_new_task_is_polled_at_once_not_at_the_next_beat_tick(
    fake: FakeFactPulse, cluster: Callable[..., Cluster], task_id: str, settings: Any
) -> None:
    from celery import Celery

    one = cluster(POLL_INTERVAL=0.2, POLL_MAX_INTERVAL=0.5)
    one.env["FACTPULSE_WORKER_BEAT_SECONDS"] = "600"
    one.worker("worker")
    one.beat()
    one.wait_for(lambda: "ready." in one.log("worker"), 30, "the worker to start")
    # This process asks the worker for a cycle when it tracks a task.
    app = Celery("factpulse-tests-tracker", set_as_current=True)
    app.conf.update(broker_url=REDIS_URL, task_default_queue=one.env["FACTPULSE_WORKER_QUEUE"],
                    task_always_eager=False)
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_ON_TRACK": True}
    fake.script(task_id, answers.validation_success())
    tracked = time.monotonic()
    FactPulseTask.objects.track(task_id, "validation")
    one.wait_for(lambda: fake.status_calls(task_id) > 0, 30, "the first poll")
    first_poll = next(r.at for r in fake.requests if r.task_id == task_id)
    assert first_poll - tracked < 10  # the next beat tick is 600 s away
    one.wait_for(lambda: len(one.signals()) == 2, 30, "the finished signals")
    assert FactPulseTask.objects.get(task_id=task_id).state == State.SUCCEEDED


FAULTS = (
    lambda: answers.http_error(503, headers={"Retry-After": "1"}),
    lambda: answers.http_error(500),
    lambda: answers.reset(),
    lambda: answers.hang(3),  # longer than READ_TIMEOUT
    lambda: answers.raw(b'{"status": "SUCC'),
    lambda: answers.raw(b"<html>502 Bad Gateway</html>", status=200, content_type="text/html"),
)


def test_three_workers_survive_faults_and_a_killed_worker(
    fake: FakeFactPulse, cluster: Callable[..., Cluster]
) -> None:
    fake.latency = 0.05  # workers spend their time in calls, where the kill lands
    try:
        three = cluster(POLL_INTERVAL=0.2, POLL_MAX_INTERVAL=0.5, POLL_JITTER=0.2,
                        LEASE_SECONDS=5, TOTAL_TIMEOUT=2.5, READ_TIMEOUT=1,
                        CONNECT_TIMEOUT=1, BATCH_SIZE=4, CONCURRENCY=4)
        outcomes: dict[str, tuple[str, str]] = {}
        sent: dict[str, dict[str, str]] = {}
        for n in range(36):
            kind = ("generation", "signature", "validation")[n % 3]
            final = {
                "generation": answers.generation_success,
                "signature": answers.signature_success,
                "validation": answers.validation_success,
            }[kind]()
            if n % 9 == 8:
                final = answers.business_error()
            faults = [FAULTS[(n + k) % len(FAULTS)]() for k in range(n % 3)]
            task_id = str(uuid.uuid4())
            fake.script(task_id, *faults, answers.pending(), answers.started(), final)
            FactPulseTask.objects.track(task_id, kind)
            outcomes[task_id] = (kind, State.FAILED if n % 9 == 8 else State.SUCCEEDED)
            sent[task_id] = final.sha256
        for name in ("w1", "w2", "w3"):
            three.worker(name)
        three.beat()
        three.wait_for(lambda: len(three.signals()) >= 12, 90, "a third of the tasks to finish")
        three.kill("w2")
        three.wait_for(lambda: len(three.signals()) >= 72, 120, "every finished signal")
        time.sleep(1.5)  # a duplicate would show up now
    finally:
        fake.latency = 0.0
    expect_once_each(three, outcomes)
    expect_files_match(three, sent)
    workers = {pid for _, _, _, pid in three.signals()}
    assert len(workers) >= 2, "the surviving workers shared the tasks"
