"""Slurm host lists (`node[1-3,07],gpu-a[01-02]-x`) expanded into node names, without calling scontrol.

A task's SLURM_STEP_NODELIST names every node of the step, including those that never print anything; expanding
it locally tells the launcher which nodes to wait for. The input comes from a node's output: it is bounded and a
list that would expand to an absurd number of names is refused.
"""

from __future__ import annotations

import re

MAX_NODES = 100_000
_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


class HostlistError(ValueError):
    pass


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"unbalanced ] in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise HostlistError(f"unbalanced [ in {text!r}")
    parts.append("".join(current))
    return [p for p in parts if p]


def _ranges(spec: str) -> list[str]:
    values = []
    for item in spec.split(","):
        match = _RANGE.fullmatch(item)
        if match is None:
            raise HostlistError(f"not a range: {item!r}")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low) or int(high) - int(low) >= MAX_NODES:
            raise HostlistError(f"a bad range: {item!r}")
        width = len(low) if low.startswith("0") else 0
        values.extend(str(n).zfill(width) for n in range(int(low), int(high) + 1))
    return values


def _expand_one(name: str) -> list[str]:
    start = name.find("[")
    if start < 0:
        return [name]
    end = name.index("]", start)
    heads = [name[:start] + value for value in _ranges(name[start + 1 : end])]
    tails = _expand_one(name[end + 1 :])
    if len(heads) * len(tails) > MAX_NODES:
        raise HostlistError("more than 100,000 nodes")
    return [head + tail for head in heads for tail in tails]


def expand(hostlist: str) -> list[str]:
    """`node[1-3],gpu07` -> ["node1", "node2", "node3", "gpu07"]; HostlistError for what is not a host list."""
    names: list[str] = []
    for part in _split_top(hostlist.strip()):
        names.extend(_expand_one(part))
        if len(names) > MAX_NODES:
            raise HostlistError("more than 100,000 nodes")
    return names
