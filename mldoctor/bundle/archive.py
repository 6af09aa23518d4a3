"""Writing the bundle: every file through the Redactor, a manifest with sizes and hashes, one atomic zip.

The zip is written to a hidden temp file in the target directory and renamed into place only when complete:
Ctrl-C, a full disk or a bug mid-way leaves nothing behind, never half an archive. The file is created 0600 (the
bundle describes the user's machine; sharing it is their decision).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mldoctor import interrupts
from mldoctor.bundle.redact import Redactor

BUNDLE_FORMAT = 1
"""The layout of the archive (report.json at the root, raw/, manifest.json); `check --facts` refuses newer ones."""
MANIFEST = "manifest.json"
REPORT = "report.json"
SURROGATE = re.compile("[\ud800-\udfff]")


def default_name(host: str, created: str, unique: str = "") -> str:
    """mldoctor-report-<host>-<UTC time>[-<unique>].zip, safe as a file name (created is the report's ISO time, in
    UTC; `unique` tells apart runs started in the same second)."""
    safe_host = re.sub(r"[^A-Za-z0-9._-]+", "_", host).strip("._") or "host"
    stamp = re.sub(r"[^0-9TZ]", "", created)
    suffix = "-" + re.sub(r"[^A-Za-z0-9]+", "", unique) if unique else ""
    return f"mldoctor-report-{safe_host}-{stamp}{suffix}.zip"


def write(
    path: str,
    files: Mapping[str, str],
    redactor: Redactor,
    notes: Mapping[str, str],
    info: Mapping[str, Any],
) -> dict[str, Any]:
    """Scrub `files` (archive name -> text), write them and a manifest atomically to `path`; return the manifest.

    `notes` says, per raw source, whether it was collected or why not; `info` is merged into the manifest
    (mldoctor version, creation time, host). Both are scrubbed as data before the redaction summary is taken, so
    the manifest's counts include what they held.
    """
    contents = {name: _utf8(redactor.scrub_file(name, text)) for name, text in files.items()}
    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        **redactor.scrub_data(dict(info)),
        "files": [
            {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in contents.items()
        ],
        "raw": redactor.scrub_data(dict(notes)),
        "redaction": redactor.summary(),
    }
    contents[MANIFEST] = _utf8(redactor.scrub_file(MANIFEST, json.dumps(manifest, indent=2) + "\n"))
    _write_zip(path, contents, str(info.get("created", "")))
    return manifest


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of any str: a lone surrogate (a byte that was not UTF-8 in a file name, a variable or a
    command's output, carried through by a collector) becomes U+FFFD instead of failing the whole bundle."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE.sub("\ufffd", text).encode("utf-8")


def _zip_time(created: str) -> tuple[int, ...]:
    """The report's own time on every entry (zip stores local times without a zone; this one is UTC)."""
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timetuple()[:6]
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)


def _write_zip(path: str, contents: Mapping[str, bytes], created: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.path.isfile(path):  # `report` refuses it earlier; this holds for any caller
        raise FileExistsError(f"{path} exists and is not a regular file: a bundle never replaces it")
    tmp = None
    with interrupts.sigterm_raises():  # SIGTERM too ends through the clean-up below
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as handle:
                with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                    for name, data in contents.items():
                        entry = zipfile.ZipInfo(name, date_time=_zip_time(created))
                        entry.compress_type = zipfile.ZIP_DEFLATED
                        entry.external_attr = 0o600 << 16
                        archive.writestr(entry, data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            tmp = None
        except BaseException:  # Ctrl-C and SIGTERM included: no partial archive, under any name
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
