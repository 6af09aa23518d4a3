"""The matrix as GitHub-flavoured Markdown: what a user pastes into an issue, and the Actions step summary.

It ends with an environment block in the manner of PyTorch's `collect_env` (torch, CUDA, cuDNN, NCCL, the GPUs, the
driver, Docker, the OS, Python), read from the facts already gathered, `n/a` where they say nothing.
Report text is untrusted (a daemon's error message, an image's banner, a GPU name): it is escaped for Markdown and
inline HTML, code spans and fences are made longer than any backtick run inside them, and terminal escapes and
control characters never reach the page.
"""

from __future__ import annotations

import html
import re
from collections import Counter

from mldoctor.model import EFFECTS, Report, Status, areas_of
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.output.table import summary_line
from mldoctor.text import printable

ICONS = {Status.PASS: "✅", Status.WARN: "⚠️", Status.FAIL: "❌", Status.SKIP: "⏭️", Status.ERROR: "❓"}
NA = "n/a"
SPECIAL = re.compile(r"([\\`*_\[\]~|])")
"""Markdown punctuation that could start emphasis, a link, code, strikethrough or a table cell, escaped with `\\`."""


def _cell(text: str) -> str:
    """Text for a table cell: inline markup and HTML shown as typed, no pipes or newlines to break the row."""
    escaped = SPECIAL.sub(r"\\\1", html.escape(printable(text), quote=False))
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def _code(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "<br>".join(f"<code>{_cell(line).replace('<br>', ' ')}</code>" for line in lines)


def _longest_run(text: str, char: str = "`") -> int:
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


def code_span(text: str) -> str:
    """`text` as inline code, whatever backticks it holds (CommonMark: a longer delimiter run, padded by spaces)."""
    text = " ".join(printable(text).split()) or " "
    fence = "`" * (_longest_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    lines = [
        f"## mldoctor {_cell(report.tool_version)} on {code_span(report.host)}",
        "",
        f"{summary_line(report)} · {_cell(report.created)}",
    ]
    for area, title in areas_of(report.results):
        results = [r for r in report.results if r.area == area]
        if not results:
            continue
        lines += ["", f"### {title}", "", "| | check | finding | fix |", "|---|---|---|---|"]
        for r in results:
            fix = _code(r.fix) if r.fix else ""
            fix += "".join(f"<br>*it {_cell(EFFECTS.get(e, e))}*" for e in r.effects)
            lines.append(f"| {ICONS[r.status]} | {code_span(r.id)} | {_cell(r.summary)} | {fix} |")
    lines += ["", "### Environment", "", *environment_block(report)]
    return "\n".join(lines) + "\n"


def environment_block(report: Report) -> list[str]:
    """The environment as a fenced block of `name: value` lines, to paste into an issue as collect_env's is."""
    pairs = environment(report)
    width = max(len(name) for name, _ in pairs)
    body = [f"{name + ':':<{width + 1}} {' '.join(printable(value).split()) or NA}" for name, value in pairs]
    fence = "`" * max(3, _longest_run("\n".join(body)) + 1)
    return [f"{fence}text", *body, fence]


def environment(report: Report) -> list[tuple[str, str]]:
    """collect_env's facts, from what this report gathered: the probe's view of the image (torch and its CUDA
    libraries, Python), NVML's of the host (GPUs, driver), Docker's and the host's; `n/a` where none was read."""
    facts = report.facts
    probe = facts.probe
    document = probe.document if probe else None
    torch = document.torch if document else None
    cuda = document.cuda if document else None
    nvidia = facts.nvidia
    nvml = nvidia.nvml if nvidia else None
    docker = facts.docker
    host = facts.host

    pytorch = NA
    if torch is not None:
        pytorch = torch.version or (
            "not installed" if not torch.found else f"import failed: {(torch.error or '?')[:200]}"
        )
    built = NA
    if torch is not None and torch.version:
        built = torch.cuda or "none (CPU-only build)"
    available = NA
    if cuda is not None:
        available = f"yes, {cuda.device_count} device(s)" if cuda.available else "no"
    names = [gpu.name or "unnamed GPU" for gpu in nvml.gpus] if nvml else []
    if not names and document:
        names = [device.name for device in document.devices]
    driver = (nvml.driver_version if nvml else None) or (nvidia.kernel.module_version if nvidia else None)
    cuda_driver = nvml.cuda_driver_version if nvml else None
    if not cuda_driver and cuda is not None and cuda.driver:
        cuda_driver = f"{cuda.driver // 1000}.{cuda.driver % 1000 // 10}"
    docker_version = NA
    if docker is not None and docker.daemon is not None and docker.daemon.server_version:
        docker_version = f"{docker.daemon.server_version} ({docker.flavour})"
    elif docker is not None and docker.cli.version:
        docker_version = f"{docker.cli.version} (client; the daemon did not answer)"
    where = NA
    if probe is not None:
        where = "the host (--no-container)" if probe.run.mode == "host" else probe.run.image or NA
    os_name = NA
    if host is not None:
        os_name = (
            f"{host.os.pretty_name if host.os and host.os.pretty_name else NA}, kernel {host.kernel} ({host.arch})"
        )
    return [
        ("mldoctor", report.tool_version),
        ("Probed image", where),
        ("PyTorch", pytorch),
        ("CUDA used to build PyTorch", built),
        ("cuDNN", _cudnn(torch.cudnn) if torch and torch.cudnn else NA),
        ("NCCL", torch.nccl if torch and torch.nccl else NA),
        ("CUDA available", available),
        ("GPU models", ", ".join(f"{n} x {name}" for name, n in Counter(names).items()) or NA),
        ("NVIDIA driver", driver or NA),
        ("CUDA driver version", cuda_driver or NA),
        ("Container toolkit", (nvidia.toolkit.version if nvidia else None) or NA),
        ("Docker", docker_version),
        ("OS", os_name),
        ("Python (image)", document.python.version if document and document.python.version else NA),
        ("Python (mldoctor)", host.python if host else NA),
    ]


def _cudnn(version: int) -> str:
    """torch.backends.cudnn.version() as a version: 90100 is 9.1.0 (cuDNN 9 counts major x 10000), 8902 is 8.9.2."""
    major, rest = divmod(version, 10000 if version >= 90000 else 1000)
    return f"{major}.{rest // 100}.{rest % 100}"
