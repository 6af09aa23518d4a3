"""A fix as data: the rules write a fix as lines (`sudo` marks what needs root, `   # ` starts a line's note); here
it becomes the text this host's user types (`for_host`), its steps, and what applying it does beyond its lines."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mldoctor.facts.host import HostFacts
from mldoctor.fixes.host import AS_ROOT, SUDO, for_host
from mldoctor.model import Step

NOTE = "   # "
"""Where a step's note begins: three spaces and a hash, as every fix writes it (a `#` inside a command, say in a
URL, is not one)."""

_EFFECTS = {
    "relogin": re.compile(r"log out and back in|log in again|\bnewgrp\b|new login"),
    "restarts-docker": re.compile(
        r"\b(systemctl|rc-service|snap)\s+restart\s+\S*docker|\bservice\s+docker\s+restart|started by hand"
        r"|\bfix \S+ --yes --restart\b"  # `mldoctor fix CHECK --yes --restart` restarts the daemon its own way
    ),
    "reboot": re.compile(r"\breboot\b"),
}


@dataclass(frozen=True)
class PlannedFix:
    """A fix as this host's user types it: its text, one step per line, and what applying it does beyond its lines
    (keys of model.EFFECTS)."""

    text: str
    steps: list[Step]
    effects: list[str]


def plan(fix: str, host: HostFacts | None) -> PlannedFix:
    """`fix` for this host: its text, one step per non-empty line, and its effects (keys of model.EFFECTS)."""
    text = for_host(fix, host)
    steps = []
    for written, typed in zip(fix.split("\n"), text.split("\n"), strict=True):
        if not typed.strip():
            continue
        command, _, note = typed.partition(NOTE)
        steps.append(
            Step(
                command=command.strip(),
                as_root=bool(SUDO.search(written)) or typed.startswith(AS_ROOT),
                note=note.strip(),
            )
        )
    effects = [name for name, pattern in _EFFECTS.items() if any(pattern.search(step.command) for step in steps)]
    if "relogin" not in effects and any(_EFFECTS["relogin"].search(step.note) for step in steps):
        effects.insert(0, "relogin")  # "usermod -aG docker USER   # then log out and back in"
    return PlannedFix(text, steps, effects)
