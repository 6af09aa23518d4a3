"""report.html: it parses, it is self-contained (nothing loaded from outside when opened), it shows what support
reads first, and it renders in a real browser (Debian's chromium, when installed).

To refresh the screenshot in the docs:
    MLDOCTOR_SCREENSHOT=docs/report-screenshot.png python3 -m pytest tests/unit/test_bundle_html.py -k chromium
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import subprocess
import tempfile
from dataclasses import replace
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from factories import disk, facts, host
from provided import require_chromium
from test_bundle import gpu_facts, gpu_report
from test_nvidia_rules import nvidia_facts, nvml_failed
from test_probe_rules import document, probe_facts

from mldoctor.bundle import html
from mldoctor.bundle.redact import for_facts
from mldoctor.data import nvml_errors
from mldoctor.facts.probe import ProbeRun
from mldoctor.facts.probe_document import BenchResults, CpuBench, ProbeCuda, ProbeTorch
from mldoctor.model import Report
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select

FORBIDDEN_TAGS = {"script", "link", "iframe", "object", "embed", "img", "frame", "base", "form", "audio", "video"}
URL_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "poster", "data", "xlink:href", "background"}


class Page(HTMLParser):
    """Every tag and URL-bearing attribute of the page, and whether the nesting is balanced."""

    VOID = frozenset({"meta", "br", "hr", "input", "rect", "line", "path", "circle"})

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.styles: list[str] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in URL_ATTRIBUTES]
        self.styles += [value or "" for name, value in attrs if name == "style"]
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in URL_ATTRIBUTES]

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


@pytest.fixture(scope="module")
def page() -> str:
    report = gpu_report()
    return html.render(for_facts(report.facts, {}, hosts=True).scrub_report(report))


def test_parses_and_is_one_document(page):
    parsed = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.tags[:1] == ["html"] and parsed.tags.count("body") == 1 and parsed.tags.count("svg") == 8


def test_references_nothing_outside_the_page(page):
    parsed = parse(page)
    assert not FORBIDDEN_TAGS & set(parsed.tags)
    assert parsed.urls and all(url.startswith("#") for url in parsed.urls), parsed.urls
    css = " ".join(parsed.styles)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css


def test_shows_the_first_broken_link_the_inventory_and_the_benchmarks(page):
    text = "".join(parse(page).text)
    assert "First broken link: docker.warnings" in text  # the fixture host exposes its API without TLS (a FAIL)
    assert "nvidia-smi -q -i 5 -d PERFORMANCE" in text  # the fix, pasteable
    assert text.count("NVIDIA H100 80GB HBM3") >= 16  # NVML inventory and the probe's view, 8 GPUs each
    assert "537 / 790 (0.68×)" in text  # GPU 5's bf16 bar: measured against expected
    for heading in ("Docker", "NVIDIA Container Toolkit", "NVIDIA kernel driver", "Probe", "This machine"):
        assert heading in text


def test_text_from_the_report_is_escaped():
    report = build_report(select(["host"]), facts(), Policy())
    report.host = "<script>alert(1)</script>"
    parsed = parse(html.render(report))
    assert "script" not in parsed.tags and "<script>alert(1)</script>" in "".join(parsed.text)


def test_a_report_without_gpu_docker_or_probe_still_renders():
    report = build_report(select(["host"]), facts(docker=None), Policy())
    text = "".join(parse(html.render(report)).text)
    assert "No NVIDIA facts in this report." in text and "No benchmark ran" in text


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def chromium(source: Path, *args: str) -> str:
    """Debian's headless chromium on a page (a file), with no network, sync or first-run noise; its stdout."""
    require_chromium()
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
                source.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return done.stdout


@pytest.mark.parametrize("width", [1280, 800])
def test_renders_in_chromium(page, tmp_path, width):
    source = tmp_path / "report.html"
    source.write_text(page, encoding="utf-8")
    target = tmp_path / "screenshot.png"
    if width == 1280 and os.environ.get("MLDOCTOR_SCREENSHOT"):
        target = Path(os.environ["MLDOCTOR_SCREENSHOT"]).resolve()
    chromium(source, f"--screenshot={target}", f"--window-size={width},2400")
    assert png_size(target) == (width, 2400)
    assert target.stat().st_size > 50_000  # a rendered page, not a blank one (blank: under 10 kB)


MEASURE = """
(() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const main = document.querySelector("main"), right = main.getBoundingClientRect().right;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (typeof el.className === "string" && el.className ? "." + el.className.split(" ").join(".") : "")
    + " '" + (el.textContent || "").trim().slice(0, 40) + "'";
  const out = {width: innerWidth, page: document.documentElement.scrollWidth, cut: [], beyond: [], scrolled: []};
  for (const el of main.querySelectorAll("*")) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;
    const style = getComputedStyle(el);
    const scrolls = ["auto", "scroll"].includes(style.overflowX);
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
      (scrolls ? out.scrolled : out.cut).push(name(el) + ": " + el.scrollWidth + " > " + el.clientWidth);
    }
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > right + 1 && !el.parentElement.closest(".wide, pre")) {
      out.beyond.push(name(el) + ": right edge " + Math.round(box.right) + " > " + Math.round(right));
    }
  }
  const fixes = [...document.querySelectorAll("pre.fix")];
  out.fix = fixes.map((pre) => [getComputedStyle(pre).whiteSpace, getComputedStyle(pre).overflowX]);
  out.fix_scrolls = fixes.some((pre) => pre.scrollWidth > pre.clientWidth);
  const table = document.querySelector(".checks").getBoundingClientRect().width;
  out.finding = Math.min(...[...document.querySelectorAll(".checks td.finding")].map((td) => td.clientWidth));
  out.table = table;
  const shown = () => [...document.querySelectorAll(".checks tr")].filter((tr) => tr.getClientRects().length)
    .map((tr) => tr.dataset.status);
  const areas = () => [...document.querySelectorAll("#checks h3")].filter((h) => h.getClientRects().length)
    .map((h) => h.textContent);
  out.rows = shown(); out.areas = areas();
  const box = document.getElementById("problems-only");
  const notes = () => [...document.querySelectorAll(".only-filtered")].filter((p) => p.getClientRects().length)
    .map((p) => p.textContent);
  out.notes = notes();
  if (box) {
    box.checked = true;
    out.rows_filtered = shown(); out.areas_filtered = areas(); out.notes_filtered = notes();
  }
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
"""
"""Measures the page as laid out (for the tests only: the page itself has no script), then ticks the problems-only
box and lists the rows and areas still shown."""


def measured(page: str, tmp_path: Path, width: int) -> dict:
    source = tmp_path / f"measure-{width}.html"
    source.write_text(page.replace("</body>", f"<script>{MEASURE}</script></body>"), encoding="utf-8")
    dom = chromium(source, "--dump-dom", f"--window-size={width},2400")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(unescape(found.group(1)))


@pytest.mark.parametrize("width", [1280, 800, 500])  # 500: the narrowest window chromium opens
def test_nothing_is_cut_off_at_any_width(page, tmp_path, width):
    """The matrix is readable at 1280 px and narrower: prose wraps inside its cell, a fix command keeps its one line
    and scrolls sideways in its own box, wide tables scroll in theirs; the page itself never scrolls sideways."""
    found = measured(page, tmp_path, width)
    assert found["width"] == width
    assert found["cut"] == [] and found["beyond"] == [], found
    assert found["page"] <= width, found
    assert all(style == ["pre", "auto"] for style in found["fix"]), found["fix"]
    if width <= 800:
        assert found["fix_scrolls"]  # the long nvidia-smi command: one line that scrolls, not two
    assert found["finding"] >= 0.45 * found["table"], found  # the findings column gets most of the width


def test_problems_only_hides_pass_and_skip_rows_in_chromium(page, tmp_path):
    found = measured(page, tmp_path, 1280)
    assert {"PASS", "FAIL", "WARN"} <= set(found["rows"]) and len(found["rows"]) == len(gpu_report().results)
    assert sorted(found["rows_filtered"]) == ["FAIL", "FAIL", "WARN"]  # docker.warnings, bench.matmul.bf16, probe.shm
    assert found["areas_filtered"] == ["Docker", "Probe container", "Benchmarks"]  # areas with nothing to act on go
    assert found["notes"] == found["notes_filtered"] == []


def test_problems_only_on_a_host_without_problems_says_so_in_chromium(cpu_page, tmp_path):
    found = measured(cpu_page, tmp_path, 1280)
    assert found["rows"] and found["rows_filtered"] == [] and found["areas_filtered"] == []
    assert found["notes"] == [] and found["notes_filtered"] == ["No problem: every check passed or was skipped."]


def test_problems_only_is_a_checkbox_and_css_alone(page):
    parsed = parse(page)
    assert "script" not in parsed.tags and "input" in parsed.tags
    assert re.search(r'<input type="checkbox" id="problems-only">\s*<label[^>]*for="problems-only"', page)
    css = " ".join(parsed.styles)
    assert '#problems-only:checked ~ .area tr[data-status="PASS"]' in css
    assert '#problems-only:checked ~ .area tr[data-status="SKIP"]' in css


PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)><a href='https://evil.example/'>x</a>\"'&"


def tainted(value):
    """Every string of the facts with the payload appended: a container name, an error text, a GPU name..."""
    if isinstance(value, dict):
        return {k: tainted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tainted(v) for v in value]
    return value + PAYLOAD if isinstance(value, str) else value


@pytest.mark.parametrize("redacted", [False, True])
def test_every_string_from_the_facts_is_inert(redacted, tmp_path):
    """Markup in any fact (and in the checks' texts built from them) is text on the page, also after the bundle's
    text pass over the page; no tag, attribute or URL comes from the facts."""
    from test_bundle import gpu_facts, unpack

    from mldoctor.bundle.command import write_bundle
    from mldoctor.facts import Facts
    from mldoctor.serde import from_data, to_data

    report = build_report(select(), from_data(Facts, tainted(to_data(gpu_facts()))), Policy())
    report.host += PAYLOAD
    if redacted:
        path = tmp_path / "b.zip"
        write_bundle(str(path), report, [], for_facts(report.facts, {}, hosts=True, gpu_ids=True))
        page = unpack(path)["report.html"].decode()
    else:
        page = html.render(report)
    parsed = parse(page)
    assert not FORBIDDEN_TAGS & set(parsed.tags) and "a" in parsed.tags
    assert all(url.startswith("#") for url in parsed.urls), parsed.urls
    assert "onerror" not in "".join(re.findall(r"<[^>]*>", page))  # only in text, never in a tag
    assert "".join(parsed.text).count("<script>alert(1)</script>") > 50


def cpu_only_report():
    """A host without an NVIDIA GPU (none on the PCI bus, no driver, NVML not asked), torch's CPU wheel in the probe,
    which benchmarked the CPU; /, the working directory and /tmp on one filesystem, /data on another."""
    nv = nvml_failed(nvidia_facts(gpus=0), "not_asked", "no NVIDIA device on the PCI bus and no NVIDIA driver loaded")
    nv = replace(
        nv,
        nvml=replace(nv.nvml, driver_version=None, cuda_driver_version=None, nvml_version=None, library=None),
        kernel=replace(nv.kernel, version_text=None, module_version=None, modules=[], nodes=[]),
    )
    doc = document(
        torch=ProbeTorch(found=True, version="2.13.0+cpu", cuda=None),
        cuda=ProbeCuda(available=False, error="torch was built without CUDA"),
        devices=[],
        bench=BenchResults(duration_s=10, cpu=CpuBench(gflops=850.0, threads=16, ok=True, shape=[2048] * 3)),
    )
    run = ProbeRun(image="mldoctor-probe:0.1.0", default_image=True, gpus="none", gpus_reason="no NVIDIA GPU")
    disks = [disk("/"), disk("/home/alice/work"), disk("/tmp"), disk("/data", free_gib=900, total_gib=1000, device=2)]
    return build_report(select(), probe_facts(run=run, doc=doc, nvidia=nv, host=host(disks=disks)), Policy())


@pytest.fixture(scope="module")
def cpu_page() -> str:
    return html.render(cpu_only_report())


def glance(page: str) -> dict[str, str]:
    """The tiles at the top: title -> text."""
    block = re.search(r'<div class="glance">(.*?)</div>\n', page, re.S).group(1)
    return {unescape(k): unescape(v) for k, v in re.findall(r"<div><b>(.*?)</b>(.*?)</div>", block)}


def test_a_cpu_only_torch_is_called_a_cpu_only_build(cpu_page):
    text = "".join(parse(cpu_page).text)
    assert "2.13.0+cpu (CPU-only build)" in text and "CUDA None" not in text
    assert glance(cpu_page)["torch in the probe"] == "2.13.0+cpu (CPU-only build)"
    assert glance(html.render(gpu_report()))["torch in the probe"] == "2.4.1+cu124 (CUDA 12.4)"


def test_a_host_without_a_gpu_says_so_instead_of_driver_not_loaded(cpu_page):
    tiles = glance(cpu_page)
    assert tiles["GPUs"] == "no NVIDIA GPU on this host"
    assert "driver" not in tiles and "not loaded" not in " ".join(tiles.values())
    text = "".join(parse(cpu_page).text)
    assert "No NVIDIA GPU on this host (none on the PCI bus)" in text
    assert "NVML: no NVIDIA device" not in text  # NVML was not asked: no second line saying the same


def test_a_gpu_without_its_driver_still_says_not_loaded():
    nv = nvml_failed(nvidia_facts(gpus=1), "driver_not_loaded", "Driver Not Loaded", driver_version=None)
    nv = replace(nv, kernel=replace(nv.kernel, version_text=None, module_version=None, modules=[], nodes=[]))
    page = html.render(build_report(select(), facts(nvidia=nv), Policy()))
    assert glance(page)["driver"] == "not loaded" and glance(page)["GPUs"] == "1 NVIDIA GPU on the PCI bus"
    assert "NVML: the NVIDIA kernel driver is not loaded" in "".join(parse(page).text)


def test_the_cpu_benchmark_is_information_without_a_reference(cpu_page):
    chart = re.search(r'<div class="card chart">(.*?)</div>', cpu_page, re.S).group(1)
    assert "CPU, not graded" in chart and "850 · not graded" in chart
    assert "<line" not in chart  # no reference tick
    assert html.BAR_COLOURS[html.Status.PASS] not in chart  # not a green "passed" bar either
    text = "".join(parse(cpu_page).text)
    assert "black tick" not in text and "information, not graded" in text
    gpu_page = html.render(gpu_report())
    assert "black tick" in gpu_page and gpu_page.count("<line") == sum(1 for r in gpu_report().benchmarks)


def test_each_filesystem_is_listed_once_with_the_paths_it_holds(cpu_page):
    text = "".join(parse(cpu_page).text)
    assert "/, /home/alice/work and /tmp: 80.0 GiB free of 250.0 GiB (32%)" in text
    assert "/data: 900.0 GiB free of 1000.0 GiB (90%)" in text
    assert text.count("80.0 GiB free of 250.0 GiB") == 1  # not three times
    unreadable = replace(disk("/mnt/nfs"), error="Stale file handle", device=0)
    assert html.filesystems([disk("/"), unreadable]) == [
        "/: 80.0 GiB free of 250.0 GiB (32%)",
        "/mnt/nfs: Stale file handle",
    ]


def test_host_copies_are_counted_per_gpu_on_the_page(page):
    text = "".join(parse(page).text)
    assert "pinned host<->device copy on 8 GPUs" in text and "16 GPUs" not in text


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("Not Supported", "n/a (not supported on this GPU)"),
        ("NVMLError_NotSupported", "n/a (not supported on this GPU)"),
        ("NVMLError_NoPermission: Insufficient Permissions", "n/a (this user may not read it; root may)"),
        ("Insufficient Permissions", "n/a (this user may not read it; root may)"),
        ("GPU is lost", "the GPU is lost (it fell off the bus)"),
        ("NVML Error with code 28", "the GPU was not found"),
        ("Driver Not Loaded", "the NVIDIA kernel driver is not loaded"),
        ("the daemon is not running", None),  # not NVML's: kept as recorded
    ],
)
def test_nvml_errors_in_plain_words(error, words):
    assert nvml_errors.nvml_words(error) == words


def test_an_nvml_error_after_the_call_that_failed_is_in_words_too():
    assert nvml_errors.plain_error("nvmlDeviceGetCount: Insufficient Permissions") == (
        "nvmlDeviceGetCount: n/a (this user may not read it; root may)"
    )
    assert nvml_errors.plain_error("docker: Not Supported here") == "docker: Not Supported here"


def test_no_raw_nvml_error_reaches_the_page():
    """A field NVML refused (in the GPU table's note and nvidia.health's details) and a failed fabric registration
    are said in words."""
    nv = nvidia_facts(gpus=2)
    first = replace(nv.nvml.gpus[0], power_draw_w=None, errors={"power_draw": "Insufficient Permissions"})
    first = replace(first, fabric_error="Not Supported")
    second = replace(nv.nvml.gpus[1], temperature_c=None, errors={"temperature": "NVMLError_NotSupported"})
    nv = replace(nv, nvml=replace(nv.nvml, gpus=[first, second]))
    page = html.render(build_report(select(), facts(nvidia=nv), Policy()))
    text = "".join(parse(page).text)
    for raw in ("Insufficient Permissions", "NVMLError", "Not Supported"):
        assert raw not in text, raw
    assert "GPU 0 power draw: n/a (this user may not read it; root may)" in text
    assert "GPU 1 temperature: n/a (not supported on this GPU)" in text
    assert "power draw: n/a (this user may not read it; root may)" in text  # nvidia.health.gpu0's detail
    assert "GPU 0 NVLink fabric: n/a (not supported on this GPU)" in text


OPTIONAL_HOST_FACTS = ("os", "cpu", "memory", "shm", "disks", "user", "limits")


def missing(value, keep_sections: bool):
    """The same facts with every value that may be None set to None: leaves only (keep_sections) or sections too."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            current = getattr(value, f.name)
            optional = "| None" in str(f.type) or "Optional[" in str(f.type)
            section = dataclasses.is_dataclass(current) or isinstance(current, list)
            changes[f.name] = None if optional and not (keep_sections and section) else missing(current, keep_sections)
        return replace(value, **changes)
    if isinstance(value, list):
        return [missing(v, keep_sections) for v in value]
    return value


def none_on(page: str, report: Report | None = None) -> list[str]:
    """Text of the page that says None (a missing value formatted as Python writes it), but for the checks' own
    texts, which the page shows as the rules wrote them."""
    rules = {line for r in (report.results if report else []) for line in (r.summary, r.fix, *r.details) if line}
    return [t for t in parse(page).text if re.search(r"\bNone\b", t) and t not in rules]


@pytest.mark.parametrize("keep_sections", [True, False])
def test_missing_values_never_read_none(keep_sections, page, cpu_page):
    """Every value that may be missing is missing: the page says so in words (or leaves the line out)."""
    assert none_on(page) == [] and none_on(cpu_page) == []
    report = build_report(select(), missing(gpu_facts(), keep_sections), Policy())
    assert none_on(html.render(report), report) == []


@pytest.mark.parametrize("fact", [*OPTIONAL_HOST_FACTS, "all"])
def test_the_page_renders_with_any_host_fact_missing(fact):
    gone = OPTIONAL_HOST_FACTS if fact == "all" else (fact,)
    report = build_report(
        select(), replace(gpu_facts(), host=replace(gpu_facts().host, **dict.fromkeys(gone))), Policy()
    )
    page = html.render(report)
    text = "".join(parse(page).text)
    assert none_on(page) == [] and "This machine" in text and "not readable" in text


def test_the_peer_matrix_and_the_all_reduce_by_size():
    """Issue 16: the page shows who reaches whom peer to peer (a hole in red) and one busbw chart over sizes."""
    from dataclasses import replace

    from mldoctor.facts.probe_document import AllreduceResults, AllreduceSize, PeerCopy, PeerResults

    report = gpu_report()
    doc = report.facts.probe.document
    access = [[None, True, False], [True, None, True], [False, True, None]]
    peers = PeerResults(devices=3, access=access, copies=[PeerCopy(src=0, dst=1, gbps=180.0, ok=True)])
    sizes = [AllreduceSize(bytes=n << 20, busbw_gbps=b, algbw_gbps=b * 0.57) for n, b in ((1, 40.0), (1024, 360.0))]
    reduce = AllreduceResults(backend="nccl", device="NVIDIA H100 80GB HBM3", world_size=8, sizes=sizes)
    report.facts.probe.document = replace(doc, bench=replace(doc.bench, p2p=peers, allreduce=reduce))
    from mldoctor.runner import _benchmarks

    report.benchmarks = _benchmarks(report.facts, report.policy)
    text = "".join(parse(html.render(report)).text)
    assert "Peer-to-peer access" in text and text.count("✗") >= 2 and "180 GB/s" in text
    assert text.count("All-reduce bus bandwidth by size") == 1
