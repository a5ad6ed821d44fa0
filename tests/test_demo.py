"""The example project's demo, run as a user runs it: manage.py in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


PG = {key: os.environ.get(f"FACTPULSE_TEST_PG_{key}", default) for key, default in (
    ("NAME", "factpulse_tasks"), ("USER", "postgres"), ("PASSWORD", ""),
    ("HOST", "127.0.0.1"), ("PORT", "5432"))}
DEMO_DB = f"{PG['NAME']}_demo"
REDIS_URL = os.environ.get("FACTPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def database_url(tmp_path: Path) -> str:
    if on_postgres():
        password = f":{quote(PG['PASSWORD'])}" if PG["PASSWORD"] else ""
        return f"postgres://{quote(PG['USER'])}{password}@{PG['HOST']}:{PG['PORT']}/{DEMO_DB}"
    return f"sqlite:///{tmp_path / 'demo.sqlite3'}"


def psql(sql: str) -> None:
    env = {**os.environ, "PGPASSWORD": PG["PASSWORD"]}
    subprocess.run(["psql", "-h", PG["HOST"], "-p", PG["PORT"], "-U", PG["USER"],
                    "-d", "postgres", "-qc", sql], check=True, env=env)


@pytest.fixture(autouse=True)
def drop_demo_database() -> Iterator[None]:
    yield
    if on_postgres():
        psql(f'DROP DATABASE IF EXISTS "{DEMO_DB}"')


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FACTPULSE_"))}
    env.update(DATABASE_URL=database_url(tmp_path), MEDIA_ROOT=str(tmp_path / "media"), **extra)
    if on_postgres():
        psql(f'DROP DATABASE IF EXISTS "{DEMO_DB}"')
        psql(f'CREATE DATABASE "{DEMO_DB}"')
    migrate = manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    return env


def check_demo_output(out: str, tmp_path: Path) -> None:
    assert "Every artifact matches what FactPulse sent; every signal was sent once." in out
    assert "States: failed 2, succeeded 8" in out
    assert len(re.findall(r"Factur-X PDF, factur-x\.xml \(en16931\)", out)) == 3
    assert "not compliant" in out and "VALIDATION_FAILED" in out and "TASK_FAILED" in out
    assert "PDF and XML differ: BT-112" in out
    assert "conversion_needs_inputx1" in out and "task_needs_inputx1" in out
    assert "MISMATCH" not in out
    # Ten tracked tasks, then one submission of each kind with webhooks and without.
    stored = sorted(p.suffix for p in (tmp_path / "media").rglob("*") if p.is_file())
    assert stored == [".pdf"] * (3 + 2) + [".xml"] * (5 + 2 * 2)
    check_comparison(out)


def check_comparison(out: str) -> None:
    """Webhooks: two status calls a task (submission, event); polling alone needs more."""
    hooked = re.search(r"^webhooks .*?\s+3\s+(\d+)\s+([\d.]+) s\s+([\d.]+) s$", out, re.M)
    alone = re.search(r"^polling alone .*?\s+3\s+(\d+)\s+([\d.]+) s\s+([\d.]+) s$", out, re.M)
    assert hooked and alone, out
    assert int(hooked[1]) == 6 < int(alone[1])
    assert float(hooked[3]) < 1.5  # a signal within moments of the finish, not at a poll
    assert "With webhooks the signals came" in out


def test_demo_finishes_every_task_with_verified_files_and_one_signal_each(
    tmp_path: Path,
) -> None:
    demo = manage("factpulse_demo", env=demo_env(tmp_path))
    assert demo.returncode == 0, demo.stderr
    assert "Celery: in-process" in demo.stdout
    check_demo_output(demo.stdout, tmp_path)


def test_demo_with_redis_runs_a_real_worker_and_beat(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    url = REDIS_URL
    client = redis.Redis.from_url(url)
    client.ping()  # Redis must run: make test starts it
    client.flushdb()
    demo = manage("factpulse_demo", env=demo_env(tmp_path, CELERY_BROKER_URL=url))
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Celery: a worker process with beat, broker redis://" in demo.stdout
    check_demo_output(demo.stdout, tmp_path)
    # The worker really did the polling: its log line for the scripted 503 is there.
    assert "ForkPoolWorker" in demo.stderr and "HTTP 503" in demo.stderr
    client.flushdb()
