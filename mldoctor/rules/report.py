"""The saved report being re-diagnosed (`check --facts`): where it came from, and whether it was changed after
mldoctor wrote it. A live run has no such report: the check does not apply and shows no row."""

from __future__ import annotations

from mldoctor.facts import Facts
from mldoctor.model import Finding
from mldoctor.policy import Policy
from mldoctor.rules.registry import check


@check("report.integrity", "Saved report integrity")
def report_integrity(facts: Facts, policy: Policy) -> Finding | None:
    origin = facts.origin
    if origin is None:
        return None
    made = f"made on {origin.host or '?'} at {origin.created or '?'} by mldoctor {origin.tool_version or '?'}"
    if not origin.altered:
        return Finding.ok(f"offline re-diagnosis of {origin.path}, {made}")
    shown = ", ".join(origin.altered[:5]) + (f" and {len(origin.altered) - 5} more" if len(origin.altered) > 5 else "")
    return Finding.warn(
        f"{origin.path} was altered after mldoctor wrote it: {shown} "
        f"{'does' if len(origin.altered) == 1 else 'do'} not match its manifest.json; the findings below rest on "
        "what was changed",
        fix=f"ask for a fresh bundle, made on {origin.host or 'the host'}: mldoctor report",
        details=(made,),
    )
