"""`mldoctor explain "<error text>"`: the support desk's question, "what does this mean?", answered from the same
catalogue the checks use: the cause, the check that detects it, the fix, and where it was seen.

Pasted text is untrusted: read up to a bound, matched in linear time, and echoed only as a short, printable snippet
(a pasted terminal escape sequence must not reach the reader's terminal).
"""

from __future__ import annotations

import json
import sys

import click

from mldoctor import catalogue
from mldoctor.text import one_line

LIMIT = 1 << 20
"""The most of a pasted error that is read (a whole log pasted by mistake is cut, not refused)."""


def explanations(text: str) -> list[dict[str, object]]:
    """The catalogue entries found in `text`, with the words that matched."""
    found = []
    for entry in catalogue.match(text):
        matched = entry.pattern.search(text)
        found.append(
            {
                "id": entry.id,
                "matched": one_line(matched.group(0) if matched else ""),
                "cause": entry.cause,
                "check": entry.check,
                "fix": entry.fix,
                "seen_in": list(entry.threads),
            }
        )
    return found


def _render(found: list[dict[str, object]]) -> str:
    if not found:
        return (
            "mldoctor does not know this error text yet.\n"
            "mldoctor check   # examines this machine link by link and names the first broken one\n"
            "mldoctor report  # a redacted bundle to attach to a support ticket\n"
        )
    blocks = []
    for item in found:
        seen = ", ".join(item["seen_in"]) if item["seen_in"] else ""  # type: ignore[arg-type]
        lines = [
            f"{item['matched']}",
            f"  cause:   {item['cause']}",
            f"  check:   {item['check']}   (mldoctor check --only {item['check']} checks this machine)",
            f"  fix:     {item['fix']}",
        ]
        if seen:
            lines.append(f"  seen in: {seen}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


@click.command("explain")
@click.argument("error", metavar="ERROR_TEXT")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def command(error: str, fmt: str) -> int:
    """Explain an error text (quote it, or give - to read it from stdin): its cause, the check that detects it,
    and the fix. Exit 0 when mldoctor knows it, 1 when it does not."""
    text = sys.stdin.read(LIMIT) if error == "-" else error[:LIMIT]
    if not text.strip():
        raise click.BadParameter("empty: paste the error text, or pipe it in with -", param_hint="'ERROR_TEXT'")
    found = explanations(text)
    if fmt == "json":
        click.echo(json.dumps({"known": bool(found), "matches": found}, indent=2))
    else:
        click.echo(_render(found), nl=False)
    return 0 if found else 1
