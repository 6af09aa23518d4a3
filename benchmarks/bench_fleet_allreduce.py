"""Speed and memory of the all-reduce judgement of `mldoctor fleet run --slurm --allreduce` for 16 to 1,024 nodes.

The pairs grow as n(n-1)/2 (523,776 at 1,024 nodes, the program's limit), so the judgement must stay near linear in
the pairs. Each node's result is built as its task sends it (the whole-set figure and its own n-1 pairs, as
untrusted JSON read by `node_result`); one node is slow in all its pairs, and the others spread by +-5 %. Reading
and judging are timed apart; tracemalloc runs in a second pass, so that its cost does not enter the times.

    python benchmarks/bench_fleet_allreduce.py [--sizes 16,128,512,1024]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from mldoctor.fleet.allreduce import AllreduceRun, judge, node_result
from mldoctor.fleet.document import Document

MIB4 = 4 << 20


def documents(count: int) -> list[Document]:
    nodes = [f"gpu{i:04d}" for i in range(count)]
    rng = random.Random(count)
    pairs: list[list[dict]] = [[] for _ in nodes]
    for a in range(count):
        for b in range(a + 1, count):
            v = (20.0 if 7 in (a, b) else 40.0) * rng.uniform(0.95, 1.05)
            figure = {"busbw_gbps": v, "algbw_gbps": v, "seconds": MIB4 / v / 1e9, "ok": True}
            pairs[a].append({"peer_node": nodes[b], **figure})
            pairs[b].append({"peer_node": nodes[a], **figure})
    whole = {"busbw_gbps": 19.0, "algbw_gbps": 9.5, "seconds": 0.0004, "ok": True}
    docs = []
    for node, mine in zip(nodes, pairs, strict=True):
        data = {"node": node, "stage": "done", "error": None, "backend": "nccl", "device": "cuda", "bytes": MIB4,
                "iters": 20, "whole": whole, "pairs": mine}  # fmt: skip
        docs.append(Document(f"srun:{node}", data, name_hint=node))
    return docs


def measure(count: int) -> str:
    docs = documents(count)
    began = time.perf_counter()
    results = tuple(node_result(d) for d in docs)
    read = time.perf_counter() - began
    began = time.perf_counter()
    verdict = judge(AllreduceRun(results, tuple(r.node for r in results)))
    judged = time.perf_counter() - began
    tracemalloc.start()
    judge(AllreduceRun(tuple(node_result(d) for d in docs), tuple(r.node for r in results)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    suspects = ",".join(s.node for s in verdict.suspects)
    return (f"| {count:,} | {len(verdict.pairs):,} | {read:.2f} s | {judged:.2f} s | {peak / 2**20:.0f} MiB "
            f"| {suspects} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,128,512,1024")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print("| nodes | pairs | read | judge | Python heap, peak | suspects |")
    print("|---:|---:|---:|---:|---:|---|")
    for count in sizes:
        print(measure(count), flush=True)


if __name__ == "__main__":
    main()
