"""Nodes to drain: one line per failing node, with the command each engine takes to keep jobs off it.

The reason is read by Slurm and shown by `sinfo -R`; the commands are pasted into an operator's shell. Both come
from untrusted report text, so the node name is shell-quoted, the check id reduced to a token, and the summary
stripped of quotes, expansions and newlines and bounded before it is put between double quotes.
Only a FAIL drains: a node whose run could not complete (ERROR) or sent no report is not known to be broken.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from mldoctor.fleet.node import Link
from mldoctor.fleet.text import shell_reason, token

REASON_LIMIT = 100


@dataclass(frozen=True, slots=True)
class DrainLine:
    """One failing node to drain: its first broken link and the commands that keep jobs off it (Slurm, kubectl
    cordon and taint), made safe to paste."""

    node: str
    check: str
    summary: str
    fix: str
    slurm: str
    cordon: str
    taint: str

    @property
    def commands(self) -> tuple[str, str, str]:
        return self.slurm, self.cordon, self.taint


def reason(link: Link) -> str:
    """`mldoctor: <check>: <summary>`, safe between double quotes in a shell and as a Slurm reason."""
    return shell_reason(f"mldoctor: {token(link.check)}: {link.summary}", REASON_LIMIT)


def drain_line(node: str, link: Link) -> DrainLine:
    quoted = shlex.quote(node)
    check = token(link.check)
    return DrainLine(
        node=node,
        check=link.check,
        summary=link.summary,
        fix=link.fix,
        slurm=f'scontrol update nodename={quoted} state=drain reason="{reason(link)}"',
        cordon=f"kubectl cordon {quoted}",
        taint=f"kubectl taint nodes {quoted} mldoctor={check}:NoSchedule --overwrite",
    )
