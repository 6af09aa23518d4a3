"""Small wording and parsing helpers shared by rules, fixes and outputs: sizes, plurals, version numbers, and text
from outside made safe to show.

Kept in one place so that "12.4" compares the same in the driver check, the policy file and the image check.
"""

from __future__ import annotations

import re

GIB = 1 << 30


def gib(nbytes: float) -> str:
    """A size in GiB as people read it: one decimal under 100 GiB, none above."""
    value = nbytes / GIB
    return f"{value:.1f} GiB" if value < 100 else f"{value:.0f} GiB"


def plural(n: int, word: str, plural_form: str = "") -> str:
    """`3 GPUs`, `1 GPU`, `2 NVSwitches` (give the irregular plural)."""
    return f"{n} {word if n == 1 else plural_form or word + 's'}"


def version_tuple(version: str) -> tuple[int, ...]:
    """The numbers of a version string, for comparison: '550.54.15' -> (550, 54, 15); 'API 1.41' -> (1, 41);
    () when it has none. Suffixes such as '+dfsg1' or '-rc1' contribute their digits after the main ones."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


VERSION = re.compile(r"\d+(\.\d+)*")
"""What a version floor in the policy file looks like: 550.54 or 12.4."""


TERMINAL_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
"""ECMA-48 sequences: CSI (`\\x1b[31m`), OSC (a hyperlink or a window title, to BEL or ST) and two-byte escapes."""
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 forbids (C0 controls but tab, newline and CR; surrogates; U+FFFE/U+FFFF), and the ones it
discourages (DEL and the C1 controls)."""


def printable(text: str) -> str:
    """`text` as characters any output may hold (XML 1.0 here; Prometheus labels and Markdown use it too):
    terminal escapes dropped, other controls and lone surrogates shown as `\\xNN` / `\\uNNNN`."""
    return NOT_XML.sub(_visible, TERMINAL_ESCAPE.sub("", text))


def _visible(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str, limit: int = 200) -> str:
    """`text` as one printable line of at most `limit` characters: for echoing untrusted text to a terminal."""
    line = " ".join(printable(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
