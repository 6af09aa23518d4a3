"""The bundle's report.html: one self-contained page a support engineer reads first.

It takes a Report and nothing else: no gathering, no judging
beyond the graded benchmark rows the bench checks themselves use. The page works offline and leaks nothing when
opened: inline CSS, inline SVG charts, no script, no font, image or link outside the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape

from mldoctor.facts.nvidia import GpuFacts
from mldoctor.model import AREAS, BenchRow, CheckResult, Report, Status
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
  --skip:#6e7781; --skip-bg:#eaeef2; --error:#8250df; --error-bg:#fbefff; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans",
  Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px; }
header { border-bottom: 1px solid var(--line); padding-bottom: 16px; margin-bottom: 20px; }
.brand { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: var(--muted); font-weight: 600; }
h1 { font-size: 26px; margin: 2px 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 18px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
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
.gpus td, .gpus th { white-space: nowrap; }
.gpus td:last-child { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.glance { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 10px; margin: 16px 0 0; }
.glance div { background: var(--soft); border-radius: 6px; padding: 8px 12px; }
.glance b { display: block; font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.charts { grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); } .chart h3 { margin-top: 10px; }
.checks { table-layout: fixed; } .checks td:first-child { width: 72px; } .checks td:nth-child(2) { width: 230px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 6px 0 0;
  white-space: pre-wrap; word-break: break-word; }
pre.fix { border-left: 3px solid var(--accent); }
details { margin-top: 4px; color: var(--muted); } summary { cursor: default; font-size: 12px; }
details ul { margin: 4px 0 0; padding-left: 18px; }
.skipped td { color: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 4px 12px 10px; }
.card table td:first-child { color: var(--muted); width: 38%; }
.card table tr:last-child td { border-bottom: none; }
.note { color: var(--muted); font-size: 13px; }
svg { display: block; width: 100%; max-width: 620px; height: auto; margin: 6px 0 4px; }
footer { margin-top: 40px; padding-top: 12px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
@media print { main { padding: 0; } .grid { display: block; } .card { margin-bottom: 12px; break-inside: avoid; } }
"""

BAR_COLOURS = {
    Status.PASS: "#2da44e",
    Status.WARN: "#d4a72c",
    Status.FAIL: "#cf222e",
    Status.ERROR: "#8250df",
    Status.SKIP: "#8c959f",
}


def render(report: Report) -> str:
    """The page, from the report alone (its benchmarks were graded when the report was built)."""
    sections = (
        ("checks", "Checks", _checks(report.results)),
        ("gpus", "GPUs", _gpus(report)),
        ("bench", "Benchmarks", _benchmarks(report.benchmarks)),
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


def _glance(report: Report) -> str:
    """The five facts a support engineer asks first, before reading any check."""
    facts = report.facts
    items: list[tuple[str, Cell]] = []
    if facts.host is not None:
        system = (facts.host.os.pretty_name or facts.host.os.id) if facts.host.os else "unknown OS"
        items.append(("host", f"{system}, kernel {facts.host.kernel}"))
    if facts.docker is not None and facts.docker.daemon is not None:
        items.append(("docker", f"{facts.docker.daemon.server_version} ({facts.docker.flavour})"))
    if facts.nvidia is not None:
        gpus = facts.nvidia.nvml.gpus
        names = sorted({g.name or "?" for g in gpus})
        on_bus = _count(len(facts.nvidia.pci_gpus), "NVIDIA GPU")
        items.append(("GPUs", f"{len(gpus)} × {', '.join(names)}" if gpus else f"{on_bus} on the PCI bus"))
        driver = facts.nvidia.nvml.driver_version or facts.nvidia.kernel.module_version
        cuda = facts.nvidia.nvml.cuda_driver_version
        items.append(("driver", f"{driver or 'not loaded'}{f' (CUDA {cuda})' if cuda else ''}"))
        items.append(("container toolkit", facts.nvidia.toolkit.version or "not installed"))
    probe = facts.probe
    if probe is not None and probe.document is not None and probe.document.torch is not None:
        torch = probe.document.torch
        items.append(("torch in the probe", torch.version if torch.found else "not found"))
    boxes = "".join(f"<div><b>{escape(k)}</b>{escape(v or '—')}</div>" for k, v in items)
    return f'<div class="glance">{boxes}</div>\n' if items else ""


def _verdict(results: list[CheckResult]) -> str:
    """The first broken link (results come in chain order), or a clean bill of health."""
    broken = next((r for r in results if r.status in (Status.FAIL, Status.ERROR)), None)
    if broken is None:
        warned = [r for r in results if r.status is Status.WARN]
        text = f" ({len(warned)} warning{'s' if len(warned) != 1 else ''} below)" if warned else ""
        return f'<div class="verdict ok"><strong>No check failed</strong>{escape(text)}</div>'
    fix = f'<pre class="fix">{escape(broken.fix)}</pre>' if broken.fix else ""
    return (
        f'<div class="verdict bad"><strong>First broken link: <span class="id">{escape(broken.id)}</span></strong> '
        f"{_pill(broken.status)}<br>{escape(broken.summary)}{fix}</div>"
    )


def _checks(results: list[CheckResult]) -> str:
    parts = []
    for area, title in AREAS.items():
        rows = [r for r in results if r.area == area]
        if not rows:
            continue
        body = "".join(_check_row(r) for r in rows)
        parts.append(f'<h3>{escape(title)}</h3>\n<table class="checks">\n<tbody>{body}</tbody>\n</table>')
    return "\n".join(parts) or '<p class="note">No check ran.</p>'


def _check_row(result: CheckResult) -> str:
    fix = f'<pre class="fix">{escape(result.fix)}</pre>' if result.fix else ""
    details = ""
    if result.details:
        items = "".join(f"<li>{escape(line)}</li>" for line in result.details)
        count = len(result.details)
        details = f"<details><summary>{count} detail{'s' if count != 1 else ''}</summary><ul>{items}</ul></details>"
    css = ' class="skipped"' if result.status is Status.SKIP else ""
    return (
        f'<tr{css}><td>{_pill(result.status)}</td><td class="id">{escape(result.id)}</td>'
        f"<td>{escape(result.summary)}{fix}{details}</td></tr>\n"
    )


def _table(headers: Iterable[str], rows: Iterable[Iterable[Cell]], numeric: Iterable[int] = (), css: str = "") -> str:
    numeric = set(numeric)
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{escape(c or '—')}</td>" for i, c in enumerate(row))
        + "</tr>\n"
        for row in rows
    )
    css = f' class="{css}"' if css else ""
    return f"<table{css}>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


def _card(title: str, pairs: Iterable[tuple[str, Cell]], extra: str = "") -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in pairs if v not in (None, ""))
    return f'<div class="card">\n<h3>{escape(title)}</h3>\n<table><tbody>{rows}</tbody></table>{extra}\n</div>'


def _count(n: int, noun: str, plural_form: str = "") -> str:
    return f"no {noun}" if n == 0 else plural(n, noun, plural_form)


def _gib(value: int | None) -> str | None:
    return None if value is None else f"{value / GIB:.1f} GiB"


def _yes(value: bool | None, yes: str = "yes", no: str = "no") -> str | None:
    return None if value is None else yes if value else no


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
        pci = f"{_count(len(nvidia.pci_gpus), 'NVIDIA GPU')} on the PCI bus"
        if nvidia.nvswitches:
            pci += f", with {_count(len(nvidia.nvswitches), 'NVSwitch', 'NVSwitches')}"
        parts.append(f'<p class="note">{escape(pci[:1].upper() + pci[1:])}{" · " + escape(line) if line else ""}</p>')
        if not nvml.ok:
            parts.append(f'<p class="note">NVML: {escape(nvml.error or nvml.error_kind or "not available")}</p>')
        if nvml.gpus:
            parts.append(
                _table(
                    GPU_HEADERS,
                    [_gpu_row(g) for g in nvml.gpus],
                    numeric=(0, 2, 4, 5, 6, 8),
                    css="gpus",
                )
            )
            uuids = "".join(f"<li>GPU {g.index}: <code>{escape(g.uuid or '?')}</code></li>" for g in nvml.gpus)
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
                        f"gen{d.pcie.cur_gen} x{d.pcie.cur_width} / gen{d.pcie.max_gen} x{d.pcie.max_width}"
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


def _gpu_row(gpu: GpuFacts) -> list[Cell]:
    def pair(now: float | None, top: float | None, unit: str) -> str | None:
        if now is None:
            return None
        return f"{now:g} / {top:g} {unit}" if top is not None else f"{now:g} {unit}"

    pcie = None
    if gpu.pcie_gen is not None:
        pcie = f"{gpu.pcie_gen}×{gpu.pcie_width} / {gpu.pcie_gen_max}×{gpu.pcie_width_max}"
    remaps = None
    if gpu.remapped_rows_uncorrectable is not None:
        remaps = f"{gpu.remapped_rows_correctable} / {gpu.remapped_rows_uncorrectable}"
        remaps += " pending" if gpu.remap_pending else ""
    return [
        str(gpu.index),
        gpu.name,
        None if gpu.memory_total_bytes is None else f"{gpu.memory_total_bytes / GIB:.0f} GiB",
        gpu.compute_capability,
        None if gpu.temperature_c is None else f"{gpu.temperature_c} °C",
        pair(None if gpu.power_draw_w is None else round(gpu.power_draw_w), gpu.power_limit_w, "W"),
        pair(gpu.sm_clock_mhz, gpu.sm_clock_max_mhz, "MHz"),
        pcie,
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


def _benchmarks(rows: list[BenchRow]) -> str:
    if not rows:
        return '<p class="note">No benchmark ran (no probe, or <code>--duration 0</code>).</p>'
    groups: dict[tuple[str, str], list[BenchRow]] = {}
    for row in rows:
        groups.setdefault((row.metric, row.unit), []).append(row)
    charts = [
        f'<div class="card chart"><h3>{escape(METRIC_TITLES.get(metric, metric))} · {escape(unit)}</h3>'
        f"{_chart(group)}</div>"
        for (metric, unit), group in groups.items()
    ]
    legend = (
        '<p class="note">Bars: measured, coloured by grade; black tick: what a healthy card of this model reaches '
        "(the grading reference); on the right: measured / expected (ratio).</p>"
    )
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


def _number(value: float | None, unit: str = "") -> str | None:
    if value is None:
        return None
    text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return f"{text} {unit}" if unit else text


def _chart(rows: list[BenchRow]) -> str:
    """Horizontal bars of one metric, one per GPU: measured (coloured by grade) against the expected tick."""
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
        label = "CPU" if row.gpu == "cpu" else f"GPU {row.gpu}"
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#1f2328">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{plot_w}" height="14" fill="#f6f8fa"/>')
        if row.measured is not None:
            bar = max(1.0, plot_w * row.measured / scale)
            colour = BAR_COLOURS[row.status]
            out.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="14" rx="2" fill="{colour}"/>')
        if row.expected:
            x = label_w + plot_w * row.expected / scale
            tick = f'x1="{x:.1f}" x2="{x:.1f}" y1="{y + 1}" y2="{y + 21}"'
            out.append(f'<line {tick} stroke="#1f2328" stroke-width="2"/>')
        detail = _number(row.measured) or "n/a"
        if row.expected:
            detail += f" / {_number(row.expected)}"
        if row.ratio is not None:
            detail += f" ({row.ratio:.2f}×)"
        fill = "#cf222e" if row.status in (Status.FAIL, Status.ERROR) else "#59636e"
        out.append(f'<text x="{label_w + plot_w + 8}" y="{y + 15}" fill="{fill}">{escape(detail)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _setup(report: Report) -> str:
    cards = []
    docker = report.facts.docker
    if docker is not None:
        daemon = docker.daemon
        connection = "ok" if docker.connection.ok else f"{docker.connection.error_kind}: {docker.connection.error}"
        pairs: list[tuple[str, Cell]] = [
            ("endpoint", f"{docker.endpoint.url} ({docker.endpoint.source})"),
            ("connection", connection),
            ("flavour", docker.flavour),
            ("CLI", f"{docker.cli.version} ({docker.cli.path})" if docker.cli.path else "not installed"),
        ]
        if daemon is not None:
            pairs += [
                ("server", f"{daemon.server_version} (API {daemon.api_version})"),
                ("operating system", daemon.operating_system),
                ("kernel", daemon.kernel),
                ("storage driver", daemon.storage_driver),
                ("cgroup", f"{daemon.cgroup_driver}, v{daemon.cgroup_version}"),
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
            pairs.append(("daemon.json", f"{config.path} ({'found' if config.found else 'absent'})"))
            if config.settings:
                extra = f"<pre>{escape(json.dumps(config.settings, indent=2))}</pre>"
        cards.append(_card("Docker", pairs, extra))
    nvidia = report.facts.nvidia
    if nvidia is not None:
        toolkit, kernel = nvidia.toolkit, nvidia.kernel
        tools: list[tuple[str, Cell]] = [
            (b.name, f"{b.version or '?'} ({b.path})" if b.path else "not installed") for b in toolkit.binaries
        ]
        tools += [
            ("config.toml", f"{toolkit.config_path} ({'found' if toolkit.config_found else 'absent'})"),
            ("no-cgroups", _yes(toolkit.no_cgroups, "true", "false")),
        ]
        tools += [(f"CDI spec {s.path}", s.error or f"driver {s.driver_version or '?'}") for s in toolkit.cdi_specs]
        fabric = nvidia.fabric_manager
        if fabric.path:
            tools.append(("fabric manager", f"{fabric.version or '?'}, {'running' if fabric.running else 'stopped'}"))
        cards.append(_card("NVIDIA Container Toolkit", tools))
        nodes = kernel.nodes
        cards.append(
            _card(
                "NVIDIA kernel driver",
                [
                    ("module", kernel.version_text or "not loaded"),
                    ("loaded modules", ", ".join(kernel.modules) or "none"),
                    ("running kernel", kernel.running_kernel),
                    ("built for kernels", ", ".join(kernel.module_kernels)),
                    ("secure boot", _yes(kernel.secure_boot, "enabled", "disabled")),
                    ("device nodes", f"{len(nodes)}, {sum(not n.accessible for n in nodes)} not accessible"),
                    ("NVML library", nvidia.nvml.library),
                ],
            )
        )
    probe = report.facts.probe
    if probe is not None:
        run, doc = probe.run, probe.document
        pairs = [
            ("where", f"image {run.image}" if run.mode == "container" else "this host (--no-container)"),
            ("GPUs", f"{run.gpus} ({run.gpus_reason})" if run.gpus_reason else run.gpus),
            ("outcome", f"{run.stage}{': ' + run.error if run.error else ''}"),
            ("exit code", None if run.exit_code is None else str(run.exit_code)),
            ("elapsed", f"{run.elapsed_s:.1f} s of {run.deadline_s:g} s allowed"),
        ]
        if doc is not None:
            torch = doc.torch
            pairs.append(("python", f"{doc.python.version} ({doc.python.executable})"))
            if torch is not None:
                pairs.append(("torch", f"{torch.version} (CUDA {torch.cuda})" if torch.found else torch.error))
            if doc.cuda is not None:
                pairs.append(("CUDA", "available" if doc.cuda.available else doc.cuda.error or "not available"))
                pairs.append(("arch list", " ".join(doc.cuda.arch_list)))
        cards.append(_card("Probe", pairs))
    if not cards:
        return '<p class="note">No Docker, NVIDIA or probe facts in this report.</p>'
    return '<div class="grid">\n' + "\n".join(cards) + "\n</div>"


def _host(report: Report) -> str:
    host = report.facts.host
    if host is None:
        return '<p class="note">No host facts in this report.</p>'
    os_, cpu, memory, shm, user = host.os, host.cpu, host.memory, host.shm, host.user  # each may be unreadable
    disks = "; ".join(f"{d.path} {_gib(d.free_bytes)} free of {_gib(d.total_bytes)}" for d in host.disks or [])
    pairs: list[tuple[str, Cell]] = [
        ("OS", (os_.pretty_name or os_.id) if os_ else None),
        ("kernel", f"{host.kernel} ({host.arch})"),
        ("CPU", f"{cpu.model} — {cpu.usable:g} usable of {cpu.logical}, load {cpu.load_1m:.1f}" if cpu else None),
        ("memory", f"{_gib(memory.available_bytes)} available of {_gib(memory.total_bytes)}" if memory else None),
        ("cgroup memory limit", _gib(memory.cgroup_limit_bytes) if memory else None),
        ("/dev/shm", f"{_gib(shm.free_bytes)} free of {_gib(shm.total_bytes)}" if shm else None),
        ("disks", disks),
        ("user", f"{user.name} (uid {user.uid}), groups {', '.join(user.active_groups)}" if user else None),
        ("python", host.python),
    ]
    return '<div class="grid">\n' + _card("This machine", pairs) + "\n</div>"


def _footer(report: Report) -> str:
    return (
        f"<footer>Generated by mldoctor {escape(report.tool_version)}. The facts behind every line are in "
        "report.json; <code>mldoctor check --facts &lt;this bundle&gt;</code> re-applies today's rules to them. "
        "raw/ holds the commands' own output; manifest.json lists every file with its sha256 and what was "
        "redacted.</footer>"
    )
