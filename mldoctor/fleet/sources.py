"""Reading per-node reports: files, folders, support bundles and JSON lines, one document at a time.

Nothing here holds more than one report: a document is parsed, handed on, and dropped by the caller once it has
taken its summary. What cannot be read becomes a Document with an `error` (listed in the fleet report), never an
exception: one corrupt file among ten thousand must not hide the other 9,999.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from typing import IO

from mldoctor.bundle.archive import BUNDLE_FORMAT, MANIFEST, REPORT
from mldoctor.fleet import frames
from mldoctor.fleet.document import MAX_DOCUMENT, Document

__all__ = ["MAX_DOCUMENT", "Document", "documents", "stream"]

LINES_SUFFIXES = (".jsonl", ".ndjson")
STDIN = "-"


def _is_report_file(name: str) -> bool:
    return name.endswith((".json", *LINES_SUFFIXES)) or (name.startswith("mldoctor-report-") and name.endswith(".zip"))


def _folder(folder: str) -> Iterator[Document]:
    """Report files under `folder`, recursively, in a stable order (links to folders are not followed); a
    sub-folder that cannot be listed is reported, not skipped in silence."""
    errors: list[OSError] = []
    for root, dirs, files in os.walk(folder, onerror=errors.append):
        dirs.sort()
        for name in sorted(files):
            if _is_report_file(name):
                yield from _file(os.path.join(root, name))
    for error in errors:
        yield Document(str(error.filename or folder), error=f"cannot list the folder: {error.strerror or error}")


def _bundle(path: str) -> Document:
    origin = f"{path}!{REPORT}"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if REPORT not in names:
                return Document(path, error=f"a zip but not an mldoctor bundle (no {REPORT} in it)")
            if MANIFEST in names and archive.getinfo(MANIFEST).file_size <= MAX_DOCUMENT:
                manifest = json.loads(archive.read(MANIFEST))
                bundle_format = manifest.get("bundle_format") if isinstance(manifest, dict) else None
                if isinstance(bundle_format, int) and bundle_format > BUNDLE_FORMAT:
                    return Document(origin, error=f"bundle format {bundle_format}; this mldoctor reads {BUNDLE_FORMAT}")
            if archive.getinfo(REPORT).file_size > MAX_DOCUMENT:
                return Document(origin, error=f"{REPORT} is larger than {MAX_DOCUMENT >> 20} MiB")
            return Document(origin, json.loads(archive.read(REPORT)))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, RuntimeError) as exc:
        return Document(origin, error=f"not a readable mldoctor bundle: {exc}")


def _json_file(path: str) -> Iterator[Document]:
    """A file holding one report; one holding several concatenated documents is read as a stream of them."""
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        if os.path.getsize(path) > MAX_DOCUMENT:
            yield from _lines_file(path)
            return
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        yield Document(path, error=f"cannot read: {exc}", name_hint=stem)
        return
    try:
        yield Document(path, json.loads(text), name_hint=stem)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            yield Document(path, error=f"not JSON: {exc}", name_hint=stem)
            return
        del text
        yield from _lines_file(path)


def _lines_file(path: str) -> Iterator[Document]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from stream(handle, path)
    except OSError as exc:
        yield Document(path, error=f"cannot read: {exc}")


def _parse(origin: str, text: str) -> Document:
    try:
        return Document(origin, json.loads(text))
    except ValueError as exc:
        return Document(origin, error=f"not JSON: {exc}")


def stream(handle: IO[str], name: str) -> Iterator[Document]:
    """Documents from a stream of JSON lines, or of pretty-printed documents one after another (`mldoctor check
    --format json` output concatenated: a document starts with `{` alone on a line and ends with `}` alone at the
    start of one), or of `@mldoctor-fleet` lines as an engine's task prints them (see `frames`: `kubectl logs` or a
    saved srun log). A bad line or document is reported and reading goes on after it."""
    buffer: list[str] = []
    size = start = 0
    number = 0
    assembler = frames.Assembler(name)
    while line := handle.readline(MAX_DOCUMENT + 1):
        number += 1
        if len(line) > MAX_DOCUMENT:
            while line and not line.endswith("\n"):  # skip the rest of an endless line
                line = handle.readline(MAX_DOCUMENT + 1)
            buffer, size = [], 0
            yield Document(f"{name}:{number}", error=f"a line longer than {MAX_DOCUMENT >> 20} MiB")
            continue
        if buffer:
            buffer.append(line)
            size += len(line)
            if line.rstrip() == "}":
                yield _parse(f"{name}:{start}", "".join(buffer))
                buffer, size = [], 0
            elif size > MAX_DOCUMENT:
                yield Document(f"{name}:{start}", error=f"a document larger than {MAX_DOCUMENT >> 20} MiB")
                buffer, size = [], 0
        elif frames.is_frame(line):
            yield from assembler.feed(line)
        elif line.rstrip() == "{":
            buffer, size, start = [line], len(line), number
        elif line.strip():
            yield _parse(f"{name}:{number}", line)
    if buffer:
        yield Document(f"{name}:{start}", error="the input ended inside a document")
    yield from assembler.unfinished()


def documents(inputs: Iterable[str], stdin: IO[str] | None = None) -> Iterator[Document]:
    """Every document behind `inputs`: files, folders (recursively: *.json, *.jsonl, mldoctor-report-*.zip),
    and `-` for `stdin`."""
    for item in inputs:
        if item == STDIN:
            if stdin is not None:
                yield from stream(stdin, "<stdin>")
        elif os.path.isdir(item):
            yield from _folder(item)
        else:
            yield from _file(item)


def _file(path: str) -> Iterator[Document]:
    if path.endswith(LINES_SUFFIXES):
        yield from _lines_file(path)
    elif zipfile.is_zipfile(path):
        yield _bundle(path)
    else:
        yield from _json_file(path)
