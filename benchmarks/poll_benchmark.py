"""How fast, how frugal and how lean polling is, against the fake FactPulse.

Run from the project root (PostgreSQL on 127.0.0.1:5432 by default; it
creates and drops the database ``factpulse_bench``)::

    .venv/bin/python benchmarks/poll_benchmark.py
    .venv/bin/python benchmarks/poll_benchmark.py --database sqlite --tasks 500 --quick

Sections, all on one fake server answering after ``--latency`` seconds:

1. this app's poller (one process, default concurrency) on ``--tasks`` tasks
   that each finish on their third poll: tasks/s, requests/s, SQL statements
   per poll, peak memory;
2. the ideal for that concurrency (concurrency / latency requests/s);
3. a sequential baseline that polls one task at a time until it finishes,
   as the blocking loop of a client SDK does;
4. the quota cost of the polling schedule: status calls per task and the
   delay from the remote finish to the signal, for tasks lasting 2 to 60 s;
5. peak memory of a cycle whose batch holds one 50 MB artifact;
6. the cost of the claim query with 1,000,000 finished rows (PostgreSQL).

Timings depend on the machine; the figures are for reading, not for asserting.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

API_KEY = "benchmark-key"
BENCH_DB = "factpulse_bench"


from remote_fake import spec  # noqa: E402


def configure(database: str, media: str, **app_settings: Any) -> None:
    import django
    from django.conf import settings

    if database == "postgres":
        databases = {"default": {
            "ENGINE": "django.db.backends.postgresql", "NAME": BENCH_DB,
            "USER": os.environ.get("PGUSER", "postgres"), "HOST": "127.0.0.1", "PORT": "5432",
        }}
    else:
        databases = {"default": {"ENGINE": "django.db.backends.sqlite3",
                                 "NAME": os.path.join(media, "bench.sqlite3")}}
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "factpulse_tasks"],
        DATABASES=databases, USE_TZ=True, MEDIA_ROOT=media,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        FACTPULSE_TASKS=app_settings,
        LOGGING_CONFIG=None,
    )
    django.setup()


def create_database(database: str) -> None:
    if database != "postgres":
        return
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        db.execute(f'CREATE DATABASE "{BENCH_DB}"')


def drop_database(database: str) -> None:
    if database != "postgres":
        return
    from django.db import connections

    connections.close_all()
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def track(count: int, kind: str, prefix: str) -> list[str]:
    from factpulse_tasks.models import FactPulseTask

    ids = [f"{prefix}-{uuid.uuid4().hex[:24]}" for _ in range(count)]
    for task_id in ids:
        FactPulseTask.objects.track(task_id, kind)
    return ids


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StatementCounter:
    """Counts the SQL statements Django sends, transaction control apart."""

    def __init__(self) -> None:
        self.statements = 0
        self.transaction_control = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.transaction_control += 1
        else:
            self.statements += 1
        return execute(sql, params, many, context)


# 1-3: throughput ---------------------------------------------------------------


def throughput(fake: Any, tasks: int, latency: float, sequential_tasks: int) -> dict[str, Any]:
    from django.db import connection

    from factpulse_tasks.conf import app_settings
    from factpulse_tasks.models import FactPulseTask
    from factpulse_tasks.polling import poll_due
    script = (spec("pending"), spec("started"), spec("validation_success"))
    ids = track(tasks, "validation", "tp")
    fake.script(ids, *script)
    before_calls = fake.stats()["status_calls"]
    counter = StatementCounter()
    rss_before = peak_rss_mb()
    polls = cycles = 0
    started = time.perf_counter()
    while FactPulseTask.objects.unfinished().exists():
        with connection.execute_wrapper(counter):
            report = poll_due()
        polls += report.polled
        cycles += 1
    elapsed = time.perf_counter() - started
    calls = fake.stats()["status_calls"] - before_calls
    concurrency = app_settings.CONCURRENCY
    ideal = concurrency / latency
    finished = FactPulseTask.objects.filter(task_id__in=ids, state="succeeded").count()

    # The sequential baseline: one task at a time, poll until it finishes.
    import requests

    from factpulse_tasks.kinds import get_kind

    base_ids = [f"seq-{uuid.uuid4().hex[:24]}" for _ in range(sequential_tasks)]
    fake.script(base_ids, *script)
    session = requests.Session()
    validation = get_kind("validation")
    seq_started = time.perf_counter()
    seq_calls = 0
    for task_id in base_ids:
        while True:
            seq_calls += 1
            body = session.get(f"{fake.base_url}{validation.path_for(task_id)}",
                               headers={"X-API-Key": API_KEY}, timeout=10).json()
            if body["status"] in ("SUCCESS", "FAILURE"):
                break
    seq_elapsed = time.perf_counter() - seq_started
    session.close()
    return {
        "tasks": tasks, "finished": finished, "cycles": cycles, "polls": polls,
        "status_calls": calls, "seconds": round(elapsed, 2),
        "tasks_per_s": round(finished / elapsed, 1),
        "requests_per_s": round(calls / elapsed, 1),
        "concurrency": concurrency, "latency_ms": latency * 1000,
        "ideal_requests_per_s": round(ideal, 1),
        "ratio_to_ideal": round(calls / elapsed / ideal, 3),
        "sql_per_poll": round(counter.statements / polls, 3),
        "sql_per_poll_with_begin_commit": round(
            (counter.statements + counter.transaction_control) / polls, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_growth_mb": round(peak_rss_mb() - rss_before, 1),
        "sequential_tasks": sequential_tasks,
        "sequential_tasks_per_s": round(sequential_tasks / seq_elapsed, 1),
        "sequential_requests_per_s": round(seq_calls / seq_elapsed, 1),
        "speedup_over_sequential": round((finished / elapsed) / (sequential_tasks / seq_elapsed),
                                         1),
    }


# 4: the polling schedule -------------------------------------------------------


def schedule_cost(fake: Any, tasks: int, scale: float, max_sleep: float) -> dict[str, Any]:
    from django.db.models import Min

    from factpulse_tasks.models import FactPulseTask
    from factpulse_tasks.polling import poll_due
    from factpulse_tasks.signals import task_finished

    FactPulseTask.objects.all().delete()
    signalled: dict[str, float] = {}

    def receiver(sender: Any, task: Any, **kwargs: Any) -> None:
        signalled[task.task_id] = time.time()

    task_finished.connect(receiver, weak=False)
    rng = random.Random(42)
    ids = track(tasks, "validation", "sched")
    start = time.time()
    durations = {task_id: rng.uniform(2, 60) * scale for task_id in ids}
    fake.script_until([(t, start + d) for t, d in durations.items()], spec("pending"),
                      spec("validation_success"))
    before_calls = fake.stats()["status_calls"]
    try:
        while FactPulseTask.objects.unfinished().exists():
            poll_due()
            next_due = FactPulseTask.objects.unfinished().aggregate(m=Min("next_poll_at"))["m"]
            if next_due is not None:
                time.sleep(min(max_sleep, max(0.0, next_due.timestamp() - time.time())))
    finally:
        task_finished.disconnect(receiver)
    calls = fake.stats()["status_calls"] - before_calls
    delays = sorted((signalled[t] - (start + d)) / scale for t, d in durations.items())
    return {
        "tasks": tasks, "durations_s": "2-60 (uniform)", "time_scale": scale,
        "status_calls_per_task": round(calls / tasks, 2),
        "delay_p50_s": round(statistics.median(delays), 2),
        "delay_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2),
        "delay_max_s": round(delays[-1], 2),
    }


# 5: memory with a 50 MB artifact --------------------------------------------------


def memory_probe(fake: Any, megabytes: int, others: int) -> dict[str, Any]:
    from factpulse_tasks.models import Artifact
    from factpulse_tasks.polling import poll_due

    big_pdf = b"%PDF-1.7\n" + os.urandom(megabytes * 1024 * 1024)
    [big] = track(1, "signature", "big")
    fake.script([big], spec("signature_success", pdf=big_pdf))
    small = track(others, "validation", "small")
    fake.script(small, spec("validation_success"))
    del big_pdf
    baseline = peak_rss_mb()
    poll_due(limit=others + 1)
    stored = Artifact.objects.get(task__task_id=big, role="document").size
    growth = peak_rss_mb() - baseline
    return {"artifact_mb": round(stored / 2**20, 1), "batch": others + 1,
            "peak_rss_growth_mb": round(growth, 1),
            "growth_over_artifact": round(growth / (stored / 2**20), 2)}


# 6: the claim query with a million finished rows ----------------------------------


def claim_at_size(finished_rows: int, unfinished_rows: int) -> dict[str, Any]:
    from django.db import connection

    from factpulse_tasks.models import FactPulseTask
    from factpulse_tasks.transitions import claim_due

    def explain() -> tuple[float, str]:
        query = FactPulseTask.objects.due().order_by("next_poll_at", "pk")[:100]
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0][0]
        text = json.dumps(plan["Plan"])
        index = "factpulse_task_due_idx" if "factpulse_task_due_idx" in text else "other"
        return plan["Execution Time"], index

    def timed_claims(rounds: int = 20) -> float:
        best = float("inf")
        for _ in range(rounds):
            FactPulseTask.objects.unfinished().update(next_poll_at="2000-01-01T00:00:00Z")
            started = time.perf_counter()
            claim_due(limit=100)
            best = min(best, time.perf_counter() - started)
        return best * 1000

    table = FactPulseTask._meta.db_table
    FactPulseTask.objects.all().delete()
    insert = (
        f"INSERT INTO {table} (task_id, kind, state, reference, metadata, remote_status, "
        "result, error_code, error_message, error_details, last_error, error_count, "
        "poll_count, created_at, updated_at, last_polled_at, next_poll_at, finished_at, "
        "notified_at, notification_error) "
        "SELECT %s || n, 'validation', %s, '', '{}', '', NULL, '', '', '[]', '', 0, 3, "
        "now(), now(), now(), %s, %s, %s, '' FROM generate_series(1, %s) AS n"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, ["open-", "pending", "2000-01-01T00:00:00Z", None, None,
                                unfinished_rows])
        cursor.execute(f"ANALYZE {table}")
    small_plan = explain()
    small_claim = timed_claims()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(insert, ["done-", "succeeded", None, "2026-01-01T00:00:00Z",
                                "2026-01-01T00:00:00Z", finished_rows])
        cursor.execute(f"ANALYZE {table}")
    load = time.perf_counter() - started
    big_plan = explain()
    big_claim = timed_claims()
    return {
        "unfinished_rows": unfinished_rows, "finished_rows": finished_rows,
        "rows_loaded_in_s": round(load, 1),
        "select_ms_without_finished": round(small_plan[0], 3),
        "select_ms_with_finished": round(big_plan[0], 3),
        "index_used": big_plan[1],
        "claim_ms_without_finished": round(small_claim, 2),
        "claim_ms_with_finished": round(big_claim, 2),
    }


def print_section(title: str, figures: dict[str, Any]) -> None:
    print(f"\n== {title}")
    for key, value in figures.items():
        print(f"  {key:34} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds per answer")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="CONCURRENCY setting (default: the app's default)")
    parser.add_argument("--sequential-tasks", type=int, default=200)
    parser.add_argument("--schedule-tasks", type=int, default=200)
    parser.add_argument("--quick", action="store_true",
                        help="run the schedule section ten times faster (durations and "
                        "intervals scaled by 0.1) and skip the million rows")
    parser.add_argument("--finished-rows", type=int, default=1_000_000)
    parser.add_argument("--artifact-mb", type=int, default=50)
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from remote_fake import RemoteFake

    media = tempfile.mkdtemp(prefix="factpulse-bench-")
    fake = RemoteFake(API_KEY, args.latency)
    base = {"BASE_URL": fake.base_url, "API_KEY": API_KEY, "POLL_ON_TRACK": False}
    try:
        if args.memory_probe:
            configure(args.database, media, **base, POLL_INTERVAL=0, POLL_MAX_INTERVAL=0)
            migrate()
            print(json.dumps(memory_probe(fake, args.artifact_mb, 99)))
            return
        create_database(args.database)
        extra = {} if args.concurrency is None else {"CONCURRENCY": args.concurrency}
        configure(args.database, media, **base, **extra)
        migrate()
        from django.conf import settings

        print(f"factpulse-tasks polling benchmark: {args.database}, latency "
              f"{args.latency * 1000:g} ms, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        settings.FACTPULSE_TASKS = {**base, **extra, "POLL_INTERVAL": 0, "POLL_MAX_INTERVAL": 0}
        print_section("1-3. Throughput: tasks finishing on their third poll",
                      throughput(fake, args.tasks, args.latency, args.sequential_tasks))
        scale = 0.1 if args.quick else 1.0
        schedule = {"POLL_INTERVAL": 2.0 * scale, "POLL_MAX_INTERVAL": 60.0 * scale}
        settings.FACTPULSE_TASKS = {**base, **extra, **schedule}
        fake.set_latency(0.0)
        print_section("4. Quota cost of the default schedule (2 s, x1.5, cap 60 s, jitter 10%)",
                      schedule_cost(fake, args.schedule_tasks, scale, max_sleep=0.5 * scale))
        probe = subprocess.run(
            [sys.executable, __file__, "--memory-probe", "--database", "sqlite",
             "--artifact-mb", str(args.artifact_mb), "--latency", "0"],
            capture_output=True, text=True, check=True,
        )
        print_section(f"5. Memory: one {args.artifact_mb} MB artifact in a batch of 100",
                      json.loads(probe.stdout.strip().splitlines()[-1]))
        if args.database == "postgres" and not args.quick:
            print_section("6. Claim query at size",
                          claim_at_size(args.finished_rows, unfinished_rows=1000))
    finally:
        fake.stop()
        if not args.memory_probe:
            drop_database(args.database)


if __name__ == "__main__":
    main()
