"""report.html: it parses, it is self-contained (nothing loaded from outside when opened), it shows what support
reads first, and it renders in a real browser (Debian's chromium, when installed).

To refresh the screenshot in the docs:
    MLDOCTOR_SCREENSHOT=docs/report-screenshot.png python3 -m pytest tests/unit/test_bundle_html.py -k chromium
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from factories import facts
from provided import require_chromium
from test_bundle import gpu_report

from mldoctor.bundle import html
from mldoctor.bundle.redact import for_facts
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


def test_renders_in_chromium(page, tmp_path):
    require_chromium()
    source = tmp_path / "report.html"
    source.write_text(page, encoding="utf-8")
    target = Path(os.environ.get("MLDOCTOR_SCREENSHOT") or tmp_path / "screenshot.png").resolve()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
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
                f"--screenshot={target}",
                "--window-size=1200,1600",
                source.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    assert png_size(target) == (1200, 1600)
    assert target.stat().st_size > 50_000  # a rendered page, not a blank one (blank: under 10 kB)


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
