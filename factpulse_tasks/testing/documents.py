"""Real Factur-X documents for the fake server: CII XML invoices and Factur-X PDFs.

The invoice is always the same small French B2B invoice (one line, 20 % VAT); only the
invoice number and the Factur-X level change. Results are cached per arguments, so a
test suite pays the generation cost once.

``factur-x`` is imported only when a document is built, so the rest of
``factpulse_tasks.testing`` works without it.
"""

from __future__ import annotations

import datetime
import functools
from types import ModuleType
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["LEVELS", "MISSING_EXTRA_MESSAGE", "make_cii_xml", "make_facturx_pdf"]

MISSING_EXTRA_MESSAGE = (
    "factpulse_tasks.testing needs the factur-x package: pip install 'factpulse-tasks[testing]'"
)

#: Factur-X levels this module can build, lowest first.
LEVELS = ("minimum", "basicwl", "basic", "en16931", "extended")

_ISSUE_DATE = datetime.date(2026, 1, 15)
_DUE_DATE = datetime.date(2026, 2, 14)

# Fictitious parties whose identifiers still pass the SIREN/SIRET (Luhn) and VAT key checks.
_SELLER = {
    "name": "Atelier Lumière SAS",
    "siren": "123456782",
    "siret": "12345678200010",
    "vat": "FR11123456782",
    "addr_l1": "12 rue des Artisans",
    "postcode": "75011",
    "city": "Paris",
}
_BUYER = {
    "name": "Boulangerie Martin SARL",
    "siren": "100000009",
    "siret": "10000000900017",
    "addr_l1": "3 place du Marché",
    "postcode": "69002",
    "city": "Lyon",
}
_IBAN = "FR7630006000011234567890189"

# The factur-x generator knows the levels it can fill from its data dict; MINIMUM has no
# data-dict support at all and BASIC is the EN 16931 content under another guideline id.
_GUIDELINE_IDS = {
    "en16931": "urn:cen.eu:en16931:2017",
    "basic": "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic",
}


def _facturx() -> ModuleType:
    try:
        import facturx
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA_MESSAGE) from exc
    return facturx


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"unknown Factur-X level {level!r}; expected one of {', '.join(LEVELS)}")


def _data_dict(invoice_number: str) -> dict[str, Any]:
    """The invoice as the factur-x data dict (keys are EN 16931 business terms)."""
    return {
        "BT-1": invoice_number,
        "BT-2": _ISSUE_DATE,
        "BT-3": "380",
        "BT-5": "EUR",
        "BT-9": _DUE_DATE,
        "BT-10": "SERVICE-ACHATS",
        "BT-20": "Paiement à 30 jours par virement.",
        # Without a delivery date the generator leaves ApplicableHeaderTradeDelivery empty,
        # which it serialises as xsi:nil and the XSD refuses.
        "BT-72": _ISSUE_DATE,
        "BT-81": "30",
        "BT-84": _IBAN,
        "BG-1": [
            {
                "BT-21": "PMT",
                "BT-22": "Indemnité forfaitaire pour frais de recouvrement : 40 €.",
            }
        ],
        "BG-4": {
            "name": _SELLER["name"],
            "identifiers": {"0009": _SELLER["siret"]},
            "legal_identifier": _SELLER["siren"],
            "legal_identifier_schemeid": "0002",
            "vat_identifier": _SELLER["vat"],
            "addr_l1": _SELLER["addr_l1"],
            "postcode": _SELLER["postcode"],
            "city": _SELLER["city"],
            "country_code": "FR",
        },
        "BG-7": {
            "name": _BUYER["name"],
            "identifiers": {"0009": _BUYER["siret"]},
            "legal_identifier": _BUYER["siren"],
            "legal_identifier_schemeid": "0002",
            "addr_l1": _BUYER["addr_l1"],
            "postcode": _BUYER["postcode"],
            "city": _BUYER["city"],
            "country_code": "FR",
        },
        "BG-23": [{"BT-116": 1000.0, "BT-117": 200.0, "BT-118": "S", "BT-119": 20.0}],
        "BG-25": [
            {
                "BT-126": "1",
                "BT-129": 10,
                "BT-130": "HUR",
                "BT-131": 1000.0,
                "BT-146": 100.0,
                "BT-151": "S",
                "BT-152": 20.0,
                "BT-153": "Conseil en éclairage",
            }
        ],
        "BT-106": 1000.0,
        "BT-109": 1000.0,
        "BT-110": 200.0,
        "BT-112": 1200.0,
        "BT-115": 1200.0,
    }


def _minimum_xml(invoice_number: str) -> bytes:
    # The factur-x generator has no MINIMUM level, so this one is written by hand.
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<rsm:CrossIndustryInvoice xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100" \
xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" \
xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" \
xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter>
      <ram:ID>urn:factur-x.eu:1p0:minimum</ram:ID>
    </ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>{escape(invoice_number)}</ram:ID>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime>
      <udt:DateTimeString format="102">{_ISSUE_DATE:%Y%m%d}</udt:DateTimeString>
    </ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:BuyerReference>SERVICE-ACHATS</ram:BuyerReference>
      <ram:SellerTradeParty>
        <ram:Name>{escape(_SELLER["name"])}</ram:Name>
        <ram:SpecifiedLegalOrganization>
          <ram:ID schemeID="0002">{_SELLER["siren"]}</ram:ID>
        </ram:SpecifiedLegalOrganization>
        <ram:PostalTradeAddress>
          <ram:CountryID>FR</ram:CountryID>
        </ram:PostalTradeAddress>
        <ram:SpecifiedTaxRegistration>
          <ram:ID schemeID="VA">{_SELLER["vat"]}</ram:ID>
        </ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty>
        <ram:Name>{escape(_BUYER["name"])}</ram:Name>
        <ram:SpecifiedLegalOrganization>
          <ram:ID schemeID="0002">{_BUYER["siren"]}</ram:ID>
        </ram:SpecifiedLegalOrganization>
      </ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeDelivery/>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:TaxBasisTotalAmount>1000.00</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">200.00</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>1200.00</ram:GrandTotalAmount>
        <ram:DuePayableAmount>1200.00</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
""".encode()


@functools.lru_cache(maxsize=64)
def make_cii_xml(invoice_number: str = "FA-2026-0001", *, level: str = "en16931") -> bytes:
    """Return a CII (Factur-X) invoice as UTF-8 XML bytes.

    ``level`` is one of :data:`LEVELS`. The XML is checked against the official Factur-X
    XSD of that level before it is returned. Raises ``ValueError`` for an unknown level
    and ``ImportError`` when the ``factur-x`` package is missing.
    """
    _check_level(level)
    facturx = _facturx()
    if level == "minimum":
        xml = _minimum_xml(invoice_number)
    else:
        data = _data_dict(invoice_number)
        if level == "basicwl":
            del data["BG-25"]  # BASIC WL has no lines; the generator would log a warning
        generator_level = "en16931" if level == "basic" else level
        # check_schematron must be off: its default sends the XML to a Saxon HTTP server.
        xml = facturx.generate_cii_xml(data, level=generator_level, check_schematron=False)
        if level == "basic":
            old = f"<ram:ID>{_GUIDELINE_IDS['en16931']}</ram:ID>".encode()
            new = f"<ram:ID>{_GUIDELINE_IDS['basic']}</ram:ID>".encode()
            xml = xml.replace(old, new, 1)
    facturx.xml_check_xsd(xml, flavor="factur-x", level=level)
    return bytes(xml)


def _pdf_text(text: str) -> bytes:
    """``text`` as a PDF literal string in the standard Latin encoding."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _plain_pdf(lines: list[str]) -> bytes:
    """A one-page A4 PDF showing ``lines`` in Helvetica, written by hand."""
    shown = b" ".join(_pdf_text(line) + b" '" for line in lines)  # ' = next line, show
    content = b"BT /F1 12 Tf 16 TL 72 780 Td " + shown + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


@functools.lru_cache(maxsize=64)
def make_facturx_pdf(invoice_number: str = "FA-2026-0001", *, level: str = "en16931") -> bytes:
    """Return a one-page Factur-X PDF/A-3 with :func:`make_cii_xml` embedded.

    ``facturx.get_xml_from_pdf(pdf)`` gives the XML back. Same errors as
    :func:`make_cii_xml`.
    """
    xml = make_cii_xml(invoice_number, level=level)
    facturx = _facturx()
    plain = _plain_pdf(
        [
            f"Facture {invoice_number}",
            f"Date : {_ISSUE_DATE:%d/%m/%Y}",
            f"Vendeur : {_SELLER['name']} (SIRET {_SELLER['siret']})",
            f"Client : {_BUYER['name']} (SIRET {_BUYER['siret']})",
            "Total HT 1 000,00 EUR - TVA 20 % 200,00 EUR - Total TTC 1 200,00 EUR",
        ]
    )
    pdf = facturx.generate_from_binary(
        plain,
        xml,
        flavor="factur-x",
        level=level,
        check_xsd=False,  # make_cii_xml has checked it already
        lang="fr-FR",
        pdf_metadata={
            "author": _SELLER["name"],
            "keywords": "Factur-X, Facture",
            "title": f"{_SELLER['name']} : Facture {invoice_number}",
            "subject": f"Facture Factur-X {invoice_number} du {_ISSUE_DATE:%d/%m/%Y}",
        },
    )
    return bytes(pdf)
