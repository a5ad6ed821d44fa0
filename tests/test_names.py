from __future__ import annotations

import pytest

from factpulse_tasks.names import safe_filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("FA-2026-0001.pdf", "FA-2026-0001.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/absolute/path/facture.pdf", "facture.pdf"),
        ("Facture n°12 été.pdf", "Facture_n12_ete.pdf"),
        ("..", "document"),
        ("", "document"),
        (None, "document"),
        ("a\x00b.pdf", "a_b.pdf"),
        ("x" * 300 + ".pdf", "x" * 96 + ".pdf"),
    ],
)
def test_untrusted_file_names_become_plain_base_names(name: object, expected: str) -> None:
    assert safe_filename(name) == expected
