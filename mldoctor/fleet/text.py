"""Untrusted text from reports, bounded and made safe where it goes.

Every string in a per-node report was written by another machine (and partly by whatever that machine's daemon,
driver or image printed), so it is bounded when a summary is taken and escaped again for each destination.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
"""C0/C1 control characters except tab and newline (terminal escapes, NULs), lone surrogates (JSON can carry them,
no UTF-8 output can) and what else XML 1.0 forbids."""
_SPACES = re.compile(r"\s+")
_NOT_IN_REASON = re.compile(r"[\"'`$\\!;<>|&*?\[\]{}]")
"""What a double-quoted shell word or a Slurm reason must not carry: quotes, expansions, history, globs."""
_NOT_IN_TOKEN = re.compile(r"[^A-Za-z0-9._-]+")


def bounded(text: object, limit: int, keep_newlines: bool = False) -> str:
    """`text` as a string without control characters, at most `limit` characters (an ellipsis marks a cut)."""
    value = str(text)
    if len(value) <= limit and value.isprintable() and "  " not in value and value == value.strip():
        return value  # the common case, ten thousand reports long: nothing to change
    value = _CONTROL.sub(" ", value)
    if not keep_newlines:
        value = _SPACES.sub(" ", value).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def one_line(text: str) -> str:
    """A single line, for places where a newline would start a new record (a table row, a label)."""
    return _SPACES.sub(" ", text).strip()


def shell_reason(text: str, limit: int = 100) -> str:
    """Text safe inside a double-quoted shell word and as a Slurm drain reason: printable, no quote, no `$`,
    backtick, backslash, `!` or glob, one line, bounded. Untrusted summaries reach an operator's shell this way."""
    cleaned = _NOT_IN_REASON.sub("", bounded(text, 10 * limit))
    return bounded(cleaned, limit)


def token(text: str, limit: int = 63, fallback: str = "unknown") -> str:
    """A label-safe token (letters, digits, `.`, `_`, `-`), such as a Kubernetes taint value or a check id."""
    value = _NOT_IN_TOKEN.sub("-", text)[:limit].strip("._-")
    return value or fallback


def natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: node2 before node10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)
