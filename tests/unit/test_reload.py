"""`check --facts` on hostile files: every one is refused in one line with exit code 2, in bounded memory and time;
a bundle changed after it was written is still re-diagnosed, and says what was changed.

The zips are crafted byte by byte where zipfile would not write them (an encrypted flag, an unknown compression
method, a header that understates a member's size): a loader must not trust what a header says.
"""

from __future__ import annotations

import json
import os
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from helpers import call
from test_bundle import gpu_report, raw_files

from mldoctor import reload
from mldoctor.bundle.command import write_bundle
from mldoctor.bundle.redact import Redactor
from mldoctor.reload import MAX_DEPTH, MAX_MEMBER_BYTES, UnreadableReport, load

MIB = 1 << 20


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """An intact bundle of the 8-GPU report."""
    path = tmp_path_factory.mktemp("bundle") / "bundle.zip"
    write_bundle(str(path), gpu_report(), raw_files(), Redactor())
    return path


def copy_with(source: Path, target: Path, replace: dict[str, bytes] | None = None, add=(), drop=()) -> Path:
    """A copy of a zip with some members' bytes replaced, some added and some dropped, the manifest untouched."""
    replace = replace or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            if name not in drop:
                new.writestr(name, replace.get(name, old.read(name)))
        for name, data in add:
            new.writestr(name, data)
    return target


def patch_member(path: Path, name: str, flags: int | None = None, method: int | None = None, size: int | None = None):
    """Rewrite a member's general-purpose flags, compression method or uncompressed size in both its local header
    and its central directory entry, as a crafted zip would have them."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        central = archive.start_dir
    entries = [(info.header_offset, 6, 8, 22)]  # local header: flags, method, uncompressed size
    offset = central
    while data[offset : offset + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[offset + 28 : offset + 34])
        if data[offset + 46 : offset + 46 + name_len].decode() == name:
            entries.append((offset, 8, 10, 24))
        offset += 46 + name_len + extra_len + comment_len
    assert len(entries) == 2, "the member's central directory entry was not found"
    for start, flag_at, method_at, size_at in entries:
        if flags is not None:
            struct.pack_into("<H", data, start + flag_at, flags)
        if method is not None:
            struct.pack_into("<H", data, start + method_at, method)
        if size is not None:
            struct.pack_into("<I", data, start + size_at, size)
    path.write_bytes(bytes(data))
    return path


def deflated(name: str) -> zipfile.ZipInfo:
    """A member to stream into with deflate (ZipFile.open(..., "w") takes the method from the ZipInfo)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def zip_bomb(path: Path, expands_to: int = 512 * MIB, member: str = "report.json") -> Path:
    """A bundle-shaped zip whose `member` is valid JSON expanding to `expands_to` bytes: blanks, then facts. A
    loader that reads it whole and parses it gets a report; one that caps what it decompresses refuses it."""
    tail = b'"schema_version": 1, "facts": {}}'
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"bundle_format": 1, "files": []}))
        with archive.open(deflated(member), "w", force_zip64=True) as stream:
            stream.write(b"{")
            blank = b" " * MIB
            for _ in range(expands_to // MIB - 1):
                stream.write(blank)
            stream.write(b" " * (MIB - len(tail) - 1) + tail)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return zip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.zip")


def refused(capsys, path: Path, *expected: str) -> str:
    """Run `check --facts PATH` as a user would: exit code 2, one line on stderr naming --facts and `expected`."""
    code, _, err = call(capsys, "check", "--facts", str(path))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "--facts" in err and "internal error" not in err, err
    for text in expected:
        assert text in err, err
    return err


def test_the_bomb_is_what_it_claims(bomb):
    with zipfile.ZipFile(bomb) as archive:
        info = archive.getinfo("report.json")
    assert bomb.stat().st_size <= 600 * 1024 and info.file_size == 512 * MIB
    assert info.compress_type == zipfile.ZIP_DEFLATED


def test_a_zip_bomb_is_refused_quickly_in_bounded_memory(bomb):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(UnreadableReport, match="expands to more than"):
            load(str(bomb))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_MEMBER_BYTES + 16 * MIB, f"peak {peak / MIB:.0f} MiB"
    assert elapsed < 30, f"{elapsed:.1f} s"


def test_a_zip_bomb_is_one_line_and_exit_2(capsys, bomb):
    refused(capsys, bomb, "report.json expands to more than")


def test_a_header_that_understates_a_member_is_not_trusted(capsys, tmp_path, bundle):
    """The header says 100 bytes; the deflate stream holds the whole report: reading stops, the CRC fails."""
    crafted = copy_with(bundle, tmp_path / "understated.zip")
    patch_member(crafted, "report.json", size=100)
    refused(capsys, crafted, "report.json")


def test_an_encrypted_member_is_refused(capsys, tmp_path, bundle):
    crafted = patch_member(copy_with(bundle, tmp_path / "encrypted.zip"), "report.json", flags=0x1)
    refused(capsys, crafted, "report.json is encrypted")


@pytest.mark.parametrize("method", [99, 93, 9])  # AES (WinZip), zstd, deflate64
def test_an_unknown_compression_method_is_refused(capsys, tmp_path, bundle, method):
    crafted = patch_member(copy_with(bundle, tmp_path / "method.zip"), "report.json", method=method)
    refused(capsys, crafted, f"compression method {method}")


def test_a_corrupt_member_is_refused(capsys, tmp_path, bundle):
    crafted = copy_with(bundle, tmp_path / "corrupt.zip")
    data = bytearray(crafted.read_bytes())
    with zipfile.ZipFile(crafted) as archive:
        info = archive.getinfo("report.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 20, start + min(info.compress_size, 400)):
        data[i] ^= 0x5A
    crafted.write_bytes(bytes(data))
    refused(capsys, crafted, "report.json")


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [100_000, MAX_DEPTH + 1])
def test_json_nested_deep_is_refused_as_a_file_and_in_a_bundle(capsys, tmp_path, bundle, depth):
    report = '{"schema_version": 1, "facts": {}, "deep": ' + deep(depth) + "}"
    plain = tmp_path / "deep.json"
    plain.write_text(report)
    refused(capsys, plain, "nested")
    refused(capsys, copy_with(bundle, tmp_path / "deep.zip", replace={"report.json": report.encode()}), "nested")


@pytest.mark.parametrize("document", ["[]", '"facts"', "1", "null", '{"facts": 1, "schema_version": 1}', "{}"])
def test_json_that_is_not_a_report_is_refused(capsys, tmp_path, document):
    path = tmp_path / "r.json"
    path.write_text(document)
    refused(capsys, path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe\x00garbage\x80\x81", "is not UTF-8 JSON"),
        (b"hello, support", "is not UTF-8 JSON"),
        (b"PK\x03\x04" + b"\x00" * 64, "is not UTF-8 JSON"),
        (b'{"schema_version": 1, "facts": {}, "n": ' + b"9" * 5000 + b"}", "is not UTF-8 JSON"),
        (b"", "is not UTF-8 JSON"),
    ],
)
def test_a_file_that_is_neither_a_zip_nor_json_is_refused(capsys, tmp_path, content, expected):
    path = tmp_path / "r.bin"
    path.write_bytes(content)
    refused(capsys, path, expected)


def test_a_fifo_is_refused_without_blocking(capsys, tmp_path):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    refused(capsys, fifo, "not a regular file")


def test_an_intact_bundle_is_not_altered(bundle):
    assert load(str(bundle)).altered == []


def test_an_altered_bundle_still_loads_and_names_what_changed(tmp_path, bundle):
    with zipfile.ZipFile(bundle) as archive:
        report = json.loads(archive.read("report.json"))
    report["facts"]["host"]["hostname"] = "someone-else"
    crafted = copy_with(
        bundle,
        tmp_path / "altered.zip",
        replace={"report.json": json.dumps(report).encode()},
        add=[("raw/extra.txt", b"planted")],
        drop=["raw/uname.txt"],
    )
    loaded = load(str(crafted))
    assert loaded.facts.host.hostname == "someone-else"
    assert loaded.altered == ["report.json", "raw/uname.txt", "raw/extra.txt"]


def test_an_altered_bundle_is_rediagnosed_with_a_warning(capsys, tmp_path, bundle):
    crafted = copy_with(bundle, tmp_path / "altered.zip", replace={"raw/uname.txt": b"Linux other\n"})
    code, out, err = call(capsys, "check", "--facts", str(crafted), "--format", "json")
    integrity = next(r for r in json.loads(out)["results"] if r["id"] == "report.integrity")
    assert (
        integrity["status"] == "WARN" and "raw/uname.txt" in integrity["summary"] and "manifest" in integrity["summary"]
    )
    assert integrity["fix"] and err == ""
    assert code == max(gpu_report().exit_code(), 0)


def test_an_intact_bundle_says_whose_report_it_judges(capsys, bundle):
    _, out, _ = call(capsys, "check", "--facts", str(bundle))
    heading = out.splitlines()[0]
    assert "offline re-diagnosis of" in heading and "report made" in heading
    assert "report.integrity" in out and "offline re-diagnosis of" in out


def test_a_bomb_in_a_raw_member_costs_no_more_than_the_manifest_declares(tmp_path, bundle):
    """Hashing a member for the manifest reads it under the size the manifest records for it."""
    crafted = copy_with(bundle, tmp_path / "raw-bomb.zip", drop=["raw/uname.txt"])
    with (
        zipfile.ZipFile(crafted, "a") as archive,
        archive.open(deflated("raw/uname.txt"), "w", force_zip64=True) as stream,
    ):
        for _ in range(256):
            stream.write(b"\0" * MIB)
    tracemalloc.start()
    try:
        loaded = load(str(crafted))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.altered == ["raw/uname.txt"] and peak < 64 * MIB


def test_a_zip_with_a_huge_directory_is_refused_before_it_is_parsed(capsys, tmp_path, bundle):
    """zipfile builds one object per member of the central directory before anything can be checked."""
    crafted = copy_with(bundle, tmp_path / "many.zip", add=[(f"{i:04d}" + "x" * 60_000, b"") for i in range(20)])
    refused(capsys, crafted, "zip directory of")


def test_hashing_for_the_manifest_has_a_budget(capsys, tmp_path, bundle, monkeypatch):
    """Members that match their manifest sizes are hashed; past the budget the bundle is refused, not read on."""
    monkeypatch.setattr(reload, "MAX_HASHED_BYTES", 4096)
    refused(capsys, bundle, "more than 4 KiB of members")


def test_a_file_larger_than_any_report_is_refused_unread(capsys, bundle, monkeypatch):
    monkeypatch.setattr(reload, "MAX_FILE_BYTES", 1024)
    refused(capsys, bundle, "a report or bundle is at most 1 KiB")
