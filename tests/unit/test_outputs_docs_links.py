"""Docs links in every output point at the published docs/checks.md (a wheel carries no docs/ directory), at the
anchor GitHub gives each check's heading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from factories import facts

from mldoctor.model import DOCS_URL, docs_url, heading_anchor
from mldoctor.output import json as json_output
from mldoctor.output import junit
from mldoctor.policy import Policy
from mldoctor.rules import REGISTRY
from mldoctor.runner import build_report, select

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("### `docker.disk`", "dockerdisk"),
        ("### `bench.matmul`", "benchmatmul"),
        ("## Saved report", "saved-report"),
        ("## Hostile input, limits and output paths", "hostile-input-limits-and-output-paths"),
        ("### `check --facts` on a hostile file", "check---facts-on-a-hostile-file"),
        ("### snake_case and CAPS", "snake_case-and-caps"),
    ],
)
def test_heading_anchor_is_githubs(heading, anchor):
    """github-slugger: lower-case, punctuation other than - and _ dropped, each space a hyphen (none collapsed)."""
    assert heading_anchor(heading) == anchor


def test_the_docs_url_is_the_projects_published_documentation():
    documentation = re.search(r'^Documentation = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert documentation is not None
    assert documentation[1].replace("/tree/", "/blob/") + "/checks.md" == DOCS_URL
    assert docs_url("docker.disk") == "https://github.com/mldoctor/mldoctor/blob/main/docs/checks.md#dockerdisk"


def test_every_checks_link_is_the_anchor_of_its_heading_in_checks_md():
    headings = [line for line in (ROOT / "docs" / "checks.md").read_text().splitlines() if line.startswith("### ")]
    anchors = {heading_anchor(line) for line in headings}
    for check in REGISTRY.values():
        url, _, anchor = check.docs.partition("#")
        assert url == DOCS_URL and anchor in anchors and anchor == heading_anchor(f"### `{check.id}`"), check.id


def test_junit_and_json_carry_the_published_link():
    report = build_report(select(["docker"]), facts(), Policy())
    text = junit.render(report)
    links = re.findall(r"docs: (\S+)", text)
    assert len(links) == len(report.results) and all(link.startswith(DOCS_URL + "#") for link in links)
    assert "docs/checks.md#" not in text.replace(DOCS_URL, "")
    results = json.loads(json_output.render(report))["results"]
    assert [r["docs"] for r in results] == [docs_url(r["id"]) for r in results]
