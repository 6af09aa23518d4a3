"""Read an image with no daemon at all: a `docker save` tarball (manifest.json) or an OCI image layout (index.json),
as a tar file or a folder. For CI builders that export images instead of loading them.

The config blob gives what `docker image inspect` gives; the layer tars are walked in order (whiteouts applied) for
the same few files the daemon reader looks at. The input is hostile until proven otherwise: names are never used
as paths on this machine (nothing is extracted), blob references must be digests or plain relative names inside the
archive, symlinks inside the outer archive are followed at most a few hops, JSON and file reads are size-capped,
and the number of layers and tar members walked is bounded.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import posixpath
import re
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from mldoctor.image.facts import (
    DRIVER_FILES,
    MAX_VERSION_PY,
    ImageFacts,
    bounded,
    compat_on_path,
    from_config,
    history_layers,
    parse_version_py,
    python_version,
)

MAX_JSON = 8 << 20
"""manifest.json, index.json, a manifest or a config blob: a few KiB in practice."""
MAX_LAYERS = 512
MAX_MEMBERS = 3_000_000
"""Tar members walked over all layers (a large CUDA image has a few hundred thousand)."""
MAX_SECONDS = 300.0
"""Walking stops here (a decompression bomb costs time, not memory): the layers not walked are named in errors."""
MAX_LINK_HOPS = 8
MAX_INDEX_DEPTH = 3
DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
INTERESTING = re.compile(
    r".*/bin/python3(\.\d{1,2})?|.*/lib/python3\.\d{1,2}|.*/(site|dist)-packages/torch/version\.py"
    r"|/usr/local/cuda[^/]*/compat/libcuda\.so[.\d]*"
)
DRIVER_SET = frozenset(DRIVER_FILES)
MAX_ENTRIES = 10_000


MAX_HEADER = 1 << 20
"""A pax or GNU long-name header larger than this is refused before it is read (tarfile reads it whole)."""
EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class _BoundedInfo(tarfile.TarInfo):
    """tarfile reads an extended header's whole claimed size into memory: a hostile one claiming gigabytes is
    refused here first."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in EXTENDED and self.size > MAX_HEADER:
            raise tarfile.HeaderError(f"an extended tar header of {self.size} bytes (more than {MAX_HEADER})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


class ArchiveError(Exception):
    """The file is not a readable image archive (exit code 2, with this one line)."""


@dataclass
class Entry:
    """What the merged filesystem has at one interesting path."""

    kind: str
    """file, link, dir or other."""
    link: str = ""
    text: str | None = None
    """torch/version.py's content (small files only)."""


def read_archive(path: str, ref: str | None = None) -> ImageFacts:
    """The facts of the image in `path` (a tar file or a folder); `ref` picks one of several tagged images."""
    started = time.monotonic()
    try:
        store: _Store = _DirStore(path) if os.path.isdir(path) else _TarStore(path)
    except (OSError, tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from None
    with contextlib.closing(store):
        try:
            config_name, layer_names, tag, source = _manifest(store, ref)
            config = _json(store, config_name)
        except (OSError, tarfile.TarError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArchiveError(f"{path} is not a docker save tarball or an OCI image layout: {exc}") from None
        facts = ImageFacts(ref=bounded(tag or ref or path, 300), source=source)
        facts.id = f"sha256:{config_name.rsplit('/', 1)[-1].removesuffix('.json')}"[:80]
        from_config(facts, config.get("config") if isinstance(config, dict) else {})
        history = config.get("history") if isinstance(config, dict) else []
        facts.layers = history_layers(history if isinstance(history, list) else [], oldest_first=True)
        facts.timings["config"] = round(time.monotonic() - started, 3)
        step = time.monotonic()
        sizes, entries = _walk(store, layer_names[:MAX_LAYERS], facts)
        facts.timings["layers"] = round(time.monotonic() - step, 3)
    _assign_sizes(facts, sizes)
    facts.size = sum(sizes)
    _files(facts, entries)
    return facts


class _Store:
    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _clean(name: str) -> str:
    """A reference inside the archive as a relative name; refuses absolute names and any `..`."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\x00" in name:
        raise ValueError(f"bad reference {bounded(name, 100)!r} in the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        raise ValueError(f"bad reference {bounded(name, 100)!r} in the archive")
    return "/".join(parts)


class _TarStore(_Store):
    """A docker save tarball (or an OCI layout packed as a tar), optionally gzipped."""

    def __init__(self, path: str) -> None:
        self.tar = tarfile.open(path, "r:*", tarinfo=_BoundedInfo)  # noqa: SIM115 (closed by close())
        self.members: dict[str, tarfile.TarInfo] = {}
        for count, member in enumerate(self.tar):
            if count > 100_000:
                raise ValueError("more than 100000 entries: not an image archive")
            with contextlib.suppress(ValueError):
                self.members[_clean(member.name)] = member
        self.tar.members = []  # the index above is all that is kept

    def _resolve(self, name: str) -> tarfile.TarInfo:
        name = _clean(name)
        for _ in range(MAX_LINK_HOPS):
            member = self.members.get(name)
            if member is None:
                raise KeyError(f"{name} is not in the archive")
            if member.isreg():
                return member
            if not member.issym() and not member.islnk():
                raise ValueError(f"{name} is not a file")
            target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name), member.linkname)
            name = _clean(posixpath.normpath(target))
        raise ValueError(f"{name}: more than {MAX_LINK_HOPS} links (a loop?)")

    def open(self, name: str) -> IO[bytes]:
        handle = self.tar.extractfile(self._resolve(name))
        if handle is None:
            raise ValueError(f"{name} is not a file")
        return handle

    def exists(self, name: str) -> bool:
        with contextlib.suppress(ValueError):
            return _clean(name) in self.members
        return False

    def close(self) -> None:
        self.tar.close()


class _DirStore(_Store):
    """An OCI image layout folder (or an unpacked docker save): nothing outside it is ever opened."""

    def __init__(self, path: str) -> None:
        self.root = os.path.realpath(path)

    def _path(self, name: str) -> str:
        full = os.path.realpath(os.path.join(self.root, _clean(name)))
        if not full.startswith(self.root + os.sep):
            raise ValueError(f"{bounded(name, 100)} points outside the folder")
        return full

    def open(self, name: str) -> IO[bytes]:
        full = self._path(name)
        if not os.path.isfile(full):
            raise ValueError(f"{name} is not a file")
        return open(full, "rb")

    def exists(self, name: str) -> bool:
        with contextlib.suppress(ValueError):
            return os.path.exists(self._path(name))
        return False


def _json(store: _Store, name: str) -> Any:
    with store.open(name) as handle:
        data = handle.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise ValueError(f"{name} is larger than {MAX_JSON >> 20} MiB")
    value = json.loads(data)
    if not isinstance(value, dict | list):
        raise ValueError(f"{name} is not a JSON object")
    return value


def _blob(digest: Any) -> str:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise ValueError(f"bad digest {bounded(digest, 100)!r}")
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _manifest(store: _Store, ref: str | None) -> tuple[str, list[str], str | None, str]:
    """(config name, layer names, tag, source) from docker save's manifest.json, else the OCI index.json."""
    if store.exists("manifest.json"):
        entries = _json(store, "manifest.json")
        if not isinstance(entries, list) or not entries:
            raise ValueError("manifest.json lists no image")
        chosen = next((e for e in entries if ref and ref in (e.get("RepoTags") or [])), None)
        if chosen is None and ref and len(entries) > 1:
            raise ValueError(f"{ref} is not among its images")
        chosen = chosen or entries[0]
        tags = chosen.get("RepoTags") or []
        layers = chosen["Layers"]
        if not isinstance(layers, list):
            raise ValueError("Layers is not a list")
        return _clean(chosen["Config"]), [_clean(n) for n in layers], tags[0] if tags else None, "docker-save"
    index = _json(store, "index.json")
    tag = None
    for _ in range(MAX_INDEX_DEPTH):
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not manifests:
            raise ValueError("index.json lists no manifest")
        chosen = _pick(manifests, ref)
        tag = tag or (chosen.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        document = _json(store, _blob(chosen.get("digest")))
        if isinstance(document, dict) and "layers" in document:
            return (
                _blob(document["config"]["digest"]),
                [_blob(layer.get("digest")) for layer in document["layers"]],
                bounded(tag, 200) if tag else None,
                "oci-layout",
            )
        index = document  # an image index (several platforms): one level down
    raise ValueError(f"image indexes nested more than {MAX_INDEX_DEPTH} deep")


def _pick(manifests: list[Any], ref: str | None) -> dict[str, Any]:
    """The manifest named `ref`, else linux/amd64, else the first."""
    valid = [m for m in manifests if isinstance(m, dict)]
    for manifest in valid:
        if ref and (manifest.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref:
            return manifest
    for manifest in valid:
        platform = manifest.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return manifest
    if not valid:
        raise ValueError("index.json lists no manifest")
    return valid[0]


def _normal(name: str) -> str | None:
    """A layer member's name as an absolute path in the image, or None for one that escapes ("../x")."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/" + "/".join(parts)


def _members(handle: IO[bytes]) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """A layer's members in order, streamed (gzip or plain); nothing is kept per member."""
    with tarfile.open(fileobj=handle, mode="r|*", tarinfo=_BoundedInfo) as tar:
        for member in tar:
            yield tar, member
            tar.members = []  # stream mode would otherwise keep every TarInfo of a 200k-file layer


def _walk(store: _Store, names: list[str], facts: ImageFacts) -> tuple[list[int], dict[str, Entry]]:
    """Apply the layers in order; the interesting paths of the final filesystem, and each layer's bytes."""
    entries: dict[str, Entry] = {}
    sizes: list[int] = []
    walked = 0
    deadline = time.monotonic() + MAX_SECONDS
    for name in names:
        size = 0
        try:
            with store.open(name) as handle:
                for tar, member in _members(handle):
                    walked += 1
                    if walked > MAX_MEMBERS:
                        raise ValueError(f"more than {MAX_MEMBERS} files in the layers; stopped")
                    if walked % 4096 == 0 and time.monotonic() > deadline:
                        raise ValueError(f"still walking after {MAX_SECONDS:g} s; stopped")
                    size += max(0, member.size) if member.isreg() else 0
                    _apply(tar, member, entries)
        except (OSError, tarfile.TarError, EOFError, ValueError, zlib.error) as exc:
            facts.errors.append(f"layer {bounded(name, 100)}: {bounded(exc, 200)}")
        sizes.append(size)
    return sizes, entries


def _apply(tar: tarfile.TarFile, member: tarfile.TarInfo, entries: dict[str, Entry]) -> None:
    path = _normal(member.name)
    if path is None or path == "/":
        return
    directory, base = posixpath.split(path)
    if base == ".wh..wh..opq":  # an opaque directory: what lower layers had in it is gone
        prefix = directory.rstrip("/") + "/"
        for key in [k for k in entries if k.startswith(prefix)]:
            del entries[key]
        return
    if base.startswith(".wh."):
        gone = posixpath.join(directory, base[len(".wh.") :])
        for key in [k for k in entries if k == gone or k.startswith(gone + "/")]:
            del entries[key]
        return
    if path not in DRIVER_SET and not INTERESTING.fullmatch(path):
        return
    if len(entries) >= MAX_ENTRIES and path not in entries:
        return
    if member.isreg():
        entry = Entry("file")
        if path.endswith("/torch/version.py") and member.size <= MAX_VERSION_PY:
            handle = tar.extractfile(member)
            entry.text = handle.read(MAX_VERSION_PY).decode("utf-8", "replace") if handle else None
    elif member.issym() or member.islnk():
        entry = Entry("link", link=bounded(member.linkname, 300))
    elif member.isdir():
        entry = Entry("dir")
    else:
        entry = Entry("other")
    entries[path] = entry


def _assign_sizes(facts: ImageFacts, sizes: list[int]) -> None:
    """Layer tar sizes onto the history entries that made a layer (OCI history marks the others empty_layer)."""
    real = [layer for layer in facts.layers if not layer.empty]
    for layer, size in zip(real, sizes, strict=False):
        layer.size = size


def _files(facts: ImageFacts, entries: dict[str, Entry]) -> None:
    facts.files_read = True
    pythons = sorted(p for p in entries if re.fullmatch(r".*/bin/python3", p))
    for path in pythons:
        entry = entries[path]
        facts.python.append(f"{path} -> {entry.link}" if entry.kind == "link" else path)
        facts.python_version = facts.python_version or python_version(entry.link) or None
    if facts.python_version is None:
        versions = sorted(
            {v for p in entries if (v := python_version(p)) and re.search(r"/(bin|lib)/python3\.\d+$", p)},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        )
        if pythons and versions:
            facts.python_version = versions[-1]
    torches = sorted(p for p, e in entries.items() if p.endswith("/torch/version.py") and e.text is not None)
    if torches:
        preferred = [p for p in torches if facts.python_version and f"python{facts.python_version}/" in p]
        path = (preferred or torches)[0]
        facts.torch = parse_version_py(path, entries[path].text or "")
    facts.driver_files = [p for p in DRIVER_FILES if p in entries]
    facts.compat_dirs = [d for d in compat_on_path(facts.env) if any(p.startswith(d + "/libcuda.so") for p in entries)]
