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


def test_the_policy_file_in_docs_ci_is_valid(tmp_path):
    from mldoctor import config

    text = (CHECKS_MD.parent / "ci.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "mldoctor.toml"
    path.write_text(block)
    loaded = config.load(str(path))
    assert loaded.values["require_gpus"] == 8 and loaded.values["probe.dtypes"] == ["bf16", "fp8"]


def test_docs_ci_uses_only_flags_that_exist():
    import re

    from click.testing import CliRunner

    from mldoctor.cli import cli

    text = (CHECKS_MD.parent / "ci.md").read_text()
    for command in ("check", "gpu-bench"):
        help_text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
        for line in re.findall(rf"mldoctor {command} ([^\n`]*)", text):
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", line):
                assert flag in help_text, f"docs/ci.md: `mldoctor {command} ... {flag}` is not an option"
