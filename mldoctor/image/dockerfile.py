"""A Dockerfile read as data and linted with hadolint's rule ids, plus what hadolint cannot know: a CUDA base image
newer than the fleet's driver runs.

The parser is deliberately small and bounded (at most MAX_BYTES, MAX_INSTRUCTIONS): comments, `\\` continuations
(and a `# escape=` directive), JSON-array forms, ARG defaults substituted into FROM, stages by name. Nothing in the
file is executed; `lint` is pure (text in, findings out), so it is tested like the rules.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mldoctor.data.gpus import min_driver_for_cuda
from mldoctor.image.checks import as_result
from mldoctor.image.targets import Targets
from mldoctor.model import CheckResult, Finding
from mldoctor.text import version_tuple

MAX_BYTES = 1 << 20
MAX_INSTRUCTIONS = 5000
DOCS = "docs/checks.md#imagedockerfile"
TITLE = "Dockerfile practices"


class DockerfileError(ValueError):
    """Not a Dockerfile mldoctor can read (too large, not text): a usage error."""


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuations joined, with the line it starts on (for a finding's location)."""

    line: int
    """1-based line where it starts."""
    keyword: str
    """Upper case: FROM, RUN, USER ..."""
    args: str
    """The rest, continuations joined with a space."""


def parse(text: str) -> list[Instruction]:
    """Instructions in order, with the line each starts on."""
    if len(text) > MAX_BYTES:
        raise DockerfileError(f"larger than {MAX_BYTES >> 20} MiB: not a Dockerfile")
    if "\x00" in text:
        raise DockerfileError("contains NUL bytes: not a Dockerfile")
    lines = text.splitlines()
    escape = "\\"
    for line in lines[:5]:  # parser directives come first
        match = re.fullmatch(r"#\s*escape\s*=\s*([\\`])\s*", line.strip(), re.IGNORECASE)
        if match:
            escape = match.group(1)
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if not parts:
            start = number
        if stripped.endswith(escape):
            parts.append(stripped[: -len(escape)].strip())
            continue
        parts.append(stripped)
        _add(out, start, " ".join(p for p in parts if p))
        parts = []
        if len(out) >= MAX_INSTRUCTIONS:
            raise DockerfileError(f"more than {MAX_INSTRUCTIONS} instructions")
    if parts:
        _add(out, start, " ".join(p for p in parts if p))
    return out


def _add(out: list[Instruction], line: int, text: str) -> None:
    keyword, _, args = text.partition(" ")
    if keyword:
        out.append(Instruction(line, keyword.upper(), args.strip()))


def _substitute(text: str, args: dict[str, str]) -> str:
    """$NAME, ${NAME} and ${NAME:-default} from ARG defaults (build-time --build-arg values are not known)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        default = match.group(3)
        found = args.get(name, "")
        return found or (default or "")

    return re.sub(r"\$(?:(\w+)|\{(\w+)(?::-([^}]*))?\})", value, text)


@dataclass(frozen=True)
class Lint:
    """One Dockerfile finding: the rule, the line, its status, what is wrong and the fix."""

    rule: str
    """The hadolint id (DL3002) or mldoctor's own: MLD001 a CUDA base, MLD002 a torch wheel, for a CUDA the target
    driver does not run."""
    line: int
    status: str
    summary: str
    fix: str


def _shell(args: str) -> str:
    """RUN's command as one string (the JSON-array form joined)."""
    if args.startswith("["):
        try:
            parsed = json.loads(args)
            if isinstance(parsed, list):
                return " ".join(str(p) for p in parsed)
        except ValueError:
            pass
    return args


APT_INSTALL = re.compile(r"\bapt(-get)?\s+(?:-\S+\s+)*install\b(?P<rest>[^;&|]*)")
PIP_INSTALL = re.compile(r"\b(?:pip3?|python3?\s+-m\s+pip)\s+install\b(?P<rest>[^;&|]*)")
CUDA_IMAGE = re.compile(r"(?:^|/)cuda:(\d+\.\d+)")


def _packages(rest: str) -> list[str]:
    return [w for w in rest.split() if not w.startswith("-") and not w.startswith("$")]


def lint(text: str, targets: Targets) -> list[Lint]:
    """The practices an ML image should follow, each finding with its line and a fix."""
    instructions = parse(text)
    found: list[Lint] = []
    args: dict[str, str] = {}
    stages: set[str] = set()
    last_user: Instruction | None = None
    for ins in instructions:
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            args.setdefault(name.strip(), default.strip().strip("\"'"))
        elif ins.keyword == "FROM":
            found += _from(ins, _substitute(ins.args, args), stages, targets)
            last_user = None
        elif ins.keyword == "USER":
            last_user = ins
        elif ins.keyword == "RUN":
            found += _run(ins, _shell(_substitute(ins.args, args)), targets)
    if last_user is None or last_user.args.split(":")[0].strip() in ("root", "0"):
        line = last_user.line if last_user else (instructions[-1].line if instructions else 1)
        found.append(
            Lint(
                "DL3002",
                line,
                "WARN",
                "the last stage runs as root (no USER, or USER root last)",
                "RUN useradd --create-home --uid 1000 app\nUSER app",
            )
        )
    return sorted(found, key=lambda lint_: (lint_.line, lint_.rule))


def _from(ins: Instruction, text: str, stages: set[str], targets: Targets) -> list[Lint]:
    words = [w for w in text.split() if not w.startswith("--")]
    if not words:
        return []
    image = words[0]
    if len(words) >= 3 and words[1].lower() == "as":
        stages.add(words[2].lower())
    if image.lower() in stages or image == "scratch":
        return []
    out = []
    name = image.split("@")[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if "@" not in image and not tag:
        out.append(
            Lint("DL3006", ins.line, "WARN", f"FROM {image} has no tag", f"FROM {image}:<version>   # or @sha256:…")
        )
    elif tag == "latest":
        out.append(
            Lint(
                "DL3007",
                ins.line,
                "WARN",
                f"FROM {image}: `latest` changes under you",
                f"FROM {name.rsplit(':', 1)[0]}:<version>",
            )
        )
    cuda = CUDA_IMAGE.search(name)
    if cuda and targets.driver_cuda and version_tuple(cuda.group(1)) > version_tuple(targets.driver_cuda):
        branch = min_driver_for_cuda(cuda.group(1))
        out.append(
            Lint(
                "MLD001",
                ins.line,
                "FAIL",
                f"FROM {image}: CUDA {cuda.group(1)} needs driver {branch or 'a newer driver'}"
                f"{'+' if branch else ''}; the target driver {targets.driver} runs CUDA {targets.driver_cuda} at most",
                f"FROM {name.rsplit(':', 1)[0]}:{targets.driver_cuda}.0-runtime-ubuntu22.04   "
                f"# a CUDA the driver runs; or upgrade the driver to {branch or 'a newer branch'}",
            )
        )
    return out


TORCH_INDEX = re.compile(r"download\.pytorch\.org/whl/(?:nightly/)?cu(\d+)(\d)\b")


def _torch_wheel(ins: Instruction, command: str, targets: Targets) -> list[Lint]:
    """MLD002: torch installed from PyTorch's index for a CUDA the target driver does not run."""
    match = TORCH_INDEX.search(command)
    if not match or not re.search(r"\btorch\b", command) or not targets.driver_cuda:
        return []
    cuda = f"{int(match.group(1))}.{match.group(2)}"
    if version_tuple(cuda) <= version_tuple(targets.driver_cuda):
        return []
    branch = min_driver_for_cuda(cuda)
    return [
        Lint(
            "MLD002",
            ins.line,
            "FAIL",
            f"torch from the cu{match.group(1)}{match.group(2)} index needs driver {branch or 'a newer driver'}"
            f"{'+' if branch else ''}; the target driver {targets.driver} runs CUDA {targets.driver_cuda} at most",
            f"pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/"
            f"cu{targets.driver_cuda.replace('.', '')}   # or upgrade the driver to {branch or 'a newer branch'}",
        )
    ]


def _run(ins: Instruction, command: str, targets: Targets) -> list[Lint]:
    out = _torch_wheel(ins, command, targets)
    apt = APT_INSTALL.search(command)
    if apt:
        if not re.search(r"rm\s+-[a-zA-Z]*\s+/var/lib/apt/lists", command):
            out.append(
                Lint(
                    "DL3009",
                    ins.line,
                    "WARN",
                    "apt lists are not deleted in the RUN that installs packages (tens of MiB in the layer)",
                    "append to that RUN: && rm -rf /var/lib/apt/lists/*",
                )
            )
        unpinned = [p for p in _packages(apt.group("rest")) if "=" not in p]
        if unpinned:
            out.append(
                Lint(
                    "DL3008",
                    ins.line,
                    "WARN",
                    f"apt packages without a version: {', '.join(unpinned[:5])}",
                    f"apt-get install -y --no-install-recommends {unpinned[0]}=<version>   # apt-cache policy "
                    f"{unpinned[0]} shows them",
                )
            )
    pip = PIP_INSTALL.search(command)
    if pip:
        packages = _packages(pip.group("rest"))
        unpinned = [p for p in packages if not re.search(r"==|@|\.whl$|^\.|/", p) and p != "-r"]
        if unpinned and "-r" not in pip.group("rest").split():
            out.append(
                Lint(
                    "DL3013",
                    ins.line,
                    "WARN",
                    f"pip packages without a version: {', '.join(unpinned[:5])}",
                    f"pip install --no-cache-dir {unpinned[0]}==<version>   # or -r requirements.txt with pins",
                )
            )
        if "--no-cache-dir" not in command:
            out.append(
                Lint(
                    "DL3042",
                    ins.line,
                    "WARN",
                    "pip install without --no-cache-dir keeps its download cache in the layer",
                    "pip install --no-cache-dir ...   # or ENV PIP_NO_CACHE_DIR=1",
                )
            )
    return out


def findings(text: str, targets: Targets, path: str = "Dockerfile") -> list[CheckResult]:
    """The lint as report rows: one `image.dockerfile.<RULE>` per rule that fired (each line listed), or one PASS."""
    lints = lint(text, targets)
    if not lints:
        return [
            _row(Finding.ok(f"{path}: no findings (DL3002 DL3006 DL3007 DL3008 DL3009 DL3013 DL3042 MLD001 MLD002)"))
        ]
    rows = []
    for rule in dict.fromkeys(lint_.rule for lint_ in lints):
        group = [lint_ for lint_ in lints if lint_.rule == rule]
        lines = ", ".join(str(lint_.line) for lint_ in group[:10])
        first = group[0]
        summary = f"{path}:{first.line}: {first.summary}" + (
            f" (also lines {', '.join(str(g.line) for g in group[1:10])})" if len(group) > 1 else ""
        )
        details = tuple(f"{path}:{g.line}: {g.summary}" for g in group[:20])
        make = Finding.fail if first.status == "FAIL" else Finding.warn
        row = _row(make(summary, fix=first.fix, details=(f"lines {lines}", *details), subject=rule))
        row.location = f"{path}:{first.line}"
        rows.append(row)
    return rows


def _row(finding: Finding) -> CheckResult:
    return as_result("image.dockerfile", TITLE, DOCS, finding)
