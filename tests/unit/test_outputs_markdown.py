"""report.md / --format markdown: the collect_env-style environment block, and report text that cannot inject
markup, HTML or a broken fence into the page it is pasted into."""

from __future__ import annotations

import re
from dataclasses import replace

import markdown_it  # rich's own dependency: always installed with mldoctor
import pytest
from factories import daemon, docker, down, facts
from test_bundle import gpu_facts

from mldoctor.facts.probe import ProbeFacts, ProbeRun
from mldoctor.facts.probe_document import ProbeDocument, ProbePython, ProbeTorch
from mldoctor.model import CheckResult, Status
from mldoctor.output import markdown
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select


def block(report) -> dict[str, str]:
    """The environment block's `name: value` lines, checking it is one fenced block at the end of the page."""
    text = markdown.render(report)
    head, _, rest = text.partition("### Environment\n\n```text\n")
    assert head and rest.endswith("\n```\n") and rest.count("```") == 1
    return dict(re.split(r":\s+", line, maxsplit=1) for line in rest.removesuffix("```\n").splitlines())


def test_environment_block_of_a_gpu_host_with_the_probe():
    env = block(build_report(select(), gpu_facts(), Policy()))
    assert env == {
        "mldoctor": env["mldoctor"],
        "Probed image": "mldoctor-probe:0.1.0",
        "PyTorch": "2.4.1+cu124",
        "CUDA used to build PyTorch": "12.4",
        "cuDNN": "9.1.0",
        "NCCL": "2.20.5",
        "CUDA available": "yes, 8 device(s)",
        "GPU models": "8 x NVIDIA H100 80GB HBM3",
        "NVIDIA driver": "550.90.07",
        "CUDA driver version": "12.4",
        "Container toolkit": "1.16.2",
        "Docker": "24.0.7 (engine)",
        "OS": "Debian GNU/Linux 12 (bookworm), kernel 6.1.0-18-amd64 (x86_64)",
        "Python (image)": "3.10.12",
        "Python (mldoctor)": "3.11.2",
    }


def test_environment_block_says_na_for_what_was_not_gathered():
    env = block(build_report(select(["docker", "host"]), facts(docker=down("missing_socket")), Policy()))
    unknown = ["Probed image", "PyTorch", "CUDA used to build PyTorch", "cuDNN", "NCCL", "CUDA available"]
    unknown += ["GPU models", "NVIDIA driver", "CUDA driver version", "Container toolkit", "Python (image)"]
    assert {name: env[name] for name in unknown} == dict.fromkeys(unknown, "n/a")
    assert env["Docker"] == "24.0.7 (client; the daemon did not answer)"
    assert env["Python (mldoctor)"] == "3.11.2"


@pytest.mark.parametrize(
    ("torch", "pytorch", "built"),
    [
        (ProbeTorch(found=True, version="2.13.0+cpu", cuda=None), "2.13.0+cpu", "none (CPU-only build)"),
        (ProbeTorch(found=False, error="ModuleNotFoundError: No module named 'torch'"), "not installed", "n/a"),
        (ProbeTorch(found=True, error="OSError: libcudnn.so.9:\ncannot open"), "import failed: OSError:", "n/a"),
    ],
)
def test_environment_block_of_an_image_without_a_working_cuda_torch(torch, pytorch, built):
    document = ProbeDocument(python=ProbePython(version="3.8.18"), torch=torch)
    probe = ProbeFacts(run=ProbeRun(image="my/train:1"), document=document)
    env = block(build_report(select(["docker", "host"]), facts(probe=probe), Policy()))
    assert env["PyTorch"].startswith(pytorch) and "\n" not in env["PyTorch"]
    assert (env["CUDA used to build PyTorch"], env["cuDNN"], env["Python (image)"]) == (built, "n/a", "3.8.18")
    assert env["Probed image"] == "my/train:1"


@pytest.mark.parametrize(("raw", "version"), [(8902, "8.9.2"), (90100, "9.1.0"), (90501, "9.5.1"), (7605, "7.6.5")])
def test_cudnn_versions(raw, version):
    assert markdown._cudnn(raw) == version


HOSTILE = 'x <img src=x onerror=alert(1)> **bold** [link](http://evil.example) `code` | ~~gone~~ _em_ \\ & "q"'


def hostile_report():
    """Report text as an attacker (or a badly behaved image) would write it, in every place the page shows."""
    planted = facts(docker=docker(daemon=daemon(server_version="24.0.7\n```\n<script>x</script>")))
    report = build_report(select(["docker", "host"]), planted, Policy())
    report.host = "node`7\x1b[31m"
    report.results.append(
        CheckResult("host.extra", "Extra", "host", Status.WARN, HOSTILE + "\x1b[31m\x00", fix="rm -rf /tmp/*_x\necho |")
    )
    return report


def test_report_text_is_escaped_in_cells_and_spans():
    text = markdown.render(hostile_report())
    row = next(line for line in text.splitlines() if "host.extra" in line)
    assert row == (
        "| ⚠️ | `host.extra` | x &lt;img src=x onerror=alert(1)&gt; \\*\\*bold\\*\\* \\[link\\](http://evil.example) "
        '\\`code\\` \\| \\~\\~gone\\~\\~ \\_em\\_ \\\\ &amp; "q"\\\\x00 | <code>rm -rf /tmp/\\*\\_x</code><br>'
        "<code>echo \\|</code> |"
    )
    assert text.startswith("## mldoctor ") and text.splitlines()[0].endswith(" on ``node`7``")
    assert "\x1b" not in text and "\x00" not in text


def test_rendered_by_a_commonmark_parser_nothing_escapes_its_place():
    page = (
        markdown_it.MarkdownIt("commonmark")
        .enable(["table", "strikethrough"])
        .render(markdown.render(hostile_report()))
    )
    assert "<img" not in page and "<script" not in page and "<strong>" not in page and "<em>" not in page
    assert "<a href" not in page and "<s>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; **bold** [link](http://evil.example) `code` | ~~gone~~ _em_" in page
    assert "<code>node`7</code>" in page and "<code>rm -rf /tmp/*_x</code><br><code>echo |</code>" in page
    fenced = re.findall(r"<pre><code class=\"language-text\">(.*?)</code></pre>", page, re.S)
    assert len(fenced) == 1 and "Docker:" in fenced[0] and "Python (mldoctor):" in fenced[0]
    assert "24.0.7 ``` &lt;script&gt;x&lt;/script&gt; (engine)" in fenced[0]  # one line, inside the block


def test_a_value_with_a_long_backtick_run_gets_a_longer_fence():
    planted = gpu_facts()
    planted.probe.document.torch = replace(planted.probe.document.torch, version="2.4.1 `````")
    lines = markdown.render(build_report(select(["docker", "host"]), planted, Policy())).splitlines()
    start = lines.index("### Environment") + 2
    assert lines[start] == "``````text" and lines[-1] == "``````"
