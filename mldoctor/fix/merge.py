"""Config edits as merges into the daemon's own JSON configuration file: pure functions, no I/O.

A merge never replaces what the file already sets (a user's own `max-size` stays); it adds what is missing, and
refuses a file that is not a JSON object: editing a broken file would only hide what broke it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mldoctor.fixes.docker import DEFAULT_SHM_SIZE

LOG_OPTS = {"max-size": "100m", "max-file": "3"}
LOG_DRIVER = "json-file"
SHM_SIZE = DEFAULT_SHM_SIZE


class Refused(ValueError):
    """The file cannot be merged into safely (not JSON, not an object): the message says why, in one line."""


@dataclass
class Edit:
    """A configuration file's text before and after a merge: whether anything changes, and the diff to show first."""

    path: str
    before: str | None
    """The file's text; None when it does not exist."""
    after: str

    @property
    def changed(self) -> bool:
        return self.before is None or parse(self.before, self.path) != parse(self.after, self.path)

    def diff(self) -> str:
        before = (self.before or "").splitlines(keepends=True)
        after = self.after.splitlines(keepends=True)
        old = "/dev/null" if self.before is None else f"{self.path} (now)"
        return "".join(difflib.unified_diff(before, after, fromfile=old, tofile=f"{self.path} (after the fix)"))


def parse(text: str, path: str) -> dict[str, Any]:
    """The configuration in `text`: an empty file is an empty configuration (dockerd accepts it)."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(
            f"{path} is not valid JSON ({exc}): correct it first, mldoctor does not edit a broken file"
        ) from None
    if not isinstance(data, dict):
        raise Refused(f"{path} holds a JSON {type(data).__name__}, not an object: correct it first")
    return data


def indent_of(text: str | None) -> int:
    """The indentation the file already uses (2 for a new or one-line file)."""
    for line in (text or "").splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped.startswith('"'):
            return max(len(line) - len(stripped), 1)
    return 2


def dump(data: dict[str, Any], indent: int) -> str:
    return json.dumps(data, indent=indent) + "\n"


def with_log_rotation(data: dict[str, Any]) -> dict[str, Any]:
    """`log-driver` json-file when none is set, and `log-opts` max-size/max-file where the file sets none."""
    merged = dict(data)
    merged.setdefault("log-driver", LOG_DRIVER)
    opts = merged.get("log-opts")
    opts = dict(opts) if isinstance(opts, dict) else {}
    for key, value in LOG_OPTS.items():
        opts.setdefault(key, value)
    merged["log-opts"] = opts
    return merged


SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?", re.IGNORECASE)


def size_bytes(value: object) -> int | None:
    """A size as dockerd reads it (`64m`, `16G`, `1.5GiB`, bytes; binary units), None when it is not one."""
    match = SIZE.fullmatch(str(value).strip())
    if match is None:
        return None
    return int(float(match[1]) * 1024 ** " kmgtp".index(match[2].lower() or " "))


def with_shm_size(data: dict[str, Any]) -> dict[str, Any]:
    """`default-shm-size` of SHM_SIZE, unless the file already gives containers as much or more."""
    current = size_bytes(data.get("default-shm-size", ""))
    if current is not None and current >= size_bytes(SHM_SIZE):
        return data
    return {**data, "default-shm-size": SHM_SIZE}


def merged_edit(path: str, before: str | None, merge: Callable[[dict[str, Any]], dict[str, Any]]) -> Edit:
    """The edit `merge` makes to the file's configuration; the result is validated (parsed back)."""
    data = parse(before, path) if before is not None else {}
    after = dump(merge(data), indent_of(before))
    if parse(after, path) != merge(data):  # never write what would not read back the same
        raise Refused(f"the merged {path} does not read back: not written")
    return Edit(path=path, before=before, after=after)


def logging_edit(path: str, before: str | None) -> Edit:
    """The edit that gives the daemon's json-file logs a size limit."""
    return merged_edit(path, before, with_log_rotation)


def shm_edit(path: str, before: str | None) -> Edit:
    """The edit that gives every container SHM_SIZE of /dev/shm by default."""
    return merged_edit(path, before, with_shm_size)
