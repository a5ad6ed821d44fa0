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


def readme_webhook_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Testing your project with the fake FactPulse"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 2, "the README lost its webhook testing example"
    return textwrap.dedent(blocks[1])


def test_readme_webhook_example_passes(
    settings: Any, live_server: Any, transactional_db: None, eager_celery: Any
) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_webhook_example(), str(README), "exec"), namespace)
    namespace["test_a_validation_ends_when_factpulse_says_so"](settings, live_server,
                                                                transactional_db)


def test_readme_kind_of_your_own_registers_a_kind_that_can_be_tracked(
    transactional_db: None,
) -> None:
    import types

    from factpulse_tasks.kinds import get_kind, unregister_kind
    from factpulse_tasks.models import FactPulseTask

    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Kinds of your own"):]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its register_kind example"
    namespace: dict[str, Any] = {"__name__": "billing.apps"}
    exec(compile(match.group(1), str(README), "exec"), namespace)
    module = types.ModuleType("billing")
    module.__file__ = "/nonexistent/billing/__init__.py"

    namespace["BillingConfig"]("billing", module).ready()
    try:
        spec = get_kind("credit_note")
        assert spec.signal is namespace["credit_note_finished"]
        assert spec.path_for("t-1") == "/api/v1/processing/tasks/t-1/status"
        task = FactPulseTask.objects.track("3c1d2a4e-credit", "credit_note")
        assert str(task) == "Credit note 3c1d2a4e-credit"
    finally:
        unregister_kind("credit_note")
