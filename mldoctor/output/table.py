"""The console matrix: one row per check, grouped by area, a pasteable fix under every WARN/FAIL.

One layout for every destination: `lines()` lays the matrix out as styled pieces at a given width (wrapped with a
hanging indent, so fixes stay readable); `render()` joins them as plain text for files and pipes, and
`print_report()` colours them on a terminal. rich is imported only for the terminal.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from mldoctor.model import EFFECTS, CheckResult, Report, Status, areas_of
from mldoctor.output import DEFAULT, RenderOptions

if TYPE_CHECKING:
    from rich.console import Console

GLYPHS = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-", Status.ERROR: "?"}
ASCII_GLYPHS = {Status.PASS: "+", Status.WARN: "!", Status.FAIL: "x", Status.SKIP: "-", Status.ERROR: "?"}
STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIP: "dim",
    Status.ERROR: "magenta",
}

Piece = tuple[str, str]
"""(text, rich style) — the style is ignored in plain text."""


def summary_line(report: Report) -> str:
    counts = report.counts()
    parts = [
        (Status.FAIL, "failed"),
        (Status.ERROR, "could not run"),
        (Status.WARN, "warning"),
        (Status.PASS, "passed"),
        (Status.SKIP, "skipped"),
    ]
    words = []
    for status, word in parts:
        n = counts[status]
        if n or status is Status.PASS:
            words.append(f"{n} {word}{'s' if word == 'warning' and n != 1 else ''}")
    return ", ".join(words)


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """`text` wrapped to `width`, its first line after `first`, the others after `rest` (a hanging indent)."""
    out: list[str] = []
    for index, paragraph in enumerate(text.splitlines() or [""]):
        lead = first if index == 0 else rest
        out += textwrap.wrap(
            paragraph,
            width,
            initial_indent=lead,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [lead.rstrip()]
    return out


def _row(result: CheckResult, glyph: str, id_width: int, width: int, verbose: bool) -> list[list[Piece]]:
    style = STYLES[result.status]
    indent = " " * (id_width + 5)
    text = _wrap(result.summary, width, indent, indent)
    rows = [
        [
            (f"{glyph}  ", style),
            (f"{result.id:<{id_width}}  ", style),
            (text[0][len(indent) :], "dim" if result.status is Status.SKIP else ""),
        ]
    ]
    rows += [[(line, "dim" if result.status is Status.SKIP else "")] for line in text[1:]]
    if result.fix:  # never wrapped: a command cut in two cannot be pasted (it may overflow instead)
        for i, line in enumerate(result.fix.splitlines()):
            lead = [(indent, ""), ("fix: ", "bold cyan")] if i == 0 else [(indent + "     ", "")]
            rows.append([*lead, (line, "cyan")])
        for effect in result.effects:  # what the fix does beyond its lines, before anyone pastes it
            rows.append([(indent + "     ", ""), (f"note: it {EFFECTS.get(effect, effect)}", "yellow")])
    if verbose:
        for detail in result.details:
            rows += [[(line, "dim")] for line in _wrap(detail, width, indent + "• ", indent + "  ")]
    return rows


def _heading(report: Report) -> str:
    """The run's line; a re-diagnosis says whose report it judged and when that was made, not only today's time."""
    origin = report.facts.origin
    if origin is None:
        return f"mldoctor {report.tool_version} · {report.host} · {report.created}"
    return (
        f"mldoctor {report.tool_version} · offline re-diagnosis of {origin.host or report.host}, "
        f"report made {origin.created or '?'} · judged {report.created}"
    )


def _again(report: Report) -> str:
    """The command that shows this report again with -v (a re-diagnosis keeps its --facts)."""
    origin = report.facts.origin
    return f"mldoctor check --facts {origin.path} -v" if origin else "mldoctor check -v"


def _points_at_a_problem(result: CheckResult, by_id: dict[str, CheckResult]) -> bool:
    """A SKIP whose first broken link is a FAIL, WARN or ERROR (or a prerequisite this report does not show):
    part of the story of what to fix, never folded away."""
    if result.blocked_by is None:
        return False
    root = by_id.get(result.blocked_by)
    return root is None or root.status in (Status.FAIL, Status.WARN, Status.ERROR)


def fold(results: list[CheckResult], by_id: dict[str, CheckResult]) -> tuple[list[CheckResult], list[CheckResult]]:
    """(rows to show, skipped rows folded into one line): an area's SKIPs that are merely not applicable here
    (no GPU on this host), when there are at least two of them."""
    folded = [r for r in results if r.status is Status.SKIP and not _points_at_a_problem(r, by_id)]
    if len(folded) < 2:
        return results, []
    return [r for r in results if r not in folded], folded


def _folded_line(folded: list[CheckResult], report: Report, glyph: str, id_width: int, width: int) -> list[list[Piece]]:
    reasons: dict[str, int] = {}
    for result in folded:
        reason = result.summary.removeprefix("skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if len(reasons) == 1:
        why = next(iter(reasons))
    else:
        why = "; ".join(f"{reason} ({count})" for reason, count in reasons.items())
    indent = " " * (id_width + 5)
    text = _wrap(f"{len(folded)} skipped: {why} ({_again(report)} lists them)", width, "   ", indent)
    style = STYLES[Status.SKIP]
    return [[(f"{glyph}  ", style), (text[0][3:], style)], *[[(line, style)] for line in text[1:]]]


def lines(report: Report, verbose: bool = False, width: int = 100, ascii_only: bool = False) -> list[list[Piece]]:
    glyphs = ASCII_GLYPHS if ascii_only else GLYPHS
    id_width = max((len(r.id) for r in report.results), default=10)
    by_id = {r.id: r for r in report.results}
    out: list[list[Piece]] = [[(_heading(report), "bold")]]
    for area, title in areas_of(report.results):
        results = [r for r in report.results if r.area == area]
        if results:
            shown, folded = (results, []) if verbose else fold(results, by_id)
            out += [[], [(title, "bold underline")]]
            for result in shown:
                out += _row(result, glyphs[result.status], id_width, width, verbose)
            if folded:
                out += _folded_line(folded, report, glyphs[Status.SKIP], id_width, width)
    if verbose:
        out += context_lines(report, width)
    out += [[], [(summary_line(report), "bold")]]
    if not verbose and any(r.details for r in report.results if r.status is not Status.PASS):
        out.append([(f"details: {_again(report)}", "dim")])
    return out


def _labelled(title: str, rows: list[tuple[str, str]], width: int) -> list[list[Piece]]:
    """A titled block of `label  text` lines, the text wrapped under itself."""
    if not rows:
        return []
    label_width = max(len(label) for label, _ in rows) + 2
    out: list[list[Piece]] = [[], [(title, "bold underline")]]
    for label, text in rows:
        wrapped = _wrap(text, width, " " * (label_width + 3), " " * (label_width + 3))
        out.append([(f"   {label:<{label_width}}", "bold"), (wrapped[0][label_width + 3 :], "")])
        out += [[(line, "")] for line in wrapped[1:]]
    return out


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _docker_facts(report: Report) -> list[tuple[str, str]]:
    docker = report.facts.docker
    if docker is None:
        return [("docker", report.facts.errors.get("docker", "not gathered"))]
    endpoint = docker.endpoint
    where = f"{endpoint.url} (from {endpoint.source}{', context ' + endpoint.context if endpoint.context else ''}"
    rows = [
        ("endpoint", where + (", TLS)" if endpoint.tls else ")") + (f": {endpoint.error}" if endpoint.error else ""))
    ]
    if docker.cli.path:
        rows.append(("docker CLI", f"{docker.cli.version or '?'} at {docker.cli.path}"))
    if not docker.connection.ok:
        rows.append(("daemon", f"not reached ({docker.connection.error_kind}): {docker.connection.error}"))
    daemon = docker.daemon
    if daemon is not None:
        runtimes = ", ".join(daemon.runtimes) or "none"
        rows.append(
            (
                "daemon",
                f"{daemon.operating_system or 'Docker'}, Docker {daemon.server_version} (API {daemon.api_version}), "
                f"{docker.flavour}; {daemon.storage_driver} storage in {daemon.docker_root_dir}; cgroup "
                f"{daemon.cgroup_driver} v{daemon.cgroup_version}; runtimes {runtimes} (default "
                f"{daemon.default_runtime or '?'})",
            )
        )
    process = docker.process
    if process is not None:
        if process.pid:
            import shlex

            rows.append(("daemon process", f"pid {process.pid}: {shlex.join(process.command_line) or '?'}"))
        elif process.error:
            rows.append(("daemon process", f"unknown: {process.error}"))
    config = docker.daemon_json()
    found = docker.config.found if docker.config is not None else None
    state = {True: "", False: " (absent)", None: ""}[found]
    if docker.config is not None and docker.config.error:
        state = f" (unreadable: {docker.config.error})"
    rows.append(("daemon config", config + state))
    return rows


def _nvidia_facts(report: Report) -> list[tuple[str, str]]:
    nvidia = report.facts.nvidia
    if nvidia is None:
        return [("NVIDIA", report.facts.errors["nvidia"])] if "nvidia" in report.facts.errors else []
    gpus = nvidia.pci_gpus
    pci = f"{len(gpus)} NVIDIA GPU(s) on the PCI bus" if nvidia.pci_error is None else f"unknown: {nvidia.pci_error}"
    rows = [("GPUs", pci + (f", {len(nvidia.nvswitches)} NVSwitch(es)" if nvidia.nvswitches else ""))]
    kernel = nvidia.kernel
    module = f"kernel module {kernel.module_version}" if kernel.module_version else "kernel module not loaded"
    nvml = nvidia.nvml
    if nvml.ok:
        driver = f"{nvml.driver_version} (CUDA {nvml.cuda_driver_version or '?'}, NVML {nvml.nvml_version or '?'})"
        names = sorted({g.name or "?" for g in nvml.gpus})
        rows.append(("driver", f"{driver}; {module}; {nvml.library or 'libnvidia-ml'}"))
        rows.append(("NVML GPUs", f"{len(nvml.gpus)}: {', '.join(names)}" if names else "none"))
    elif gpus or kernel.module_version:
        rows.append(
            ("driver", f"{module}; NVML: {nvml.error_kind or 'not read'}{': ' + nvml.error if nvml.error else ''}")
        )
    toolkit = nvidia.toolkit
    if toolkit.installed or gpus:
        binaries = ", ".join(f"{b.name} {b.version or ''}".rstrip() for b in toolkit.binaries if b.path) or "none"
        cdi = ", ".join(spec.path for spec in toolkit.cdi_specs) or "no CDI spec"
        rows.append(("container toolkit", f"{binaries}; {cdi}"))
    return rows


def _probe_facts(report: Report) -> list[tuple[str, str]]:
    probe = report.facts.probe
    if probe is None:
        return []
    run = probe.run
    where = f"in {run.image}" if run.mode == "container" else "on this host"
    rows = [
        (
            "probe",
            f"{where}, GPUs {run.gpus}{' (' + run.gpus_reason + ')' if run.gpus_reason else ''}; stopped at "
            f"{run.stage}{', exit code ' + str(run.exit_code) if run.exit_code is not None else ''}"
            f"{', timed out' if run.timed_out else ''}; deadline {run.deadline_s:g} s"
            + (f"; memory limit {run.memory_limit}" if run.memory_limit else ""),
        )
    ]
    document = probe.document
    if document is not None and document.torch is not None:
        torch = document.torch
        rows.append(
            ("torch", f"{torch.version or 'not found'} (CUDA {torch.cuda or 'none'}, NCCL {torch.nccl or '-'})")
        )
    return rows


SECTION_TITLES = {"host": "host", "docker": "Docker", "nvidia": "NVIDIA", "probe": "probe", "image": "image"}


def _timings(report: Report) -> list[tuple[str, str]]:
    """How long each gathered section took (recorded with the facts, so a re-diagnosed report shows the user's
    run), with what is known inside a section: reaching the daemon, NVML, the probe's torch import and benchmarks."""
    facts = report.facts
    inside: dict[str, list[str]] = {}
    if facts.docker is not None:
        connection = facts.docker.connection
        took = _seconds(connection.elapsed_s)
        inside["docker"] = [f"{took} to reach the daemon" if connection.ok else f"gave up after {took}: "
                            f"{connection.error_kind or 'no answer'}"]  # fmt: skip
    if facts.nvidia is not None and (facts.nvidia.nvml.ok or facts.nvidia.nvml.elapsed_s):
        inside["nvidia"] = [f"{_seconds(facts.nvidia.nvml.elapsed_s)} in NVML"]
    if facts.probe is not None:
        parts = [f"{_seconds(facts.probe.run.elapsed_s)} running the probe"]
        document = facts.probe.document
        if document is not None:
            if document.torch is not None and document.torch.import_s is not None:
                parts.append(f"torch imported in {_seconds(document.torch.import_s)}")
            if document.bench is not None:
                parts.append(f"benchmarks {_seconds(document.bench.elapsed_s)}")
        inside["probe"] = parts
    rows = []
    for section in [*facts.timings, *(s for s in inside if s not in facts.timings)]:
        parts = [f"{_seconds(facts.timings[section])} in all"] if section in facts.timings else []
        rows.append((SECTION_TITLES.get(section, section), ", ".join(parts + inside.get(section, []))))
    if report.elapsed_s is not None:
        rows.append(("the run", f"{_seconds(report.elapsed_s)}, gathering and judging"))
    return rows


def _policy(report: Report) -> list[tuple[str, str]]:
    """Every threshold the rules judged by, under its policy-file key (mldoctor.toml); unset ones by name."""
    import dataclasses

    from mldoctor.policy import Band

    if report.policy is None:
        return []

    def shown(value: object) -> str:
        if isinstance(value, Band):
            return f"pass >= {value.passing:g}, warn >= {value.warning:g}"
        if isinstance(value, tuple):
            return ", ".join(f"{v[0]}: {shown(v[1])}" if isinstance(v, tuple) else str(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    values = [(f.name, getattr(report.policy, f.name)) for f in dataclasses.fields(report.policy)]
    rows = [(name, shown(value)) for name, value in values if value not in ("", None, ())]
    unset = [name for name, value in values if value in ("", None, ())]
    return [*rows, ("unset", ", ".join(unset))] if unset else rows


def context_lines(report: Report, width: int) -> list[list[Piece]]:
    """What -v adds after the checks: the facts that matter (endpoint, daemon, driver, probe), how long each
    gathered section took, and the thresholds used."""
    facts = _docker_facts(report) + _nvidia_facts(report) + _probe_facts(report)
    return (
        _labelled("Facts", facts, width)
        + _labelled("Timings", _timings(report), width)
        + _labelled("Policy", _policy(report), width)
    )


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    """Plain text, for files and pipes."""
    pieces = lines(report, options.verbose, options.width)
    return "".join("".join(text for text, _ in line).rstrip() + "\n" for line in pieces)


def print_report(report: Report, console: Console, verbose: bool = False) -> None:
    """Coloured on a terminal (rich honours NO_COLOR)."""
    from rich.text import Text

    ascii_only = not (console.encoding or "").lower().startswith("utf")
    for line in lines(report, verbose, console.width, ascii_only):
        console.print(Text.assemble(*line), highlight=False, crop=False, soft_wrap=True)
