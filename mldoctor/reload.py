"""Load the facts of a saved report or support bundle, so today's rules can re-diagnose yesterday's machine.

A saved report comes from someone else's machine, by mail or a ticket: it is untrusted input. Whatever it holds,
loading it ends in one of two ways: a LoadedReport, or an UnreadableReport (a click usage error: one line, exit
code 2) that says what is wrong. Memory stays bounded: the file, each member read from a zip and the JSON's
nesting all have caps, and a member is decompressed in chunks under its cap whatever the zip's header declares (a
512 KiB bundle whose report.json expands to 512 MiB is refused after reading MAX_MEMBER_BYTES of it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import click

from mldoctor.bundle.archive import BUNDLE_FORMAT, MANIFEST, REPORT
from mldoctor.facts import Facts, Origin
from mldoctor.model import SCHEMA_VERSION
from mldoctor.policy import Policy
from mldoctor.serde import SchemaError, from_data

UPGRADE = "upgrade mldoctor (pip install -U mldoctor)"
MAX_FILE_BYTES = 64 << 20
"""A bundle is typically 15-100 KiB and stays well under 5 MB; a JSON report is smaller. Larger is not ours."""
MAX_MEMBER_BYTES = 32 << 20
"""report.json decompressed (a real 8-GPU report is a few hundred KiB), and any member hashed for the manifest."""
MAX_MANIFEST_BYTES = 1 << 20
MAX_CENTRAL_DIRECTORY_BYTES = 1 << 20
"""zipfile reads the whole central directory (one object per member) before anything else: a bundle has about
twenty members, a megabyte of directory is about twenty thousand."""
MAX_HASHED_BYTES = 256 << 20
"""All members hashed to check the manifest, decompressed (a bundle is capped at 2 MiB of text per raw file)."""
MAX_DEPTH = 64
"""A report nests about ten levels deep; JSON nested deeper is refused before anything recurses into it (the
parser, the schema, the rules, the renderers)."""
CHUNK = 1 << 16
COMPRESSIONS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
"""What Python's zipfile can decompress; mldoctor writes deflate."""
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError)
"""What reading a broken or crafted member raises: bad CRC or headers, corrupt deflate/bzip2/lzma data, a stream
cut short, an encrypted member (RuntimeError), a bad password check."""


class UnreadableReport(click.BadParameter):
    """The file given to `--facts` cannot be re-diagnosed; the message says why, in one line (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param_hint="'--facts'")


@dataclass(frozen=True)
class LoadedReport:
    """What `check --facts` re-diagnoses, and whether the bundle it came from was changed after it was written."""

    facts: Facts
    policy: Policy | None
    """The policy the report was judged by, when it recorded one."""
    altered: list[str] = field(default_factory=list)
    """Bundle members whose bytes do not match manifest.json (size or sha256), that the manifest lists and the zip
    lacks, or that the zip holds and the manifest does not list; `manifest.json` itself when it is missing or
    unreadable. Empty for an intact bundle and for a plain JSON report (which has no manifest)."""


def _bad(message: str) -> UnreadableReport:
    return UnreadableReport(message)


@contextlib.contextmanager
def _open_regular(path: str) -> Iterator[IO[bytes]]:
    """The file, opened once, if it is a regular file within MAX_FILE_BYTES: a FIFO or a device (`/dev/zero`)
    would block or never end, and a multi-GiB file is no report."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _bad(f"{path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _bad(f"{path} is not a regular file; give a saved report or bundle")
        if info.st_size > MAX_FILE_BYTES:
            raise _bad(f"{path} is {_size(info.st_size)}; a report or bundle is at most {_size(MAX_FILE_BYTES)}")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def _read_capped(stream: IO[bytes], cap: int) -> bytes | None:
    """At most `cap` bytes, read in chunks; None when there is more (what a zip header declares is not trusted)."""
    parts, total = [], 0
    while chunk := stream.read(min(CHUNK, cap + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > cap:
            return None
    return b"".join(parts)


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, cap: int) -> bytes:
    """One member's bytes, refused in one line when encrypted, compressed in a way zipfile cannot read, corrupt,
    or larger than `cap` once decompressed."""
    if info.flag_bits & 0x1:
        raise _bad(f"{path}: {info.filename} is encrypted; mldoctor writes bundles without a password")
    if info.compress_type not in COMPRESSIONS:
        raise _bad(f"{path}: {info.filename} uses compression method {info.compress_type}, which mldoctor cannot read")
    try:
        with archive.open(info) as stream:
            data = _read_capped(stream, cap)
    except ZIP_ERRORS as exc:
        raise _bad(f"{path} is not a readable mldoctor bundle: {info.filename}: {_one_line(exc)}") from None
    if data is None:
        raise _bad(f"{path}: {info.filename} expands to more than {_size(cap)}; no mldoctor report is that large")
    return data


def _parse(raw: bytes, where: str) -> Any:
    """JSON (UTF-8, as mldoctor writes it), refused in one line when it is not, or nested deeper than MAX_DEPTH."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise _bad(f"{where} is nested too deeply to be a report") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of 5,000 digits
        raise _bad(f"{where} is not UTF-8 JSON: {_one_line(exc)}") from None
    if _depth(data) > MAX_DEPTH:
        raise _bad(f"{where} is nested more than {MAX_DEPTH} levels deep; no mldoctor report is")
    return data


def _depth(data: Any) -> int:
    """How deep lists and objects nest, without recursion (the parser accepts more than Python can recurse)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _altered(archive: zipfile.ZipFile, manifest: Any, path: str) -> list[str]:
    """The members whose bytes differ from what manifest.json recorded (size, then sha256), or that are missing
    from one side. Each is read under the size the manifest declares, and all of them under MAX_HASHED_BYTES, so
    hashing costs no more than a bundle mldoctor could have written."""
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("size"), int) for f in listed
    ):
        return [MANIFEST]
    present = {info.filename: info for info in archive.infolist()}
    altered, hashed = [], 0
    for entry in listed:
        info = present.get(entry["name"])
        if info is not None and info.file_size == entry["size"]:
            hashed += entry["size"]
            if hashed > MAX_HASHED_BYTES:
                raise _bad(f"{path} holds more than {_size(MAX_HASHED_BYTES)} of members; no mldoctor bundle does")
        if info is None or not _matches(archive, info, entry, path):
            altered.append(entry["name"])
    recorded = {entry["name"] for entry in listed} | {MANIFEST}
    return altered + sorted(name for name in present if name not in recorded)


def _matches(archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: dict[str, Any], path: str) -> bool:
    size = entry["size"]
    if info.file_size != size or not 0 <= size <= MAX_MEMBER_BYTES:
        return False
    digest = hashlib.sha256()
    try:
        if info.flag_bits & 0x1 or info.compress_type not in COMPRESSIONS:
            return False
        with archive.open(info) as stream:
            read = 0
            while chunk := stream.read(min(CHUNK, size + 1 - read)):
                read += len(chunk)
                if read > size:
                    return False
                digest.update(chunk)
    except ZIP_ERRORS:
        return False
    return read == size and digest.hexdigest() == entry.get("sha256")


def _read_bundle(archive: zipfile.ZipFile, path: str) -> tuple[Any, list[str]]:
    """report.json from a `mldoctor report` zip, after checking the archive's own format; and what was altered."""
    try:
        members = {info.filename: info for info in archive.infolist()}
    except ZIP_ERRORS as exc:
        raise _bad(f"{path} is not a readable mldoctor bundle: {_one_line(exc)}") from None
    if REPORT not in members:
        raise _bad(f"{path} is a zip but not an mldoctor bundle (no {REPORT} in it)")
    manifest: Any = None
    if MANIFEST in members:
        manifest = _parse(_member(archive, members[MANIFEST], path, MAX_MANIFEST_BYTES), f"{path}: {MANIFEST}")
    bundle_format = manifest.get("bundle_format") if isinstance(manifest, dict) else None
    if isinstance(bundle_format, int) and bundle_format > BUNDLE_FORMAT:
        raise _bad(
            f"{path} is a bundle of format {bundle_format} (mldoctor {manifest.get('mldoctor_version')}); "
            f"this mldoctor reads format {BUNDLE_FORMAT} and older: {UPGRADE}"
        )
    data = _parse(_member(archive, members[REPORT], path, MAX_MEMBER_BYTES), f"{path}: {REPORT}")
    return data, _altered(archive, manifest, path)


def _check_central_directory(handle: IO[bytes], path: str) -> None:
    """Refuse a zip whose central directory is larger than MAX_CENTRAL_DIRECTORY_BYTES before zipfile parses it,
    reading its size the way zipfile does (zip64 records included)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # zipfile's own reader, so both agree on which record
    record = end_record(handle) if end_record is not None else None
    handle.seek(0)
    if record is not None and record[5] > MAX_CENTRAL_DIRECTORY_BYTES:  # _ECD_SIZE
        raise _bad(f"{path} has a zip directory of {record[5]:,} bytes; an mldoctor bundle has a few dozen members")


def _read(path: str) -> tuple[Any, list[str]]:
    """The report's JSON data from a bundle or a JSON file, and the altered members of a bundle."""
    with _open_regular(path) as handle:
        try:
            is_zip = zipfile.is_zipfile(handle)
            handle.seek(0)
            if is_zip:
                _check_central_directory(handle, path)
                with zipfile.ZipFile(handle) as archive:
                    return _read_bundle(archive, path)
            raw = _read_capped(handle, MAX_FILE_BYTES)
        except ZIP_ERRORS as exc:
            raise _bad(f"{path} is not a readable mldoctor bundle: {_one_line(exc)}") from None
    if raw is None:  # the file grew while it was read
        raise _bad(f"{path} is larger than {_size(MAX_FILE_BYTES)}; no report is")
    return _parse(raw, path), []


def load(path: str) -> LoadedReport:
    """Facts (and the policy they were judged by, when recorded) from a `--format json` report or a `mldoctor
    report` bundle, and which bundle members were altered; an UnreadableReport (exit 2, one line) otherwise."""
    data, altered = _read(path)
    if not isinstance(data, dict) or "facts" not in data:
        raise _bad(f"{path} has no facts; give a file from `mldoctor check --format json` or `mldoctor report`")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise _bad(
            f"{path} uses report schema {version!r}; this mldoctor reads schema {SCHEMA_VERSION} and older: {UPGRADE}"
        )
    try:
        facts = from_data(Facts, data["facts"])
        policy = from_data(Policy, data["policy"]) if data.get("policy") else None
    except SchemaError as exc:
        raise _bad(f"{path}: does not match report schema {version}: {_one_line(exc)}") from None
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:  # a shape the schema missed
        raise _bad(f"{path}: does not match report schema {version}: {type(exc).__name__}: {_one_line(exc)}") from None
    facts.origin = Origin(
        path=_text(path),
        host=_text(data.get("host")),
        created=_text(data.get("created")),
        tool_version=_text(data.get("tool_version")),
        altered=[_text(name) for name in altered[:100]],
    )
    return LoadedReport(facts, policy, altered)


def _text(value: Any, limit: int = 200) -> str:
    """A string from the saved file, for a header line: bounded, one line."""
    return " ".join(str(value or "").split())[:limit]


def load_report(path: str) -> tuple[Facts, Policy | None]:
    """`load` for callers that take facts and policy only: an altered bundle is still loaded; `facts.origin` says
    what was altered, and the report.integrity check WARNs about it in the report itself."""
    loaded = load(path)
    return loaded.facts, loaded.policy
