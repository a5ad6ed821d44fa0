"""The management commands factpulse_track and factpulse_status."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import drive

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_track_starts_following_a_task(fake: FakeFactPulse) -> None:
    out = run("factpulse_track", "a1b2c3-generation", "--kind", "generation",
              "--reference", "FA-2026-0042")
    assert out == ("Tracking Invoice generation a1b2c3-generation; it is polled at the next "
                   "cycle.\n")
    task = FactPulseTask.objects.get(task_id="a1b2c3-generation")
    assert (task.kind, task.reference, task.state) == ("generation", "FA-2026-0042", "pending")


def test_track_twice_says_the_task_is_already_tracked(fake: FakeFactPulse) -> None:
    run("factpulse_track", "a1b2c3-validation", "--kind", "validation")
    out = run("factpulse_track", "a1b2c3-validation", "--kind", "validation")
    assert out == "Already tracked: Factur-X validation a1b2c3-validation, Pending.\n"
    assert FactPulseTask.objects.count() == 1


def test_track_refuses_a_bad_id_or_another_kind(fake: FakeFactPulse) -> None:
    with pytest.raises(CommandError, match="task id"):
        run("factpulse_track", "../etc/passwd", "--kind", "generation")
    run("factpulse_track", "a1b2c3-signature", "--kind", "signature")
    with pytest.raises(CommandError, match="already tracked as a signature task"):
        run("factpulse_track", "a1b2c3-signature", "--kind", "generation")


def test_track_needs_a_known_kind(fake: FakeFactPulse) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'invoice'"):
        run("factpulse_track", "a1b2c3", "--kind", "invoice")


def test_status_counts_tasks_per_state_and_kind(fake: FakeFactPulse) -> None:
    fake.script("ok-generation", answers.generation_success())
    fake.script("ko-generation", answers.business_error())
    fake.script("ok-validation", answers.validation_success())
    for task_id in ("ok-generation", "ko-generation"):
        FactPulseTask.objects.track(task_id, "generation")
    FactPulseTask.objects.track("ok-validation", "validation")
    drive()
    FactPulseTask.objects.track("waiting-signature", "signature")
    lines = run("factpulse_status").splitlines()
    assert lines[0].split() == ["kind", "Pending", "Running", "Awaiting", "input", "Succeeded",
                                "Failed", "Expired", "total"]
    rows = {line.rsplit(None, 7)[0]: line.split()[-7:] for line in lines[2:8]}
    assert rows["Invoice generation"] == ["0", "0", "0", "1", "1", "0", "2"]
    assert rows["PDF signature"] == ["1", "0", "0", "0", "0", "0", "1"]
    assert rows["Factur-X validation"] == ["0", "0", "0", "1", "0", "0", "1"]
    assert rows["Untyped task"] == ["0"] * 7
    assert len(rows) == 6  # the conversion and verification kinds too
    assert lines[8].split() == ["total", "1", "0", "0", "2", "1", "0", "4"]
    assert lines[9].startswith("Oldest unfinished task: waiting-signature (PDF signature), "
                               "tracked ")


def test_status_with_no_task(fake: FakeFactPulse) -> None:
    out = run("factpulse_status")
    assert out.splitlines()[-2].split() == ["total", "0", "0", "0", "0", "0", "0", "0"]
    assert out.endswith("No unfinished task.\n")


def test_status_of_a_failed_task_shows_its_afnor_error(fake: FakeFactPulse) -> None:
    fake.script("ko-generation", answers.business_error())
    FactPulseTask.objects.track("ko-generation", "generation", reference="FA-2026-0002")
    drive()
    out = run("factpulse_status", "ko-generation")
    assert "state               Failed" in out
    assert "reference           FA-2026-0002" in out
    assert "error code          VALIDATION_FAILED" in out
    assert "La validation Factur-X a échoué" in out
    detail_rows = [line.split() for line in out.splitlines() if "SCHEMATRON_" in line]
    assert [(row[0], row[1], row[-2], row[-1]) for row in detail_rows] == [
        ("Error", "BR-FR-01", "schematron", "SCHEMATRON_BR_FR_01"),
        ("Warning", "BR-FR-05", "schematron", "SCHEMATRON_BR_FR_05"),
    ]


def test_status_of_a_succeeded_task_lists_its_files(fake: FakeFactPulse) -> None:
    success = answers.generation_success()
    fake.script("ok-generation", success)
    FactPulseTask.objects.track("ok-generation", "generation")
    drive()
    out = run("factpulse_status", "ok-generation")
    assert "state               Succeeded" in out
    assert "FA-2026-0001.pdf  application/pdf" in out
    assert success.sha256["document"] in out and success.sha256["xml"] in out


def test_status_of_an_unknown_task_is_an_error(fake: FakeFactPulse) -> None:
    with pytest.raises(CommandError, match="No tracked task has the id nope-42"):
        run("factpulse_status", "nope-42")
