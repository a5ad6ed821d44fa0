"""The example project's demo, run as a user runs it: manage.py in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def database_url(tmp_path: Path) -> str:
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        db = settings.DATABASES["default"]
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/factpulse_demo_check"
    return f"sqlite:///{tmp_path / 'demo.sqlite3'}"


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_demo_finishes_every_task_with_verified_files_and_one_signal_each(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FACTPULSE_"))}
    env.update(DATABASE_URL=database_url(tmp_path), MEDIA_ROOT=str(tmp_path / "media"))
    if "postgres" in env["DATABASE_URL"]:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                        "DROP DATABASE IF EXISTS factpulse_demo_check"], check=True)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                        "CREATE DATABASE factpulse_demo_check"], check=True)
    migrate = manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    demo = manage("factpulse_demo", env=env)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "Every artifact matches what FactPulse sent; every signal was sent once." in out
    assert "States: failed 2, succeeded 6" in out
    assert len(re.findall(r"Factur-X PDF, factur-x\.xml \(en16931\)", out)) == 3
    assert "not compliant" in out and "VALIDATION_FAILED" in out and "TASK_FAILED" in out
    assert "MISMATCH" not in out
    stored = sorted(p.suffix for p in (tmp_path / "media").rglob("*") if p.is_file())
    assert stored == [".pdf", ".pdf", ".pdf", ".xml", ".xml", ".xml"]
