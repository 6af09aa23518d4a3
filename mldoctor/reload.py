"""Load the facts of a saved report or support bundle, so today's rules can re-diagnose yesterday's machine."""

from __future__ import annotations

import json
import zipfile
from typing import Any

import click

from mldoctor.bundle.archive import BUNDLE_FORMAT, MANIFEST, REPORT
from mldoctor.facts import Facts
from mldoctor.model import SCHEMA_VERSION
from mldoctor.policy import Policy
from mldoctor.serde import SchemaError, from_data

UPGRADE = "upgrade mldoctor (pip install -U mldoctor)"


def _bad(message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint="'--facts'")


def _read_bundle(path: str) -> Any:
    """report.json from a `mldoctor report` zip, after checking the archive's own format."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if REPORT not in names:
                raise _bad(f"{path} is a zip but not an mldoctor bundle (no {REPORT} in it)")
            manifest = json.loads(archive.read(MANIFEST)) if MANIFEST in names else {}
            bundle_format = manifest.get("bundle_format") if isinstance(manifest, dict) else None
            if isinstance(bundle_format, int) and bundle_format > BUNDLE_FORMAT:
                raise _bad(
                    f"{path} is a bundle of format {bundle_format} (mldoctor {manifest.get('mldoctor_version')}); "
                    f"this mldoctor reads format {BUNDLE_FORMAT} and older: {UPGRADE}"
                )
            return json.loads(archive.read(REPORT))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"{path} is not a readable mldoctor bundle: {exc}") from None


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"{path} is not a JSON report or an mldoctor bundle: {exc}") from None


def load_report(path: str) -> tuple[Facts, Policy | None]:
    """Facts (and the policy they were judged by, when recorded) from a `--format json` report or a `mldoctor
    report` bundle; a click error (exit 2) naming what is wrong otherwise."""
    data = _read_bundle(path) if zipfile.is_zipfile(path) else _read_json(path)
    if not isinstance(data, dict) or "facts" not in data:
        raise _bad(f"{path} has no facts; give a file from `mldoctor check --format json` or `mldoctor report`")
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise _bad(
            f"{path} uses report schema {version!r}; this mldoctor reads schema {SCHEMA_VERSION} and older: {UPGRADE}"
        )
    try:
        facts = from_data(Facts, data["facts"])
        policy = from_data(Policy, data["policy"]) if data.get("policy") else None
    except SchemaError as exc:
        raise _bad(f"{path}: does not match report schema {version}: {exc}") from None
    return facts, policy
