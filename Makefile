# One entry point: `make demo` runs the demo, `make test` runs the test suite.
# Both create .venv with Python 3.12+ (Django 6 needs it) and install what they need.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell sh scripts/find-python)

.PHONY: demo test test-sqlite test-postgres test-browser test-django42 check-migrations \
	check-dist matrix lint services clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python 3.12+ found; set PYTHON=/path/to/python3.13" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python manage.py migrate --noinput --verbosity 0
	$(BIN)/python manage.py factpulse_demo

services:
	sh scripts/start-services

lint: $(BIN)/.installed
	$(BIN)/ruff check factpulse_tasks tests example_project noxfile.py scripts/check-dist
	$(BIN)/mypy factpulse_tasks noxfile.py

# The newest Django (the one in .venv): models and migrations agree, then the suite.
check-migrations: $(BIN)/.installed
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations \
		factpulse_tasks --check --dry-run

test-sqlite: $(BIN)/.installed check-migrations
	$(BIN)/python -m pytest

test-postgres: $(BIN)/.installed services
	FACTPULSE_TEST_DATABASE=postgres $(BIN)/python -m pytest

# The browser test alone (it also runs in test-sqlite and test-postgres); it needs
# /usr/bin/chromium and saves screenshots in artifacts/screenshots/.
test-browser: $(BIN)/.installed
	$(BIN)/python -m pytest -m browser

# The oldest Django supported (4.2 LTS, on Python 3.12) on SQLite, in its own venv under .nox/.
test-django42: $(BIN)/.installed
	$(BIN)/nox -s "tests(sqlite, django-4.2)"

# Every cell of the matrix: Django 4.2, 5.2, 6.x on SQLite and PostgreSQL.
matrix: $(BIN)/.installed services
	$(BIN)/nox -t matrix

# Wheel and sdist: complete, and installable in a fresh virtualenv.
check-dist: $(BIN)/.installed
	$(BIN)/python scripts/check-dist

test: lint test-sqlite test-postgres test-django42 check-dist

clean:
	rm -rf $(VENV) .nox db.sqlite3 db.sqlite3-wal db.sqlite3-shm demo-media artifacts .mypy_cache \
		.ruff_cache .pytest_cache .hypothesis dist
