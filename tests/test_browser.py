"""The admin in a real browser: Chromium driven by Playwright against a live server.

Screenshots of the list and of a detail page are saved in ``artifacts/screenshots/``
at the root of the checkout (``FACTPULSE_SCREENSHOTS_DIR`` changes the folder).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from playwright import sync_api  # the dev extra: a missing package is an error, not a skip

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import drive

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("FACTPULSE_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("FACTPULSE_SCREENSHOTS_DIR", ROOT / "artifacts" / "screenshots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Chromium is not installed at {CHROMIUM}; .ci/run installs it with "
        "`apt-get install chromium`",
    ),
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "browser-test-pw"


@pytest.fixture
def tasks(fake: FakeFactPulse) -> dict[str, Any]:
    """A succeeded generation, a failed one, a validation and a task still waiting."""
    success = answers.generation_success(invoice_number="FA-2026-0101")
    fake.script("ok-generation-101", success)
    fake.script("ko-generation-102", answers.business_error())
    fake.script("ok-validation-103", answers.validation_success(compliant=False))
    FactPulseTask.objects.track("ok-generation-101", "generation", reference="FA-2026-0101")
    FactPulseTask.objects.track("ko-generation-102", "generation", reference="FA-2026-0102")
    FactPulseTask.objects.track("ok-validation-103", "validation", reference="FA-2026-0103")
    drive()
    fake.script("wait-signature-104", answers.pending())
    FactPulseTask.objects.track("wait-signature-104", "signature", reference="FA-2026-0104")
    User.objects.create_user("comptable", password=PASSWORD, is_superuser=True, is_staff=True)
    # Everything the browser checks is read now: no database access while it runs.
    ok = FactPulseTask.objects.get(task_id="ok-generation-101")
    return {
        "ok_url": reverse("admin:factpulse_tasks_factpulsetask_change", args=[ok.pk]),
        "document_sha256": ok.artifacts.get(role="document").sha256,
        "served_sha256": success.sha256["document"],
    }


@pytest.fixture
def browser(tasks: dict[str, Any]) -> Iterator[Any]:
    """Chromium, started once the data is in: Django refuses ORM calls while it runs."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "comptable")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_an_accountant_filters_reads_an_afnor_error_and_downloads_an_invoice(
    live_server: Any, tasks: dict[str, Any], browser: Any
) -> None:
    expect = sync_api.expect
    base = live_server.url
    context = browser.new_context(locale="en-US", accept_downloads=True,
                                  viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, base)

    page.goto(f"{base}/admin/factpulse_tasks/factpulsetask/")
    summary = page.locator("#factpulse-summary")
    expect(summary).to_contain_text("Oldest unfinished task: PDF signature wait-signature-104")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(4)
    screenshot(page, "task-list.png")

    # Filter the list down to the failed tasks.
    page.locator("#changelist-filter").get_by_role("link", name="Failed", exact=True).click()
    page.wait_for_url(re.compile(r"state__exact=failed"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ko-generation-102")
    expect(rows.first.locator(".factpulse-state")).to_have_text("Failed")

    # Open it: the AFNOR error is a table.
    rows.first.get_by_role("link", name="ko-generation-102").click()
    afnor = page.locator("table.factpulse-afnor")
    expect(afnor.locator("thead th")).to_have_text(["Level", "Item", "Reason", "Source", "Code"])
    expect(afnor.locator("tbody tr").first.locator("td")).to_have_text(
        ["Error", "BR-FR-01", re.compile("Le SIRET du vendeur"), "schematron",
         "SCHEMATRON_BR_FR_01"])
    expect(page.locator(".field-error_code")).to_contain_text("VALIDATION_FAILED")
    screenshot(page, "task-detail-failed.png")

    # Download the generated invoice: the bytes are those FactPulse sent.
    page.goto(base + tasks["ok_url"])
    expect(page.locator(".factpulse-generation")).to_contain_text("EN16931")
    with page.expect_download() as info:
        page.locator(".field-download a", has_text="FA-2026-0101.pdf").click()
    download = info.value
    assert download.suggested_filename == "FA-2026-0101.pdf"
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"%PDF-")
    assert hashlib.sha256(content).hexdigest() == tasks["document_sha256"]
    assert tasks["document_sha256"] == tasks["served_sha256"]
    screenshot(page, "task-detail-succeeded.png")

    # The same admin for a browser that asks for French.
    french = browser.new_context(locale="fr-FR", storage_state=context.storage_state(),
                                 viewport={"width": 1400, "height": 900})
    page = french.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base}/admin/factpulse_tasks/factpulsetask/")
    expect(page.locator("#content h1")).to_contain_text("Tâche FactPulse")
    expect(page.locator(".breadcrumbs")).to_contain_text("Tâches FactPulse")
    expect(page.locator("#factpulse-summary")).to_contain_text("Plus ancienne tâche en cours")
    expect(page.locator("#result_list thead")).to_contain_text("Âge / durée")
    badges = page.locator("#result_list .factpulse-state")
    expect(badges.filter(has_text="Échouée")).to_have_count(1)
    expect(badges.filter(has_text="En attente")).to_have_count(1)
    page.locator("#changelist-filter").get_by_role("link", name="Échouée", exact=True).click()
    page.locator("#result_list").get_by_role("link", name="ko-generation-102").click()
    expect(page.locator("table.factpulse-afnor thead th")).to_have_text(
        ["Niveau", "Élément", "Motif", "Source", "Code"])
    screenshot(page, "task-detail-failed-fr.png")
    french.close()
    context.close()
