"""The README's "Testing your project with the fake FactPulse" example, run as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Testing your project with the fake FactPulse"):]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its testing example"
    return textwrap.dedent(match.group(1))


def test_readme_testing_example_passes(settings: Any, transactional_db: None) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    namespace["test_generated_invoice_is_stored"](settings, transactional_db)
