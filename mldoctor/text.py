"""Small wording and parsing helpers shared by rules, fixes and outputs: sizes, plurals, version numbers.

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
