"""The Factur-X profile a CII invoice declares, read without parsing the whole XML."""

from __future__ import annotations

import re

# Enough to reach the document context, which comes first in a CII invoice.
HEAD_BYTES = 16 * 1024

_GUIDELINE = re.compile(
    rb"GuidelineSpecifiedDocumentContextParameter>\s*<(?:[\w.-]+:)?ID[^>]*>\s*([^<\s]{1,200})\s*<"
)

# Guideline ids of the Factur-X 1.0 profiles (specification, table "Profiles").
PROFILES = {
    "urn:factur-x.eu:1p0:minimum": "MINIMUM",
    "urn:factur-x.eu:1p0:basicwl": "BASIC WL",
    "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic": "BASIC",
    "urn:cen.eu:en16931:2017": "EN16931",
    "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended": "EXTENDED",
}


def cii_profile(head: bytes) -> str:
    """The profile named by the guideline id in the first bytes of a CII XML.

    Returns a profile name such as ``EN16931``, the guideline id itself when it
    is not a Factur-X profile (XRechnung, for example), or ``""`` when the bytes
    hold no guideline id. Only a regular expression runs over the bytes: no XML
    parser, so no entity expansion.
    """
    match = _GUIDELINE.search(head[:HEAD_BYTES])
    if match is None:
        return ""
    guideline = match.group(1).decode("ascii", "replace")
    return PROFILES.get(guideline, guideline)
