"""Reports carried through an engine's own output: short framed lines, reassembled per node.

`srun` merges the stdout of every task into its own, and a long line (a report is tens of KiB) can reach it in
pieces interleaved with other tasks' pieces. So a node's report travels as short self-describing lines, each whole
on its own, that survive any interleaving and any unrelated output around them (a login banner, a module's warning):

    @mldoctor-fleet NODE start NODELIST       the task began (NODELIST: the step's nodes, so silent ones are known)
    @mldoctor-fleet NODE I/N CHUNK            chunk I of N of the report: zlib-compressed JSON, base64

`kubectl logs` or a saved srun log can be read the same way (`mldoctor fleet -` understands these lines).
Everything received is untrusted: names are bounded tokens, chunk counts and the inflated size are capped.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mldoctor.fleet.document import MAX_DOCUMENT, Document
from mldoctor.fleet.text import bounded

MARKER = "@mldoctor-fleet"
CHUNK = 600
"""Base64 characters per line: well below the 1 KiB pieces in which Slurm forwards a task's output."""
MAX_CHUNKS = (MAX_DOCUMENT // CHUNK) + 1
MAX_NODELIST = 4096
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
_LINE = re.compile(rf"{MARKER} (\S+) (start|(\d{{1,7}})/(\d{{1,7}}))(?: (\S*))?\s*$")


def encode(node: str, document: dict[str, Any]) -> list[str]:
    """The lines that carry `document` for `node` (without the start line)."""
    packed = base64.b64encode(zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)).decode()
    pieces = [packed[i : i + CHUNK] for i in range(0, len(packed), CHUNK)] or [""]
    return [f"{MARKER} {node} {i}/{len(pieces)} {piece}" for i, piece in enumerate(pieces)]


def start_line(node: str, nodelist: str) -> str:
    return f"{MARKER} {node} start {nodelist or '-'}"


def is_frame(line: str) -> bool:
    return line.startswith(MARKER + " ")


def valid_node(name: str) -> bool:
    return bool(_NODE.fullmatch(name))


def _inflate(packed: str) -> bytes:
    inflater = zlib.decompressobj()
    data = inflater.decompress(base64.b64decode(packed, validate=True), MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT or inflater.unconsumed_tail:
        raise ValueError(f"the report is larger than {MAX_DOCUMENT >> 20} MiB")
    return data


@dataclass
class Assembler:
    """Feed it lines; it yields a Document once all of a node's chunks have come, and remembers who started."""

    origin: str
    started: dict[str, str] = field(default_factory=dict)
    """node -> the NODELIST its start line named."""
    _chunks: dict[str, dict[int, str]] = field(default_factory=dict)
    _total: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def feed(self, line: str) -> Iterator[Document]:
        match = _LINE.match(line)
        if match is None:
            if is_frame(line):
                yield Document(self.origin, error=f"a malformed {MARKER} line: {bounded(line, 80)}")
            return
        node, kind, index, total, payload = match.groups()
        if not valid_node(node):
            yield Document(self.origin, error=f"a {MARKER} line for an invalid node name {bounded(node, 80)!r}")
            return
        if kind == "start":
            self.started[node] = (payload or "")[:MAX_NODELIST]
            return
        if node in self.done:
            return
        count, at = int(total), int(index)
        if not 0 < count <= MAX_CHUNKS or at >= count or self._total.setdefault(node, count) != count:
            self.done.add(node)
            yield Document(f"{self.origin}:{node}", error="inconsistent chunk numbers", name_hint=node)
            return
        chunks = self._chunks.setdefault(node, {})
        chunks[at] = payload or ""
        if len(chunks) == count:
            yield self._document(node)

    def _document(self, node: str) -> Document:
        chunks = self._chunks.pop(node)
        self.done.add(node)
        origin = f"{self.origin}:{node}"
        try:
            data = json.loads(_inflate("".join(chunks[i] for i in range(len(chunks)))))
        except (ValueError, binascii.Error, zlib.error, UnicodeDecodeError) as exc:
            return Document(origin, error=f"a report that cannot be decoded: {bounded(exc, 200)}", name_hint=node)
        if isinstance(data, dict) and set(data) <= {"node", "error"} and isinstance(data.get("error"), str):
            return Document(origin, error=f"on the node: {bounded(data['error'], 500)}", name_hint=node)
        return Document(origin, data, name_hint=node)

    def unfinished(self) -> Iterator[Document]:
        """Nodes whose report was cut off (some chunks came, not all)."""
        for node, chunks in sorted(self._chunks.items()):
            got, total = len(chunks), self._total.get(node, 0)
            yield Document(f"{self.origin}:{node}", error=f"the report was cut off ({got} of {total} parts came)",
                           name_hint=node)  # fmt: skip
        self._chunks.clear()
