"""Every check id is documented: a check is one rule, its facts and a section in docs/checks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from mldoctor.rules import REGISTRY

CHECKS_MD = Path(__file__).resolve().parents[2] / "docs" / "checks.md"


@pytest.mark.parametrize("check_id", list(REGISTRY))
def test_every_check_has_a_section(check_id):
    assert f"### `{check_id}`" in CHECKS_MD.read_text(), f"docs/checks.md has no section for {check_id}"


def test_docs_links_resolve_to_those_sections():
    text = CHECKS_MD.read_text()
    for check in REGISTRY.values():
        anchor = check.docs.partition("#")[2]
        assert f"### `{check.id}`" in text and anchor == check.id.replace(".", "")
