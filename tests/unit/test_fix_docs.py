"""docs/fixes.md and docs/checks.md count the Docker fixes the same way, and every proof they name is a test of
the sandbox suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXES_MD = (ROOT / "docs" / "fixes.md").read_text()
CHECKS_MD = (ROOT / "docs" / "checks.md").read_text()
PROOFS = ROOT / "tests" / "sandbox" / "test_fix_proofs.py"


def table() -> tuple[int, int, set[str]]:
    proven = manual = 0
    proofs = set()
    for row in (line for line in FIXES_MD.splitlines() if line.startswith("| `docker.")):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if "**proven**" in cells[3]:
            proven += 0 if "counted once" in cells[3] else 1
            proofs.add(cells[4].strip("`"))
        else:
            counted = re.search(r"\((\d+)\)", cells[1])
            manual += int(counted.group(1)) if counted else 1
    return proven, manual, proofs


def test_counts_agree():
    proven, manual, _ = table()
    assert f"**Docker: {proven} fixes proven, {manual} manual.**" in FIXES_MD
    assert f"Docker fixes: **{proven} proven, {manual} manual**" in CHECKS_MD
    lines = re.findall(r"^\*\*Fixes:\*\* (.*)$", CHECKS_MD.split("## NVIDIA")[0], re.MULTILINE)
    assert sum(int(n) for line in lines for n in re.findall(r"proven \((\d+)\)", line)) == proven
    assert sum(int(n) for line in lines for n in re.findall(r"[Mm]anual \((\d+)\)", line)) == manual


def test_every_named_proof_is_a_sandbox_test():
    tests = {node.name for node in ast.parse(PROOFS.read_text()).body if isinstance(node, ast.FunctionDef)}
    _, _, proofs = table()
    assert proofs and proofs <= tests, proofs - tests
