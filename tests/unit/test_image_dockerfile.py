"""The Dockerfile lint: the parser's bounds and shapes, and each rule, from text (pure)."""

from __future__ import annotations

import pytest
from purity import pure

from mldoctor.image.dockerfile import DockerfileError, findings, lint, parse
from mldoctor.image.targets import Targets, from_values
from mldoctor.model import Status

NO_TARGETS = Targets()
GOOD = """\
# syntax=docker/dockerfile:1
ARG BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
FROM ${BASE} AS build
RUN apt-get update \\
    # a comment inside a continued RUN
    && apt-get install -y --no-install-recommends python3=3.10.6-1 \\
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir torch==2.5.1 -r requirements.txt
FROM build
USER app
"""


def rules(text: str, targets: Targets = NO_TARGETS) -> dict[str, int]:
    with pure():
        return {lint_.rule: lint_.line for lint_ in lint(text, targets)}


def test_parse_joins_continuations_skips_comments_and_keeps_lines():
    instructions = parse(GOOD)
    assert [(i.line, i.keyword) for i in instructions] == [
        (2, "ARG"), (3, "FROM"), (4, "RUN"), (8, "RUN"), (9, "FROM"), (10, "USER"),
    ]  # fmt: skip
    assert "rm -rf /var/lib/apt/lists/*" in instructions[2].args and "comment" not in instructions[2].args


def test_a_clean_dockerfile_has_no_findings():
    assert rules(GOOD, from_values("550.90", [], "flags")) == {}


def test_each_rule_with_its_line():
    text = """\
FROM ubuntu
RUN apt-get update && apt-get install -y curl git
FROM python:latest
RUN pip install torch numpy
USER root
"""
    assert rules(text) == {"DL3006": 1, "DL3008": 2, "DL3009": 2, "DL3007": 3, "DL3013": 4, "DL3042": 4, "DL3002": 5}


def test_no_user_at_all_is_dl3002_and_json_run_is_read():
    found = rules('FROM debian:12\nRUN ["pip", "install", "x==1"]\n')
    assert found == {"DL3042": 2, "DL3002": 2}


def test_a_cuda_base_newer_than_the_driver_is_mld001_with_arg_substitution():
    text = "ARG CUDA=13.0.1\nFROM nvidia/cuda:${CUDA}-runtime-ubuntu24.04\nUSER app\n"
    assert rules(text, from_values("550.90", [], "flags")) == {"MLD001": 2}
    assert rules(text, from_values("580.65", [], "flags")) == {}
    assert rules(text) == {}  # no driver target: nothing to compare with
    with pure():
        (row,) = findings(text, from_values("550.90", [], "policy"), "train/Dockerfile")
    assert row.id == "image.dockerfile.MLD001" and row.status is Status.FAIL
    assert row.summary.startswith("train/Dockerfile:2:") and "580" in row.summary and "12.4" in row.fix


def test_findings_group_lines_per_rule_and_carry_fixes():
    text = "FROM a:1\nRUN pip install x\nRUN pip install y\nUSER app\n"
    with pure():
        rows = {r.id: r for r in findings(text, Targets())}
    assert set(rows) == {"image.dockerfile.DL3013", "image.dockerfile.DL3042"}
    assert "also lines 3" in rows["image.dockerfile.DL3042"].summary
    assert all(r.fix for r in rows.values())
    with pure():
        (ok,) = findings(GOOD, Targets())
    assert ok.id == "image.dockerfile" and ok.status is Status.PASS


def test_escape_directive():
    assert [i.keyword for i in parse("# escape=`\nFROM a:1\nRUN echo `\n  hi\nUSER app\n")] == ["FROM", "RUN", "USER"]


@pytest.mark.parametrize("text", ["FROM a\x00", "RUN x\n" * 6000, "#" * (2 << 20)])
def test_bounds(text):
    with pytest.raises(DockerfileError):
        parse(text)


def test_a_torch_wheel_for_a_cuda_the_driver_does_not_run_is_mld002():
    text = (
        "ARG CU=cu128\nFROM python:3.12-slim\n"
        "RUN pip install --no-cache-dir torch==2.7.1 --index-url https://download.pytorch.org/whl/${CU}\nUSER app\n"
    )
    assert rules(text, from_values("550.90", [], "flags")) == {"MLD002": 3}
    assert rules(text, from_values("570.86", [], "flags")) == {}
    with pure():
        (row,) = findings(text, from_values("550.90", [], "flags"))
    assert "570" in row.summary and "whl/cu124" in row.fix


def test_github_annotations_point_at_the_dockerfile_line():
    """In a GitHub workflow the finding shows on the Dockerfile's line in the pull request, not only in the log."""
    from factories import facts

    from mldoctor.image.dockerfile import findings
    from mldoctor.image.targets import from_values
    from mldoctor.output import RenderOptions
    from mldoctor.output import github as github_output
    from mldoctor.policy import Policy
    from mldoctor.runner import build_report

    text = "FROM python:latest\nRUN pip install torch\nUSER root\n"
    rows = findings(text, from_values("550.90", [], "flags"), path="docker/train.Dockerfile")
    report = build_report([], facts(), Policy())
    report.results = rows
    lines = github_output.render(report, RenderOptions()).splitlines()
    latest = next(line for line in lines if "DL3007" in line)
    assert latest.startswith("::warning file=docker/train.Dockerfile,line=1,title=mldoctor image.dockerfile.DL3007::")
    root = next(line for line in lines if "DL3002" in line)
    assert "file=docker/train.Dockerfile,line=3," in root
