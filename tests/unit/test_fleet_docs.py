"""Every `mldoctor fleet [COMMAND] …` written in docs/fleet.md and docs/ci.md uses options that command has.

Each occurrence anywhere in a line is checked (`salloc -N16 mldoctor fleet run …`, `… | mldoctor fleet - …`), against
the subcommand it names, or the aggregating command itself; the words after a bare `--` are srun's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mldoctor.fleet.command import fleet

DOCS = Path(__file__).parents[2] / "docs"
STOP = {"|", "--", "#", ")", ";", "&&", ">"}


def invocations(text: str) -> list[tuple[str, list[str]]]:
    """(subcommand or "", the option words) for each `mldoctor fleet` in `text`."""
    found = []
    for match in re.finditer(r"mldoctor fleet ((?:\\\n|[^\n`|;)])*)", text):
        line = match.group(1).replace("\\\n", " ")
        try:
            words = shlex.split(line, comments=True)  # a quoted --check-args "…" is one word
        except ValueError:
            words = line.split()
        command = words[0] if words and words[0] in fleet.subcommands else ""
        options = []
        for word in words[1 if command else 0 :]:
            if word in STOP or word.startswith("#"):
                break
            if word.startswith("--") and " " not in word:  # not a quoted value such as --check-args "--x y"
                options.append(word.split("=")[0])
        found.append((command, options))
    return found


@pytest.mark.parametrize("name", ["fleet.md", "ci.md"])
def test_documented_fleet_commands_use_real_options(name):
    text = (DOCS / name).read_text()
    seen = invocations(text)
    assert seen, f"no mldoctor fleet command in docs/{name}"
    for command, options in seen:
        target = fleet.subcommands[command] if command else fleet
        known = {opt for param in target.params for opt in param.opts} | {"--help"}
        for option in options:
            assert option in known, f"docs/{name}: {option} is not an option of mldoctor fleet {command}".rstrip()


def test_every_subcommand_is_documented():
    text = (DOCS / "fleet.md").read_text()
    documented = {command for command, _ in invocations(text)}
    public = {name for name, command in fleet.subcommands.items() if not command.hidden}
    assert public <= documented, f"not shown in docs/fleet.md: {sorted(public - documented)}"


def test_the_checker_sees_a_wrong_option():
    assert invocations("salloc -N2 mldoctor fleet run --slurm --bogus -- -N3 --not-ours") == [
        ("run", ["--slurm", "--bogus"])
    ]
