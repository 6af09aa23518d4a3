"""`mldoctor explain`: a pasted error text -> cause, detecting check, fix; from the catalogue the checks use."""

from __future__ import annotations

import io
import json

import pytest
from helpers import call
from test_catalogue import FIELD_REPORT

from mldoctor import explain
from mldoctor.catalogue import CATALOGUE


@pytest.mark.parametrize(("text", "check_id"), FIELD_REPORT, ids=[t[:40] for t, _ in FIELD_REPORT])
def test_every_field_report_text_is_explained(capsys, text, check_id):
    code, out, err = call(capsys, "explain", text, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["known"] and err == ""
    assert data["matches"][0]["check"] == check_id and data["matches"][0]["fix"]


def test_explain_knows_every_catalogue_text(capsys):
    for entry in CATALOGUE:
        code, out, _ = call(capsys, "explain", entry.example)
        assert code == 0 and f"check:   {entry.check}" in out, entry.id


def test_an_unknown_text_says_so_and_points_at_check(capsys):
    code, out, _ = call(capsys, "explain", "segmentation fault in my own code")
    assert code == 1 and "does not know this error text" in out and "mldoctor check" in out


def test_empty_input_is_a_usage_error(capsys):
    code, out, err = call(capsys, "explain", "   ")
    assert code == 2 and out == "" and err.count("\n") == 1 and "paste the error text" in err


def test_stdin_is_read_and_bounded(capsys, monkeypatch):
    pasted = "x" * (2 * explain.LIMIT) + "nvml error: driver not loaded"  # the match lies past the bound
    monkeypatch.setattr("sys.stdin", io.StringIO(pasted))
    code, _, _ = call(capsys, "explain", "-")
    assert code == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("noise\nnvidia-container-cli: nvml error: driver not loaded\n"))
    code, out, _ = call(capsys, "explain", "-")
    assert code == 0 and "nvidia.driver" in out


def test_pasted_escape_sequences_never_reach_the_terminal(capsys):
    """The matched words are echoed: an escape sequence inside them is shown as spaces, not executed."""
    code, out, _ = call(
        capsys, "explain", 'could not select device driver "\x1b]0;owned\x07\x1b[2J" with capabilities: [[gpu]]'
    )
    assert code == 0 and "could not select device driver" in out
    assert "\x1b" not in out and "\x07" not in out
