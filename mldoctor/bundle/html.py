"""The bundle's report.html: one self-contained page a support engineer reads first.

It takes a Report and nothing else: no gathering, no judging
beyond the graded benchmark rows the bench checks themselves use. The page works offline and leaks nothing when
opened: inline CSS, inline SVG charts, no script, no font, image or link outside the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape

from mldoctor.data.nvml_errors import plain_error
from mldoctor.facts.common import DiskUsage
from mldoctor.facts.host import LimitsFacts
from mldoctor.facts.nvidia import GpuFacts, NvidiaFacts, NvmlFacts
from mldoctor.facts.probe_document import ProbeTorch
from mldoctor.model import EFFECTS, BenchRow, CheckResult, Report, Status, areas_of
from mldoctor.output.table import summary_line
from mldoctor.text import plural

GIB = 1 << 30
STATUS_ORDER = sorted(Status, key=lambda status: -status.severity)
"""The chips in the header, worst first."""
Cell = str | None
GPU_HEADERS = ("#", "model", "memory", "CC", "temp", "power", "SM clock", "PCIe now / max", "ECC unc.",
               "row remaps", "persist.", "MIG", "bus id")  # fmt: skip

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; --accent:#0969da;
  --pass:#1a7f37; --pass-bg:#dafbe1; --warn:#9a6700; --warn-bg:#fff8c5; --fail:#cf222e; --fail-bg:#ffebe9;
  --skip:#6e7781; --skip-bg:#eaeef2; --error:#8250df; --error-bg:#fbefff;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans",
  Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px; }
header { border-bottom: 1px solid var(--line); padding-bottom: 16px; margin-bottom: 20px; }
.brand { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: var(--muted); font-weight: 600; }
h1 { font-size: 26px; margin: 2px 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 18px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
p, li, td, th, .verdict, .glance div { overflow-wrap: anywhere; }
.meta { color: var(--muted); margin: 0; }
.chips { margin-top: 12px; display: flex; gap: 8px; flex-wrap: wrap; }
.pill { display: inline-block; border-radius: 999px; padding: 1px 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; }
.PASS { color: var(--pass); background: var(--pass-bg); } .WARN { color: var(--warn); background: var(--warn-bg); }
.FAIL { color: var(--fail); background: var(--fail-bg); } .SKIP { color: var(--skip); background: var(--skip-bg); }
.ERROR { color: var(--error); background: var(--error-bg); }
.verdict { border: 1px solid var(--line); border-left-width: 6px; border-radius: 6px; padding: 12px 16px; }
.verdict.ok { border-left-color: var(--pass); } .verdict.bad { border-left-color: var(--fail); }
.verdict strong { font-size: 15px; }
nav { margin: 14px 0 0; font-size: 13px; } nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wide { overflow-x: auto; max-width: 100%; }
.gpus td { white-space: nowrap; overflow-wrap: normal; } .gpus th { overflow-wrap: normal; }
.gpus td:nth-child(2) { white-space: normal; min-width: 8em; }
.gpus td:last-child { font-family: var(--mono); font-size: 12px; }
.glance { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(160px, 100%), 1fr)); gap: 10px;
  margin: 16px 0 0; }
.glance div { background: var(--soft); border-radius: 6px; padding: 8px 12px; }
.glance b { display: block; font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.charts { grid-template-columns: repeat(auto-fit, minmax(min(420px, 100%), 1fr)); } .chart h3 { margin-top: 10px; }
.checks { table-layout: fixed; } .checks td.status { width: 72px; } .checks td.id { width: 210px; }
code, pre { font-family: var(--mono); font-size: 12.5px; }
.id { font-family: var(--mono); font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 6px 0 0;
  white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%; }
pre.fix { border-left: 3px solid var(--accent); white-space: pre; overflow-wrap: normal; overflow-x: auto; }
p.effect { margin: .2em 0 0; font-size: .9em; color: var(--warn); }
details { margin-top: 4px; color: var(--muted); } summary { cursor: default; font-size: 12px; }
details ul { margin: 4px 0 0; padding-left: 18px; }
tr[data-status="SKIP"] td { color: var(--muted); }
.filter { display: inline-flex; align-items: center; gap: 6px; margin: 0 0 4px; font-size: 13px; color: var(--muted);
  cursor: pointer; }
#problems-only { margin: 0 4px 0 0; vertical-align: middle; cursor: pointer; }
.only-filtered { display: none; }
#problems-only:checked ~ .area tr[data-status="PASS"], #problems-only:checked ~ .area tr[data-status="SKIP"],
#problems-only:checked ~ .area.clean { display: none; }
#problems-only:checked ~ .only-filtered { display: block; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(460px, 100%), 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 4px 12px 10px; min-width: 0; }
.card table td:first-child { color: var(--muted); width: 38%; }
.card table tr:last-child td { border-bottom: none; }
.note { color: var(--muted); font-size: 13px; }
svg { display: block; width: 100%; max-width: 620px; height: auto; margin: 6px 0 4px; }
footer { margin-top: 40px; padding-top: 12px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
@media (max-width: 720px) {
  main { padding: 16px 14px 32px; }
  .checks, .checks tbody, .checks tr { display: block; }
  .checks tr { border-bottom: 1px solid var(--line); padding: 6px 0; }
  .checks td { display: block; border: none; padding: 2px 0; }
  .checks td.status, .checks td.id { display: inline-block; width: auto; margin-right: 8px; }
}
@media print { main { padding: 0; } .grid { display: block; } .card { margin-bottom: 12px; break-inside: avoid; }
  #problems-only, .filter { display: none; } }
table.peers td.peer { text-align:center; min-width:4em; }
table.peers td.yes { color:var(--pass); background:var(--pass-bg); }
table.peers td.no { color:var(--fail); background:var(--fail-bg); }
table.peers td.self { color:var(--muted); }
div.scroll { overflow-x:auto; }
"""

BAR_COLOURS = {
    Status.PASS: "#2da44e",
    Status.WARN: "#d4a72c",
    Status.FAIL: "#cf222e",
    Status.ERROR: "#8250df",
    Status.SKIP: "#8c959f",
}
UNGRADED_COLOUR = "#8c959f"
"""A figure that is information, not a verdict (the CPU fallback): no grade's colour."""


def render(report: Report) -> str:
    """The page, from the report alone (its benchmarks were graded when the report was built)."""
    sections = (
        ("checks", "Checks", _checks(report.results)),
        ("gpus", "GPUs", _gpus(report)),
        ("bench", "Benchmarks", _benchmarks(report.benchmarks) + _peers(report)),
        ("setup", "Docker and NVIDIA setup", _setup(report)),
        ("host", "Host", _host(report)),
    )
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    title = f"mldoctor report · {report.host} · {report.created}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{_header(report)}\n{_verdict(report.results)}\n<nav>{nav}</nav>\n"
        + "\n".join(_section(*section) for section in sections)
        + f"\n{_footer(report)}\n</main>\n</body>\n</html>\n"
    )


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}">\n<h2>{escape(title)}</h2>\n{body}\n</section>'


def _pill(status: Status, text: str | None = None) -> str:
    return f'<span class="pill {status.value}">{escape(text or status.value)}</span>'


def _header(report: Report) -> str:
    counts = report.counts()
    chips = "".join(_pill(s, f"{counts[s]} {s.value}") for s in STATUS_ORDER if counts[s])
    return (
        '<header>\n<div class="brand">mldoctor support report</div>\n'
        f"<h1>{escape(report.host)}</h1>\n"
        f'<p class="meta">{escape(report.created)} · mldoctor {escape(report.tool_version)} · report schema '
        f"{report.schema_version} · {escape(summary_line(report))}</p>\n"
        f'<div class="chips">{chips}</div>\n{_glance(report)}</header>'
    )


def _with(main: str | None, extra: str | None) -> str | None:
    """`main (extra)`, `main` alone when there is no extra, None when there is no main."""
    if not main:
        return None
    return f"{main} ({extra})" if extra else main


def _torch(torch: ProbeTorch) -> str:
    """torch's version and build: "2.4.1+cu124 (CUDA 12.4)", "2.13.0+cpu (CPU-only build)", or why not found."""
    if not torch.found:
        return f"not found: {torch.error}" if torch.error else "not found"
    build = f"CUDA {torch.cuda}" if torch.cuda else "CPU-only build"
    return f"{torch.version or 'version unknown'} ({build})"


def _no_gpu(nvidia: NvidiaFacts) -> bool:
    """The PCI bus was read and holds no NVIDIA GPU, and NVML lists none: a host without one."""
    return not nvidia.nvml.gpus and not nvidia.pci_gpus and not nvidia.pci_error


def _glance(report: Report) -> str:
    """The five facts a support engineer asks first, before reading any check."""
    facts = report.facts
    items: list[tuple[str, Cell]] = []
    if facts.host is not None:
        os_ = facts.host.os
        system = (os_.pretty_name or os_.id) if os_ else None
        kernel = f"kernel {facts.host.kernel}" if facts.host.kernel else None
        items.append(("host", ", ".join(part for part in (system or "unknown OS", kernel) if part)))
    if facts.docker is not None and facts.docker.daemon is not None:
        items.append(("docker", _with(facts.docker.daemon.server_version or "version unknown", facts.docker.flavour)))
    nvidia = facts.nvidia
    if nvidia is not None:
        gpus = nvidia.nvml.gpus
        driver = nvidia.nvml.driver_version or nvidia.kernel.module_version
        cuda = nvidia.nvml.cuda_driver_version
        if gpus:
            names = sorted({g.name or "unnamed" for g in gpus})
            items.append(("GPUs", f"{len(gpus)} × {', '.join(names)}"))
        elif nvidia.pci_gpus:
            items.append(("GPUs", f"{_count(len(nvidia.pci_gpus), 'NVIDIA GPU')} on the PCI bus"))
        elif nvidia.pci_error:
            items.append(("GPUs", "unknown: the PCI bus could not be read"))
        else:
            items.append(("GPUs", "no NVIDIA GPU on this host"))
        if driver or not _no_gpu(nvidia):  # no GPU: a driver that is "not loaded" is no news
            items.append(("driver", _with(driver, f"CUDA {cuda}" if cuda else None) or "not loaded"))
        if nvidia.toolkit.version or not _no_gpu(nvidia):
            items.append(("container toolkit", nvidia.toolkit.version or "not installed"))
    probe = facts.probe
    if probe is not None and probe.document is not None and probe.document.torch is not None:
        torch = probe.document.torch
        items.append(("torch in the probe", _torch(torch) if torch.found else "not found"))
    boxes = "".join(f"<div><b>{escape(k)}</b>{escape(v or '—')}</div>" for k, v in items)
    return f'<div class="glance">{boxes}</div>\n' if items else ""


def _verdict(results: list[CheckResult]) -> str:
    """The first broken link (results come in chain order), or a clean bill of health."""
    broken = next((r for r in results if r.status in (Status.FAIL, Status.ERROR)), None)
    if broken is None:
        warned = [r for r in results if r.status is Status.WARN]
        text = f" ({plural(len(warned), 'warning')} below)" if warned else ""
        return f'<div class="verdict ok"><strong>No check failed</strong>{escape(text)}</div>'
    return (
        f'<div class="verdict bad"><strong>First broken link: <span class="id">{escape(broken.id)}</span></strong> '
        f"{_pill(broken.status)}<br>{escape(broken.summary)}{_fix(broken)}</div>"
    )


def _fix(result: CheckResult) -> str:
    """A fix is commands: never wrapped (a wrapped command cannot be pasted), scrolled sideways when long; then what
    applying it does beyond its lines (a daemon restart, a reboot, a new login)."""
    if not result.fix:
        return ""
    effects = "".join(f'<p class="effect">It {escape(EFFECTS.get(e, e))}.</p>' for e in result.effects)
    return f'<pre class="fix"><code>{escape(result.fix)}</code></pre>{effects}'


PROBLEMS = (Status.FAIL, Status.ERROR, Status.WARN)


def _checks(results: list[CheckResult]) -> str:
    parts = []
    for area, title in areas_of(results):
        rows = [r for r in results if r.area == area]
        if not rows:
            continue
        body = "".join(_check_row(r) for r in rows)
        clean = "" if any(r.status in PROBLEMS for r in rows) else " clean"
        parts.append(
            f'<div class="area{clean}">\n<h3>{escape(title)}</h3>\n<table class="checks">\n<tbody>{body}</tbody>\n'
            "</table>\n</div>"
        )
    if not parts:
        return '<p class="note">No check ran.</p>'
    problems = sum(r.status in PROBLEMS for r in results)
    toggle = (  # pure CSS: the checkbox's :checked state hides the rows that need no action (no script)
        '<input type="checkbox" id="problems-only">'
        f'<label class="filter" for="problems-only">Problems only: hide PASS and SKIP rows '
        f"({plural(problems, 'problem')})</label>\n"
    )
    none = "" if problems else '<p class="note only-filtered">No problem: every check passed or was skipped.</p>\n'
    return toggle + none + "\n".join(parts)


def _check_row(result: CheckResult) -> str:
    details = ""
    if result.details:
        items = "".join(f"<li>{escape(line)}</li>" for line in result.details)
        count = len(result.details)
        details = f"<details><summary>{plural(count, 'detail')}</summary><ul>{items}</ul></details>"
    return (
        f'<tr data-status="{result.status.value}"><td class="status">{_pill(result.status)}</td>'
        f'<td class="id">{escape(result.id)}</td>'
        f'<td class="finding">{escape(result.summary)}{_fix(result)}{details}</td></tr>\n'
    )


def _table(
    headers: Iterable[str],
    rows: Iterable[Iterable[Cell]],
    numeric: Iterable[int] = (),
    css: str = "",
    missing: str = "—",
) -> str:
    """A table in a box that scrolls sideways when it is wider than the page (the page itself never does)."""
    numeric = set(numeric)
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{escape(c or missing)}</td>" for i, c in enumerate(row))
        + "</tr>\n"
        for row in rows
    )
    css = f' class="{css}"' if css else ""
    return f'<div class="wide"><table{css}>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table></div>'


def _card(title: str, pairs: Iterable[tuple[str, Cell]], extra: str = "") -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in pairs if v not in (None, ""))
    return f'<div class="card">\n<h3>{escape(title)}</h3>\n<table><tbody>{rows}</tbody></table>{extra}\n</div>'


def _count(n: int, noun: str, plural_form: str = "") -> str:
    return f"no {noun}" if n == 0 else plural(n, noun, plural_form)


def _gib(value: int | None) -> str | None:
    return None if value is None else f"{value / GIB:.1f} GiB"


def _yes(value: bool | None, yes: str = "yes", no: str = "no") -> str | None:
    return None if value is None else yes if value else no


def _nvml_problem(nvml: NvmlFacts) -> str | None:
    """Why NVML gave no inventory, in words; None when it did, or when it was not asked (no GPU, no driver)."""
    if nvml.ok or nvml.error_kind == "not_asked":
        return None
    if nvml.error:
        return plain_error(nvml.error)
    return (nvml.error_kind or "not available").replace("_", " ")


def _gpus(report: Report) -> str:
    nvidia, probe = report.facts.nvidia, report.facts.probe
    parts = []
    if nvidia is None:
        parts.append('<p class="note">No NVIDIA facts in this report.</p>')
    else:
        nvml = nvidia.nvml
        versions = [
            ("driver", nvml.driver_version or nvidia.kernel.module_version),
            ("CUDA (driver)", nvml.cuda_driver_version),
            ("NVML", nvml.nvml_version),
        ]
        line = " · ".join(f"{k} {v}" for k, v in versions if v)
        if nvidia.pci_error:
            pci = "the PCI bus could not be read"
        elif _no_gpu(nvidia):
            pci = "no NVIDIA GPU on this host (none on the PCI bus)"
        else:
            pci = f"{_count(len(nvidia.pci_gpus), 'NVIDIA GPU')} on the PCI bus"
        if nvidia.nvswitches:
            pci += f", with {_count(len(nvidia.nvswitches), 'NVSwitch', 'NVSwitches')}"
        parts.append(f'<p class="note">{escape(pci[:1].upper() + pci[1:])}{" · " + escape(line) if line else ""}</p>')
        problem = _nvml_problem(nvml)
        if problem:
            parts.append(f'<p class="note">NVML: {escape(problem)}</p>')
        if nvml.gpus:
            rows = [_gpu_row(g) for g in nvml.gpus]
            parts.append(
                _table(
                    GPU_HEADERS,
                    rows,
                    numeric=(0, 2, 4, 5, 6, 8),
                    css="gpus",
                    missing="n/a",
                )
            )
            unread = [
                f"GPU {g.index} {name.replace('_', ' ')}: {plain_error(error)}"
                for g in nvml.gpus
                for name, error in g.errors.items()
            ]
            unread += [
                f"GPU {g.index} NVLink fabric: {plain_error(g.fabric_error)}" for g in nvml.gpus if g.fabric_error
            ]
            notes = ["n/a: not supported on this GPU"] if any(c is None for row in rows for c in row) else []
            if unread:
                notes.append("NVML could not read: " + "; ".join(unread))
            if notes:
                parts.append(f'<p class="note">{escape("; ".join(notes))}</p>')
            uuids = "".join(
                f"<li>GPU {g.index}: <code>{escape(g.uuid or 'not reported')}</code></li>" for g in nvml.gpus
            )
            parts.append(f"<details><summary>GPU UUIDs</summary><ul>{uuids}</ul></details>")
    if probe is not None and probe.document is not None and probe.document.devices:
        parts.append("<h3>Seen by CUDA in the probe</h3>")
        parts.append(
            _table(
                ["#", "name", "CC", "SMs", "memory", "PCIe link (now / max)", "bus id"],
                [
                    [
                        str(d.index),
                        d.name,
                        d.capability,
                        str(d.sm_count),
                        _gib(d.memory_bytes),
                        _link(d.pcie.cur_gen, d.pcie.cur_width, d.pcie.max_gen, d.pcie.max_width, "gen{} x{}")
                        if d.pcie
                        else None,
                        d.pci_bus_id,
                    ]
                    for d in probe.document.devices
                ],
                numeric=(0, 3, 4),
            )
        )
    return "\n".join(parts)


def _link(gen: int | None, width: int | None, gen_max: int | None, width_max: int | None, form: str) -> str | None:
    """A PCIe link now and at most ("gen5 x16 / gen5 x16"), from the parts that are known."""

    def one(g: int | None, w: int | None) -> str:
        return form.format(g if g is not None else "?", w if w is not None else "?")

    if gen is None and width is None:
        return None
    return f"{one(gen, width)} / {one(gen_max, width_max)}" if gen_max or width_max else one(gen, width)


def _gpu_row(gpu: GpuFacts) -> list[Cell]:
    def pair(now: float | None, top: float | None, unit: str) -> str | None:
        if now is None:
            return None
        return f"{now:g} / {top:g} {unit}" if top is not None else f"{now:g} {unit}"

    remaps = None
    if gpu.remapped_rows_uncorrectable is not None:
        remaps = f"{gpu.remapped_rows_correctable or 0} / {gpu.remapped_rows_uncorrectable}"
        remaps += " pending" if gpu.remap_pending else ""
    return [
        str(gpu.index),
        gpu.name,
        None if gpu.memory_total_bytes is None else f"{gpu.memory_total_bytes / GIB:.0f} GiB",
        gpu.compute_capability,
        None if gpu.temperature_c is None else f"{gpu.temperature_c} °C",
        pair(None if gpu.power_draw_w is None else round(gpu.power_draw_w), gpu.power_limit_w, "W"),
        pair(gpu.sm_clock_mhz, gpu.sm_clock_max_mhz, "MHz"),
        _link(gpu.pcie_gen, gpu.pcie_width, gpu.pcie_gen_max, gpu.pcie_width_max, "{}×{}"),
        None if gpu.ecc_uncorrected_volatile is None else str(gpu.ecc_uncorrected_volatile),
        remaps,
        _yes(gpu.persistence_mode, "on", "off"),
        _yes(gpu.mig_mode, "on", "off"),
        gpu.pci_bus_id,
    ]


METRIC_TITLES = {
    "fp32": "FP32 matmul",
    "tf32": "TF32 matmul",
    "bf16": "BF16 matmul",
    "fp16": "FP16 matmul",
    "fp8": "FP8 matmul",
    "d2d": "GPU memory (device to device)",
    "h2d": "Host to device (pinned)",
    "d2h": "Device to host (pinned)",
}


def _graded(row: BenchRow) -> bool:
    """A GPU measured against a reference; the CPU fallback's figure is information only."""
    return row.gpu != "cpu"


def _benchmarks(rows: list[BenchRow]) -> str:
    if not rows:
        return '<p class="note">No benchmark ran (no probe, or <code>--duration 0</code>).</p>'
    groups: dict[tuple[str, str, bool], list[BenchRow]] = {}
    for row in rows:
        metric = "allreduce" if row.metric.startswith("allreduce") else row.metric  # one chart: busbw by size
        groups.setdefault((metric, row.unit, _graded(row)), []).append(row)
    charts = []
    for (metric, unit, graded), group in groups.items():
        title = f"{METRIC_TITLES.get(metric, metric)} · {unit}" + ("" if graded else " · CPU, not graded")
        if metric == "allreduce":
            title = f"All-reduce bus bandwidth by size · {unit} (busbw = algbw × 2(n−1)/n)"
        charts.append(f'<div class="card chart"><h3>{escape(title)}</h3>{_chart(group)}</div>')
    notes = []
    if any(_graded(r) for r in rows):
        notes.append(
            "Bars: measured, coloured by grade; black tick: what a healthy card of this model reaches "
            "(the grading reference); on the right: measured / expected (ratio)."
        )
    if not all(_graded(r) for r in rows):
        notes.append(
            "No GPU was benchmarked: the CPU figure shows that the benchmark pipeline runs, and is information, "
            "not graded (a shared CPU's figure moves with its load). It has no reference to compare with."
        )
    legend = "".join(f'<p class="note">{escape(note)}</p>' for note in notes)
    table = _table(
        ["GPU", "device", "metric", "measured", "expected", "ratio", "grade", "note"],
        [
            [
                r.gpu,
                r.device,
                r.metric,
                _number(r.measured, r.unit),
                _number(r.expected, r.unit),
                f"{r.ratio:.2f}×" if r.ratio is not None else None,
                r.status.value,
                r.note,
            ]
            for r in rows
            if r.status is not Status.PASS
        ],
        numeric=(3, 4, 5),
    )
    problems = f"<h3>Below expectation</h3>\n{table}" if any(r.status is not Status.PASS for r in rows) else ""
    return f'{legend}\n<div class="grid charts">\n' + "\n".join(charts) + f"\n</div>\n{problems}"


def _peers(report: Report) -> str:
    """The peer-access matrix the probe saw (torch.cuda.can_device_access_peer), with each pair's copy bandwidth:
    a hole in it is a pair that cannot talk directly (ACS, IOMMU, a PCIe topology without P2P)."""
    probe = report.facts.probe
    doc = probe.document if probe is not None else None
    peers = doc.bench.p2p if doc is not None and doc.bench is not None else None
    if peers is None or not peers.access:
        return ""
    speed = {(c.src, c.dst): c for c in peers.copies}
    header = "".join(f"<th>GPU {j}</th>" for j in range(len(peers.access)))
    rows = []
    for i, line in enumerate(peers.access):
        cells = []
        for j, reachable in enumerate(line):
            copy = speed.get((i, j))
            figure = f"<br><small>{copy.gbps:.0f} GB/s</small>" if copy is not None and copy.ok else ""
            if reachable is None:
                cells.append('<td class="peer self">—</td>')
            else:
                mark, kind = ("✓", "yes") if reachable else ("✗", "no")
                cells.append(f'<td class="peer {kind}">{mark}{figure}</td>')
        rows.append(f"<tr><th>GPU {i}</th>{''.join(cells)}</tr>")
    note = (
        '<p class="note">✓ the pair reaches each other directly (peer-to-peer); ✗ it goes through host memory '
        "(nvidia.p2p names ACS or the IOMMU when they are the cause). Figures: one-direction copy bandwidth.</p>"
    )
    return (
        f'<h3>Peer-to-peer access</h3>{note}<div class="scroll"><table class="peers"><thead><tr><th></th>{header}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _number(value: float | None, unit: str = "") -> str | None:
    if value is None:
        return None
    text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return f"{text} {unit}" if unit else text


def _chart(rows: list[BenchRow]) -> str:
    """Horizontal bars of one metric, one per GPU: measured (coloured by grade) against the expected tick. A row
    that is not graded (the CPU) gets a neutral bar, no tick and says so."""
    width, label_w, right_w, row_h = 520, 56, 150, 22
    plot_w = width - label_w - right_w
    scale = max(v for r in rows for v in (r.measured, r.expected, 1e-9) if v is not None) * 1.05
    height = row_h * len(rows) + 4
    out = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="measured against expected, per GPU" '
        'font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">'
    ]
    for i, row in enumerate(rows):
        y = 2 + i * row_h
        graded = _graded(row)
        label = (
            row.metric.removeprefix("allreduce ").strip() or "all"
            if row.metric.startswith("allreduce")
            else "CPU"
            if row.gpu == "cpu"
            else f"GPU {row.gpu}"
        )
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#1f2328">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{plot_w}" height="14" fill="#f6f8fa"/>')
        if row.measured is not None:
            bar = max(1.0, plot_w * row.measured / scale)
            colour = BAR_COLOURS[row.status] if graded or row.status is not Status.PASS else UNGRADED_COLOUR
            out.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="14" rx="2" fill="{colour}"/>')
        if row.expected and graded:
            x = label_w + plot_w * row.expected / scale
            tick = f'x1="{x:.1f}" x2="{x:.1f}" y1="{y + 1}" y2="{y + 21}"'
            out.append(f'<line {tick} stroke="#1f2328" stroke-width="2"/>')
        detail = _number(row.measured) or "n/a"
        if row.expected and graded:
            detail += f" / {_number(row.expected)}"
        if row.ratio is not None and graded:
            detail += f" ({row.ratio:.2f}×)"
        if not graded:
            detail += " · not graded"
        fill = "#cf222e" if row.status in (Status.FAIL, Status.ERROR) else "#59636e"
        out.append(f'<text x="{label_w + plot_w + 8}" y="{y + 15}" fill="{fill}">{escape(detail)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _setup(report: Report) -> str:
    cards = []
    docker = report.facts.docker
    if docker is not None:
        daemon = docker.daemon
        connection = "ok" if docker.connection.ok else _with(docker.connection.error_kind, docker.connection.error)
        cli = _with(docker.cli.version or "version unknown", docker.cli.path) if docker.cli.path else "not installed"
        pairs: list[tuple[str, Cell]] = [
            ("endpoint", _with(docker.endpoint.url, docker.endpoint.source)),
            ("connection", connection or "failed"),
            ("flavour", docker.flavour),
            ("CLI", cli),
        ]
        if daemon is not None:
            cgroup_version = f"v{daemon.cgroup_version}" if daemon.cgroup_version else ""
            pairs += [
                ("server", _with(daemon.server_version, f"API {daemon.api_version}" if daemon.api_version else None)),
                ("operating system", daemon.operating_system),
                ("kernel", daemon.kernel),
                ("storage driver", daemon.storage_driver),
                ("cgroup", ", ".join(p for p in (daemon.cgroup_driver, cgroup_version) if p)),
                ("logging driver", daemon.logging_driver),
                ("runtimes", ", ".join(daemon.runtimes)),
                ("default runtime", daemon.default_runtime),
                ("CDI spec dirs", ", ".join(daemon.cdi_spec_dirs)),
                ("root dir", daemon.docker_root_dir),
                ("warnings", "; ".join(daemon.warnings)),
            ]
        if docker.root_dir is not None and docker.root_dir.total_bytes:
            pairs.append(("root dir free", f"{_gib(docker.root_dir.free_bytes)} ({docker.root_dir.free_pct:.0f}%)"))
        config = docker.config
        extra = ""
        if config is not None:
            pairs.append(("daemon.json", _with(config.path or "not found", "found" if config.found else "absent")))
            if config.settings:
                extra = f"<pre>{escape(json.dumps(config.settings, indent=2))}</pre>"
        cards.append(_card("Docker", pairs, extra))
    nvidia = report.facts.nvidia
    if nvidia is not None:
        toolkit, kernel = nvidia.toolkit, nvidia.kernel
        tools: list[tuple[str, Cell]] = [
            (b.name, _with(b.version or "version unknown", b.path) if b.path else "not installed")
            for b in toolkit.binaries
        ]
        tools += [
            ("config.toml", _with(toolkit.config_path, "found" if toolkit.config_found else "absent")),
            ("no-cgroups", _yes(toolkit.no_cgroups, "true", "false")),
        ]
        tools += [
            (f"CDI spec {s.path}", s.error or f"driver {s.driver_version or 'version unknown'}")
            for s in toolkit.cdi_specs
        ]
        fabric = nvidia.fabric_manager
        if fabric.path:
            state = "running" if fabric.running else "stopped"
            tools.append(("fabric manager", f"{fabric.version or 'version unknown'}, {state}"))
        cards.append(_card("NVIDIA Container Toolkit", tools))
        nodes = kernel.nodes
        module = kernel.version_text or ("not loaded (no NVIDIA GPU on this host)" if _no_gpu(nvidia) else "not loaded")
        cards.append(
            _card(
                "NVIDIA kernel driver",
                [
                    ("module", module),
                    ("loaded modules", ", ".join(kernel.modules) or "none"),
                    ("running kernel", kernel.running_kernel),
                    ("built for kernels", ", ".join(kernel.module_kernels)),
                    ("secure boot", _yes(kernel.secure_boot, "enabled", "disabled")),
                    (
                        "device nodes",
                        f"{len(nodes)}, {sum(not n.accessible for n in nodes)} not accessible" if nodes else "none",
                    ),
                    ("NVML library", nvidia.nvml.library),
                ],
            )
        )
    probe = report.facts.probe
    if probe is not None:
        run, doc = probe.run, probe.document
        where = f"image {run.image or 'unknown'}" if run.mode == "container" else "this host (--no-container)"
        pairs = [
            ("where", where),
            ("GPUs", _with(run.gpus, run.gpus_reason)),
            ("outcome", f"{run.stage}: {run.error}" if run.error else run.stage),
            ("exit code", None if run.exit_code is None else str(run.exit_code)),
            ("elapsed", f"{run.elapsed_s:.1f} s of {run.deadline_s:g} s allowed"),
        ]
        if doc is not None:
            torch = doc.torch
            pairs.append(("python", _with(doc.python.version or "version unknown", doc.python.executable)))
            if torch is not None:
                pairs.append(("torch", _torch(torch)))
            if doc.cuda is not None:
                pairs.append(("CUDA", "available" if doc.cuda.available else doc.cuda.error or "not available"))
                pairs.append(("arch list", " ".join(doc.cuda.arch_list)))
        cards.append(_card("Probe", pairs))
    if not cards:
        return '<p class="note">No Docker, NVIDIA or probe facts in this report.</p>'
    return '<div class="grid">\n' + "\n".join(cards) + "\n</div>"


def filesystems(disks: Iterable[DiskUsage]) -> list[str]:
    """One line per filesystem, naming the paths it holds: /, the working directory and /tmp are often one device
    ("/, /home/alice and /tmp: 80.0 GiB free of 250 GiB (32%)"). A path that could not be read is a line of its own.
    """
    groups: dict[object, list[DiskUsage]] = {}  # in the order the paths were listed
    for disk in disks:
        groups.setdefault(disk.path if disk.error or not disk.device else disk.device, []).append(disk)
    lines = []
    for same in groups.values():
        first = same[0]
        if first.error or not first.device:
            lines.append(f"{first.path}: {first.error or 'unknown filesystem'}")
            continue
        paths = [d.path for d in same]
        named = paths[0] if len(paths) == 1 else f"{', '.join(paths[:-1])} and {paths[-1]}"
        space = "size unknown"
        if first.total_bytes:
            space = f"{_gib(first.free_bytes)} free of {_gib(first.total_bytes)} ({first.free_pct:.0f}%)"
        lines.append(f"{named}: {space}")
    return lines


def _host(report: Report) -> str:
    host = report.facts.host
    if host is None:
        return '<p class="note">No host facts in this report.</p>'
    os_, cpu, memory, shm, user = host.os, host.cpu, host.memory, host.shm, host.user  # each may be unreadable
    unread = "not readable"
    disks = filesystems(host.disks) if host.disks is not None else [unread]
    cpu_text = unread
    if cpu is not None:
        cpu_text = f"{cpu.usable:g} usable of {cpu.logical}, load {cpu.load_1m:.1f}"
        cpu_text = f"{cpu.model} — {cpu_text}" if cpu.model else cpu_text
    groups = f", groups {', '.join(user.active_groups)}" if user and user.active_groups else ""
    pairs: list[tuple[str, Cell]] = [
        ("OS", ((os_.pretty_name or os_.id) if os_ else None) or unread),
        ("kernel", _with(host.kernel, host.arch)),
        ("CPU", cpu_text),
        ("memory", f"{_gib(memory.available_bytes)} available of {_gib(memory.total_bytes)}" if memory else unread),
        ("cgroup memory limit", _gib(memory.cgroup_limit_bytes) if memory else None),
        ("/dev/shm", f"{_gib(shm.free_bytes)} free of {_gib(shm.total_bytes)}" if shm else unread),
        *((("disks" if i == 0 else ""), line) for i, line in enumerate(disks)),
        ("user", f"{user.name} (uid {user.uid}){groups}" if user else unread),
        ("limits", _limits(host.limits) if host.limits is not None else unread),
        ("python", host.python),
    ]
    return '<div class="grid">\n' + _card("This machine", pairs) + "\n</div>"


def _limits(limits: LimitsFacts) -> str:
    """Open files and locked memory, soft (hard); None is unlimited."""

    def value(n: int | None, size: bool) -> str:
        if n is None:
            return "unlimited"
        return f"{n / (1 << 20):g} MiB" if size else str(n)

    return (
        f"open files {value(limits.nofile_soft, False)} (hard {value(limits.nofile_hard, False)}), "
        f"locked memory {value(limits.memlock_soft, True)} (hard {value(limits.memlock_hard, True)})"
    )


def _footer(report: Report) -> str:
    return (
        f"<footer>Generated by mldoctor {escape(report.tool_version)}. The facts behind every line are in "
        "report.json; <code>mldoctor check --facts &lt;this bundle&gt;</code> re-applies today's rules to them. "
        "raw/ holds the commands' own output; manifest.json lists every file with its sha256 and what was "
        "redacted.</footer>"
    )
