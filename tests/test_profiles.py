"""The Factur-X profile shown for a generated invoice, read from its CII XML."""

from __future__ import annotations

import pytest

from factpulse_tasks.profiles import cii_profile
from factpulse_tasks.testing import make_cii_xml


@pytest.mark.parametrize(("level", "profile"), [
    ("minimum", "MINIMUM"), ("basic", "BASIC"), ("en16931", "EN16931"),
])
def test_profile_of_a_generated_cii_invoice(level: str, profile: str) -> None:
    assert cii_profile(make_cii_xml("FA-2026-0001", level=level)) == profile


def test_extended_and_basic_wl_guideline_ids() -> None:
    for guideline, profile in [
        ("urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended", "EXTENDED"),
        ("urn:factur-x.eu:1p0:basicwl", "BASIC WL"),
    ]:
        xml = (
            "<rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
            f"\n  <ram:ID>{guideline}</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>"
        ).encode()
        assert cii_profile(xml) == profile


def test_another_guideline_is_shown_as_it_is() -> None:
    guideline = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
    xml = f"<GuidelineSpecifiedDocumentContextParameter><ID>{guideline}</ID>".encode()
    assert cii_profile(xml) == guideline


def test_no_guideline_id_gives_nothing() -> None:
    assert cii_profile(b"%PDF-1.7 not xml") == ""
    assert cii_profile(b"<Invoice xmlns='urn:oasis:names:specification:ubl'/>") == ""
