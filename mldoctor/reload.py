"""Load the facts of a saved report, so today's rules can re-diagnose yesterday's machine."""

from __future__ import annotations

import json

import click

from mldoctor.facts import Facts
from mldoctor.model import SCHEMA_VERSION
from mldoctor.serde import SchemaError, from_data


def load_facts(path: str) -> Facts:
    """Facts from a `--format json` report; a click error (exit 2) naming what is wrong otherwise."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"{path} is not a JSON report: {exc}", param_hint="'--facts'") from None
    if not isinstance(data, dict) or "facts" not in data:
        raise click.BadParameter(
            f"{path} has no facts; give a file from `mldoctor check --format json`", param_hint="'--facts'"
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise click.BadParameter(
            f"{path} uses report schema {version!r}; this mldoctor reads schema {SCHEMA_VERSION} and older: "
            "upgrade mldoctor (pip install -U mldoctor)",
            param_hint="'--facts'",
        )
    try:
        return from_data(Facts, data["facts"])
    except SchemaError as exc:
        raise click.BadParameter(
            f"{path}: facts do not match schema {version}: {exc}", param_hint="'--facts'"
        ) from None
