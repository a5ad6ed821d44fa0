"""Test matrix: Django 4.2, 5.2 and the newest 6.x, each on SQLite and PostgreSQL.

    nox -l                                   # list the cells
    nox -s "tests(django='4.2', database='sqlite')"
    nox -t sqlite                            # every Django on SQLite

Each cell has its own virtualenv under .nox/, installs the project with its test
extra and that Django, checks that the migrations match the models, and runs
pytest (arguments after ``--`` go to pytest). PostgreSQL cells use the database
named by FACTPULSE_TEST_PG_NAME (default ``factpulse_tasks``) plus a suffix per
Django, so cells never share one.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# Django -> (Python it runs on here, requirement). Django 4.2 supports Python up to 3.12.
DJANGO = {
    "4.2": ("3.12", "Django>=4.2,<5.0"),
    "5.2": ("3.13", "Django>=5.2,<5.3"),
    "6": ("3.13", "Django>=6.0,<7.0"),
}
DATABASES = ("sqlite", "postgres")


def _expose_pyenv_pythons() -> None:
    """Put pyenv's interpreters on PATH when pythonX.Y is not there already.

    pyenv's shims do not count: they fail for a version that is not selected.
    """
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    paths = os.environ.get("PATH", "").split(os.pathsep)
    for version in sorted({python for python, _ in DJANGO.values()}):
        found_on_path = shutil.which(f"python{version}")
        if found_on_path and "shims" not in found_on_path:
            continue
        found = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        if found:
            paths.insert(0, found[-1])
    os.environ["PATH"] = os.pathsep.join(paths)


_expose_pyenv_pythons()


@nox.session(tags=["matrix"])
@nox.parametrize(
    ("python", "django"),
    [nox.param(python, version, id=f"django-{version}") for version, (python, _) in DJANGO.items()],
)
@nox.parametrize("database", [nox.param(db, id=db, tags=[db]) for db in DATABASES])
def tests(session: nox.Session, django: str, database: str) -> None:
    """One cell: install, check the migrations, run the suite."""
    _, requirement = DJANGO[django]
    extras = "test,postgres" if database == "postgres" else "test"
    session.install("-e", f".[{extras}]", requirement)
    suffix = "dj" + django.replace(".", "")
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "FACTPULSE_TEST_DATABASE": database,
        "FACTPULSE_TEST_PG_NAME": os.environ.get("FACTPULSE_TEST_PG_NAME", "factpulse_tasks")
        + "_" + suffix,
    }
    session.run("python", "-m", "django", "--version")
    # Migrations do not depend on the database; SQLite needs no server to compare them.
    session.run(
        "python", "-m", "django", "makemigrations", "factpulse_tasks", "--check", "--dry-run",
        env={**env, "FACTPULSE_TEST_DATABASE": "sqlite"},
    )
    # The admin's browser test runs in the main suite (make test-sqlite, test-postgres),
    # whose venv has Playwright; it does not depend on the Django version.
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--ignore=tests/test_browser.py",
                *session.posargs, env=env)
