"""The French translation: complete, compiled from the current .po, and in use."""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.utils import translation

from factpulse_tasks.models import FactPulseTask

APP = Path(__file__).resolve().parent.parent / "factpulse_tasks"
PO = APP / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")

Catalog = dict[Any, str]


def read_po(path: Path) -> tuple[Catalog, list[str]]:
    """The messages of a .po file as gettext stores them, and the fuzzy msgids."""
    catalog: Catalog = {}
    fuzzy: list[str] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith("#"):
                if line.startswith("#,") and "fuzzy" in line:
                    fields["fuzzy"] = "yes"
                continue
            match = re.match(r"(msgid|msgid_plural|msgstr(?:\[\d+\])?) (\".*\")$", line)
            if match:
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"'):
                fields[key] += ast.literal_eval(line)
        if "msgid" not in fields or not fields["msgid"]:
            continue  # the header
        if "fuzzy" in fields:
            fuzzy.append(fields["msgid"])
        if "msgid_plural" in fields:
            for name, value in fields.items():
                if name.startswith("msgstr["):
                    catalog[(fields["msgid"], int(name[7:-1]))] = value
        else:
            catalog[fields["msgid"]] = fields["msgstr"]
    return catalog, fuzzy


def read_mo(path: Path) -> Catalog:
    with path.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    return {k: v for k, v in compiled._catalog.items() if k != ""}  # type: ignore[attr-defined]


def test_every_message_is_translated_to_french() -> None:
    catalog, fuzzy = read_po(PO)
    assert fuzzy == []
    assert [msgid for msgid, text in catalog.items() if not text] == []
    assert len(catalog) > 100


def test_the_compiled_catalog_matches_the_po_file() -> None:
    """The .mo shipped in the wheel says exactly what the .po says (recompile if not)."""
    assert read_mo(MO) == read_po(PO)[0], (
        "django.mo is out of date: run `django-admin compilemessages` in factpulse_tasks/")


@pytest.mark.skipif(shutil.which("xgettext") is None,
                    reason="xgettext (GNU gettext) is not installed; .ci/run installs it")
def test_the_po_file_has_every_string_of_the_app(tmp_path: Path) -> None:
    copy = tmp_path / "factpulse_tasks"
    shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "fr", "--no-obsolete"],
        cwd=copy, check=True, capture_output=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings",
             "PYTHONPATH": str(APP.parent), "PATH": "/usr/bin:/bin"},
    )
    fresh, _ = read_po(copy / "locale" / "fr" / "LC_MESSAGES" / "django.po")
    ours, _ = read_po(PO)
    assert sorted(map(str, set(fresh) - set(ours))) == [], "run makemessages and translate"
    assert sorted(map(str, set(ours) - set(fresh))) == [], "run makemessages --no-obsolete"


def test_labels_read_in_french() -> None:
    with translation.override("fr"):
        assert str(apps.get_app_config("factpulse_tasks").verbose_name) == "Tâches FactPulse"
        assert str(FactPulseTask._meta.verbose_name_plural) == "Tâches FactPulse"
        assert [str(label) for label in FactPulseTask.State.labels] == [
            "En attente", "En cours", "En attente de données", "Réussie", "Échouée", "Expirée"]
        assert str(FactPulseTask.Kind.GENERATION.label) == "Génération de facture"
