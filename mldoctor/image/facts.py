"""What an image is, as plain typed data: its config, its history and the few files that decide whether it runs
on a GPU host. Read by `daemon.py` (a Docker daemon) or `archive.py` (a `docker save` tarball, an OCI layout);
judged by `checks.py`.

Everything here comes from the image's author: untrusted text. It is bounded when read (`bounded`, the LIMITS
below) and never executed, interpolated into a shell or used as a path on this machine.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 2000
"""The longest single string kept (an env value, a history line)."""
MAX_ITEMS = 500
"""The most env entries, labels, ports or history entries kept."""
MAX_VERSION_PY = 64 * 1024
"""torch/version.py is a few hundred bytes; anything larger is not read."""

DRIVER_FILE_NAMES = ("libnvidia-ml.so.1", "libcuda.so.1", "nvidia-smi")
"""Files the NVIDIA container toolkit mounts from the host: an image that ships its own makes the mount fail
("mount error: file creation failed: ...: file exists")."""
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
"""Where the toolkit mounts the driver's libraries (not /lib/...: on merged-/usr images that is the same directory
through a link, and on the others the toolkit does not mount there)."""
BIN_DIRS = ("/usr/bin", "/usr/local/bin")
DRIVER_FILES = tuple(f"{d}/{n}" for d in LIB_DIRS for n in DRIVER_FILE_NAMES[:2]) + tuple(
    f"{d}/nvidia-smi" for d in BIN_DIRS
)
PYTHON_BINARIES = ("/usr/bin/python3", "/usr/local/bin/python3")
PYTHON_NAME = re.compile(r"python(3\.\d{1,2})$")


@dataclass
class Layer:
    """One history entry, oldest first: what made it and how many bytes it added."""

    created_by: str
    size: int = 0
    empty: bool = False
    """A metadata-only step (ENV, LABEL, USER ...): no filesystem layer."""
    tags: list[str] = field(default_factory=list)
    """Local tags of the image this entry ends (the daemon knows them for images it has; shows the base)."""


@dataclass
class TorchFacts:
    """torch as its `version.py` describes it (no import: the image's code is never run)."""

    path: str
    version: str = ""
    cuda: str | None = None
    """The CUDA the wheel was built for; None for a CPU build."""


@dataclass
class ImageFacts:
    """An image as read from a daemon, a `docker save` tarball or an OCI layout: its config, history and the few
    files that decide whether it runs on a GPU host. Untrusted text, bounded when read."""

    ref: str
    """What was asked for: a name, an id, or a file."""
    source: str = "daemon"
    """daemon, docker-save or oci-layout."""
    id: str = ""
    size: int = 0
    """Bytes, as `docker images` counts them (the layers uncompressed)."""
    user: str = ""
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    healthcheck: list[str] | None = None
    """Config.Healthcheck.Test; None when the image has none; ["NONE"] when it disables its base's."""
    layers: list[Layer] = field(default_factory=list)
    files_read: bool = False
    """Whether the filesystem was looked at (python, torch, driver files); False leaves those checks unjudged."""
    python: list[str] = field(default_factory=list)
    """python3 executables found, each as `path` or `path -> python3.X`."""
    python_version: str | None = None
    """3.X, from the name python3 resolves to (or a lib/python3.X next to it)."""
    torch: TorchFacts | None = None
    driver_files: list[str] = field(default_factory=list)
    """Driver files baked into the image (see DRIVER_FILES)."""
    compat_dirs: list[str] = field(default_factory=list)
    """cuda-compat directories on the image's LD_LIBRARY_PATH that hold a libcuda.so.*."""
    errors: list[str] = field(default_factory=list)
    """What could not be read, and why (a check that needs it says so instead of guessing)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per step (inspect, files, ...): the preflight's cost, measured."""


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def bounded(text: Any, limit: int = MAX_TEXT) -> str:
    """An untrusted value as a short printable string: at most `limit` characters; tabs and newlines become spaces
    and other control characters `?`, so a label cannot move a terminal's cursor or forge a report line."""
    value = str(text) if text is not None else ""
    value = CONTROL.sub("?", value.replace("\t", " ").replace("\n", " ").replace("\r", " "))
    return value if len(value) <= limit else value[:limit] + "..."


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def from_config(facts: ImageFacts, config: dict[str, Any]) -> None:
    """Fill the config part of `facts` from an image config's `config` object (docker inspect's `Config`, the
    OCI config blob's `config`): both spell the fields the same way."""
    config = _mapping(config)
    env: dict[str, str] = {}
    for item in _sequence(config.get("Env"))[:MAX_ITEMS]:
        key, _, value = bounded(item).partition("=")
        env[key] = value
    facts.env = env
    facts.user = bounded(config.get("User") or "", 200)
    labels = _mapping(config.get("Labels"))
    facts.labels = {bounded(k, 200): bounded(v) for k, v in list(labels.items())[:MAX_ITEMS]}
    facts.exposed_ports = [bounded(p, 50) for p in list(_mapping(config.get("ExposedPorts")))[:MAX_ITEMS]]
    health = config.get("Healthcheck")
    test = health.get("Test") if isinstance(health, dict) else None
    facts.healthcheck = [bounded(t) for t in test[:20]] if isinstance(test, list) and test else None


def history_layers(history: list[dict[str, Any]], oldest_first: bool) -> list[Layer]:
    """History entries (the daemon's `/history`: newest first, with sizes and tags; an OCI config's `history`:
    oldest first, with `empty_layer`) as Layers, oldest first."""
    history = _sequence(history)
    entries = history[:MAX_ITEMS] if oldest_first else list(reversed(history[:MAX_ITEMS]))
    layers = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        created_by = entry.get("CreatedBy", entry.get("created_by", ""))
        size = entry.get("Size", 0)
        tags = [bounded(t, 200) for t in _sequence(entry.get("Tags"))[:10] if t != "<missing>"]
        layers.append(
            Layer(
                created_by=bounded(created_by),
                size=size if isinstance(size, int) and size > 0 else 0,
                empty=bool(entry.get("empty_layer")) or (not oldest_first and size == 0),
                tags=tags,
            )
        )
    return layers


def parse_version_py(path: str, text: str) -> TorchFacts:
    """torch/version.py's `__version__` and `cuda`, read as literals (ast), never executed."""
    torch = TorchFacts(path=path)
    try:
        tree = ast.parse(text[:MAX_VERSION_PY])
    except (SyntaxError, ValueError):
        return torch
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            continue
        if target.id == "__version__" and isinstance(literal, str):
            torch.version = bounded(literal, 100)
        elif target.id == "cuda":
            torch.cuda = bounded(literal, 20) if isinstance(literal, str) and literal else None
    return torch


def python_version(name: str) -> str | None:
    """'python3.11' or '/usr/bin/python3.11' -> '3.11'."""
    match = PYTHON_NAME.search(name)
    return match.group(1) if match else None


def site_packages(python_version: str | None, env: dict[str, str]) -> list[str]:
    """Where torch may be installed, for the python3 found: the system's, /usr/local's, conda's, and each
    `DIR/bin` on PATH taken as a prefix (a venv); PYTHONPATH entries too. Bounded."""
    versions = [python_version] if python_version else []
    prefixes = ["/usr/local", "/usr", "/opt/conda"]
    for entry in env.get("PATH", "").split(":")[:16]:
        if entry.endswith("/bin") and entry.startswith("/") and ".." not in entry:
            prefix = entry[: -len("/bin")] or "/"
            if prefix not in prefixes:
                prefixes.append(prefix)
    found = []
    for prefix in prefixes:
        for version in versions:
            for kind in ("dist-packages", "site-packages"):
                found.append(f"{prefix.rstrip('/')}/lib/python{version}/{kind}")
    found.append("/usr/lib/python3/dist-packages")
    for entry in env.get("PYTHONPATH", "").split(":")[:8]:
        if entry.startswith("/") and ".." not in entry:
            found.append(entry.rstrip("/"))
    return list(dict.fromkeys(found))[:40]


def compat_on_path(env: dict[str, str]) -> list[str]:
    """LD_LIBRARY_PATH entries that are a CUDA forward-compatibility directory (/usr/local/cuda*/compat)."""
    return [
        entry.rstrip("/")
        for entry in env.get("LD_LIBRARY_PATH", "").split(":")[:32]
        if re.fullmatch(r"/usr/local/cuda[\w.-]*/compat/?", entry)
    ]
