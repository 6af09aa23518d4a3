"""Build `docker save` tarballs and OCI layouts in a test's tmp_path: plain data, no daemon."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

VERSION_PY = "__version__ = '2.5.1+cu124'\ndebug = False\ncuda: Optional[str] = '12.4'\n"


def layer(files: dict[str, object]) -> bytes:
    """A layer tar: name -> bytes (a file), ("link", target) (a symlink), "dir", or ("size", n) (a file of n zeros)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if content == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, tuple) and content[0] == "link":
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            elif isinstance(content, tuple) and content[0] == "size":
                info.size = content[1]
                tar.addfile(info, io.BytesIO(bytes(content[1])))
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def config(env: list[str] | None = None, history: list[dict] | None = None, user: str = "") -> dict:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env or ["PATH=/usr/local/bin:/usr/bin:/bin"], "User": user},
        "history": history or [],
        "rootfs": {"type": "layers", "diff_ids": []},
    }


def torch_image_layers() -> list[bytes]:
    """python3.11, torch 2.5.1+cu124, a baked libnvidia-ml.so.1."""
    return [
        layer({"usr/bin/python3": ("link", "python3.11"), "usr/bin/python3.11": b"\x7fELF"}),
        layer(
            {
                "usr/local/lib/python3.11/dist-packages/torch/version.py": VERSION_PY.encode(),
                "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1": b"\x7fELF",
            }
        ),
    ]


def docker_save(path: Path, cfg: dict, layers: list[bytes], tag: str = "train:1", extra: dict | None = None) -> Path:
    """The legacy `docker save` layout: manifest.json, <id>.json, <n>/layer.tar."""
    data = json.dumps(cfg).encode()
    config_name = hashlib.sha256(data).hexdigest() + ".json"
    members = {config_name: data}
    names = []
    for index, blob in enumerate(layers):
        names.append(f"{index:064d}/layer.tar")
        members[names[-1]] = blob
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": names}]
    members["manifest.json"] = json.dumps(manifest).encode()
    members.update(extra or {})
    with tarfile.open(path, "w") as tar:
        for name, content in members.items():
            if isinstance(content, tuple):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def oci_layout(root: Path, cfg: dict, layers: list[bytes], nested: bool = False, tag: str = "train:1") -> Path:
    """An OCI image layout folder, gzipped layers, optionally behind an image index (multi-platform)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    config_digest = _blob(root, json.dumps(cfg).encode())
    layer_digests = [_blob(root, gzip.compress(blob)) for blob in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d} for d in layer_digests],
    }
    entry = {"digest": _blob(root, json.dumps(manifest).encode()), "platform": {"os": "linux", "architecture": "amd64"}}
    if nested:
        index = {"schemaVersion": 2, "manifests": [{"platform": {"os": "linux", "architecture": "arm64"},
                                                     "digest": entry["digest"]}, entry]}  # fmt: skip
        entry = {"digest": _blob(root, json.dumps(index).encode())}
    entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return root
