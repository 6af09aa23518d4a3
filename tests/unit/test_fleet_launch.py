"""Collecting reports from an engine's output: noise and garbage around the frames, a bounded stderr, who is
expected, and what a task that dies mid-report leaves."""

from __future__ import annotations

import json
import sys

from test_fleet import node_report

from mldoctor.fleet import frames
from mldoctor.fleet.launch import STDERR_LINES, Collection, Expected, collect


def engine(tmp_path, lines: list[str], stderr_lines: int = 0, exit_code: int = 0) -> list[str]:
    """A stand-in engine: prints `lines` (and many stderr lines), then exits with `exit_code`."""
    (tmp_path / "out.json").write_text(json.dumps(lines))
    code = (
        "import json, sys\n"
        f"for i in range({stderr_lines}): print('srun: noise', i, file=sys.stderr)\n"
        f"for line in json.load(open({str(tmp_path / 'out.json')!r})): print(line, flush=True)\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, "-c", code]


def test_frames_among_noise_and_a_bounded_stderr(tmp_path):
    report = node_report("gpu-7")
    lines = [
        "Welcome to gpu-7",
        frames.start_line("gpu-7", "gpu-[7-9]"),
        "x" * 100_000,
        *frames.encode("gpu-7", report),
        "@mldoctor-fleet gpu-8 start gpu-[7-9]",
        *frames.encode("gpu-8", report)[:1],  # gpu-8 dies after its first chunk
    ]
    collection = Collection(["engine"])
    documents = list(collect(engine(tmp_path, lines, stderr_lines=500, exit_code=1), 60, collection))
    assert [(d.name_hint, d.error) for d in documents] == [
        ("gpu-7", None),
        ("gpu-8", f"the report was cut off (1 of {len(frames.encode('gpu-8', report))} parts came)"),
    ]
    assert documents[0].data == report
    assert collection.started == {"gpu-7", "gpu-8"}
    assert collection.nodes() == ["gpu-7", "gpu-8", "gpu-9"]  # gpu-9 never said a word: expected all the same
    assert list(Expected(collection, ["gpu-10"])) == ["gpu-7", "gpu-8", "gpu-9", "gpu-10"]
    assert collection.silent == ["gpu-9"]
    assert len(collection.stderr) == STDERR_LINES and collection.stderr[-1] == "srun: noise 499"
    assert (collection.returncode, collection.timed_out) == (1, False)


def test_an_engine_that_prints_nothing_by_the_deadline_is_stopped(tmp_path):
    collection = Collection(["engine"])
    hang = [sys.executable, "-c", "import time; print('@mldoctor-fleet n1 start n[1-2]', flush=True); time.sleep(300)"]
    assert list(collect(hang, 2, collection)) == []
    assert collection.timed_out
    assert collection.returncode is not None and collection.returncode < 0  # ended by a signal
    assert collection.silent == ["n1", "n2"]
    assert collection.seconds < 15
