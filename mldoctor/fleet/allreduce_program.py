"""mldoctor fleet all-reduce: one rank of a torch.distributed all-reduce across nodes, as one JSON line on stdout.

Self-contained on purpose, like the probe: `mldoctor fleet allreduce-task` injects this file with `python3 -c` into
the probe image (or runs it with the node's own python under `--no-container`), so it may use only the standard
library and torch, and must parse on Python 3.8. Nothing but the JSON line reaches stdout: fd 1 is pointed at
stderr before torch is imported.

One process per node. The ranks meet over TCP at the master (rank 0's node) and agree on the backend there: NCCL
when every rank has a GPU and NCCL, else gloo on the CPU. Then, at one size and a handful of iterations:

- the whole set: every rank in one all-reduce;
- every pair of nodes: n(n-1)/2 two-rank all-reduces, scheduled in rounds (the circle method) so that each node is
  in at most one pair at a time; a barrier of all ranks separates the rounds.

Each figure is the median time of the timed calls, the slowest rank's (a MAX all-reduce over the group), as busbw
= algbw x 2(m-1)/m (nccl-tests' all-reduce bus bandwidth; m ranks in the group). It records facts only: which pair
is slow and which node is the suspect is judged by mldoctor (`mldoctor.fleet.allreduce`).

Settings come from the environment (the node task sets them; torch's own names are read when they are absent):

    MLDOCTOR_ALLREDUCE_RANK / _WORLD     (else SLURM_PROCID / SLURM_NTASKS, else RANK / WORLD_SIZE)
    MLDOCTOR_ALLREDUCE_MASTER / _PORT    (else MASTER_ADDR / MASTER_PORT)
    MLDOCTOR_ALLREDUCE_SECONDS           the deadline, from this program's start (default 60)
    MLDOCTOR_ALLREDUCE_NODE              this node's name (else SLURMD_NODENAME, else the host name)
    MLDOCTOR_ALLREDUCE_BYTES / _ITERS    the size and the timed calls (defaults per backend below)

At the deadline a watchdog prints what was measured so far, with the stage it stopped in, and ends the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import sys
import threading
import time

SCHEMA = "mldoctor-fleet-allreduce"
SCHEMA_VERSION = 1
SIZES = {"gloo": 4 << 20, "nccl": 256 << 20}
"""Bytes per all-reduce (float32 elements): a few MiB on the CPU, enough to reach the fabric's rate on GPUs."""
ITERS = {"gloo": 5, "nccl": 20}
"""Timed calls per figure, after one untimed call that also checks the sums."""
DEFAULT_SECONDS = 60.0
MAX_TEXT = 1000
NAME_BYTES = 128
MAX_BYTES, MAX_ITERS = 4 << 30, 1000
"""What the environment may ask for (0: the backend's default)."""
MAX_WORLD = 1024
"""Pairs grow as n^2: 1024 nodes are 523,776 pairs in 1023 rounds; beyond that, run it on subsets."""


def rounds(world):
    """Every pair of ranks once, in rounds where each rank is in at most one pair: the circle method (rank 0 stays,
    the others rotate; with an odd count a ghost rank sits one rank out each round). world-1 rounds, or world with an
    odd count; each pair as (low, high)."""
    ranks = list(range(world)) + ([None] if world % 2 else [])
    count = len(ranks)
    schedule = []
    for _ in range(count - 1):
        pairs = []
        for i in range(count // 2):
            a, b = ranks[i], ranks[count - 1 - i]
            if a is not None and b is not None:
                pairs.append((min(a, b), max(a, b)))
        schedule.append(sorted(pairs))
        ranks = [ranks[0], ranks[-1], *ranks[1:-1]]
    return [r for r in schedule if r]


def busbw_factor(members):
    return 2.0 * (members - 1) / members


def _first(environ, *names):
    for name in names:
        value = environ.get(name)
        if value not in (None, ""):
            return value
    return None


def bounded(value, low, high, name):
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is not between {low} and {high}")
    return value


def settings(environ):
    """The run's settings from the environment; ValueError naming what is missing or wrong."""

    def number(kind, *names, default=None):
        value = _first(environ, *names)
        if value is None:
            if default is None:
                raise ValueError(f"{names[0]} is not set (nor {', '.join(names[1:])})")
            return default
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{names[0]}={value[:40]!r} is not a number") from None

    rank = number(int, "MLDOCTOR_ALLREDUCE_RANK", "SLURM_PROCID", "RANK")
    world = number(int, "MLDOCTOR_ALLREDUCE_WORLD", "SLURM_NTASKS", "WORLD_SIZE")
    if not 2 <= world <= MAX_WORLD or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of {world}: an all-reduce across nodes needs 2 to {MAX_WORLD} ranks")
    master = _first(environ, "MLDOCTOR_ALLREDUCE_MASTER", "MASTER_ADDR")
    if master is None:
        raise ValueError("MLDOCTOR_ALLREDUCE_MASTER is not set (nor MASTER_ADDR)")
    port = number(int, "MLDOCTOR_ALLREDUCE_PORT", "MASTER_PORT")
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    node = _first(environ, "MLDOCTOR_ALLREDUCE_NODE", "SLURMD_NODENAME") or socket.gethostname().split(".")[0]
    return {
        "rank": rank, "world": world, "master": master, "port": port, "node": node[:NAME_BYTES],
        "seconds": max(1.0, number(float, "MLDOCTOR_ALLREDUCE_SECONDS", default=DEFAULT_SECONDS)),
        "bytes": bounded(number(int, "MLDOCTOR_ALLREDUCE_BYTES", default=0), 0, MAX_BYTES, "MLDOCTOR_ALLREDUCE_BYTES"),
        "iters": bounded(number(int, "MLDOCTOR_ALLREDUCE_ITERS", default=0), 0, MAX_ITERS, "MLDOCTOR_ALLREDUCE_ITERS"),
        "local_rank": number(int, "SLURM_LOCALID", "LOCAL_RANK", default=0),
    }  # fmt: skip


class Run:
    """What this rank has measured so far, printed exactly once: at the end, or by the watchdog at the deadline."""

    def __init__(self, out, started):
        self.out, self.started = out, started
        self.lock = threading.Lock()
        self.printed = False
        self.doc = {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "node": None, "rank": None, "world": None,
            "stage": "start", "error": None, "backend": None, "device": None, "bytes": 0, "iters": 0, "torch": None,
            "nodes": [], "whole": None, "pairs": [], "elapsed_s": 0.0,
        }  # fmt: skip

    def stage(self, name):
        self.doc["stage"] = name

    def finish(self, error=None):
        with self.lock:
            if self.printed:
                return
            self.printed = True
            if error and not self.doc["error"]:
                self.doc["error"] = str(error)[:MAX_TEXT]
            self.doc["elapsed_s"] = round(time.monotonic() - self.started, 3)
            self.out.write("\n" + json.dumps(self.doc, sort_keys=True) + "\n")
            self.out.flush()


def _claim_stdout():
    """Keep the real stdout for the result and send everything else (Python and C level) to stderr."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(real, "w")


def main():
    run = Run(_claim_stdout(), time.monotonic())
    try:
        config = settings(os.environ)
    except ValueError as exc:
        run.finish(f"settings: {exc}")
        os._exit(0)
    run.doc.update(node=config["node"], rank=config["rank"], world=config["world"])
    deadline = run.started + config["seconds"]

    def watchdog():
        time.sleep(max(0.0, deadline - time.monotonic()))
        run.finish(f"deadline of {config['seconds']:g} s reached in stage {run.doc['stage']}")
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        measure(config, run, deadline)
        run.stage("done")
        run.finish()
    except BaseException as exc:  # the line must come out whatever happened; the error is a fact
        run.finish(f"{type(exc).__name__}: {exc}")
    os._exit(0)  # a backend's teardown can hang too


def measure(config, run, deadline):
    import datetime

    run.stage("import")
    try:
        import torch
        import torch.distributed as dist
    except ImportError as exc:
        raise RuntimeError(f"torch is not importable by {sys.executable}: {exc}") from None

    run.doc["torch"] = str(torch.__version__)[:64]
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    rank, world = config["rank"], config["world"]
    run.stage("init")
    timeout = datetime.timedelta(seconds=max(1.0, deadline - time.monotonic()))
    dist.init_process_group(
        "gloo", init_method=f"tcp://{config['master']}:{config['port']}", rank=rank, world_size=world, timeout=timeout
    )
    run.stage("joined")
    gpu = torch.cuda.is_available() and dist.is_nccl_available()
    everyone = _exchange(torch, dist, world, config["node"], gpu)
    run.doc["nodes"] = [node for node, _ in everyone]
    backend = "nccl" if all(has_gpu for _, has_gpu in everyone) else "gloo"
    if backend == "nccl":
        device = torch.device("cuda", config["local_rank"] % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    nbytes = config["bytes"] or SIZES[backend]
    iters = config["iters"] or ITERS[backend]
    run.doc.update(backend=backend, device=device.type, bytes=nbytes, iters=iters)
    run.stage("groups")
    schedule = rounds(world)
    whole = dist.new_group(list(range(world)), backend=backend)
    groups = {pair: dist.new_group(list(pair), backend=backend) for pairs in schedule for pair in pairs}
    run.stage("whole")
    run.doc["whole"] = _timed(torch, dist, whole, list(range(world)), rank, nbytes, iters, device)
    for number, pairs in enumerate(schedule, 1):
        run.stage(f"pairs {number}/{len(schedule)}")
        for pair in pairs:
            if rank in pair:
                figure = _timed(torch, dist, groups[pair], list(pair), rank, nbytes, iters, device)
                peer = pair[1] if pair[0] == rank else pair[0]
                figure.update(peer_rank=peer, peer_node=run.doc["nodes"][peer], round=number)
                run.doc["pairs"].append(figure)
                _release(dist, groups.pop(pair))
        dist.barrier()  # the next round starts together: no node is in two pairs at once


def _release(dist, group):
    """Free a pair's communicator once its round is over: NCCL keeps buffers per communicator on the GPU, and a rank
    is in n-1 pairs."""
    with contextlib.suppress(Exception):  # an older torch without subgroup teardown: the memory stays, no worse
        dist.destroy_process_group(group)


def _exchange(torch, dist, world, node, gpu):
    """Every rank's node name and whether it can take part with NCCL, as (name, gpu) by rank: fixed-size byte
    tensors (all_gather_object would need numpy, which a CPU image may lack)."""
    mine = torch.zeros(NAME_BYTES + 1, dtype=torch.uint8)
    name = node.encode("utf-8", "replace")[:NAME_BYTES]
    mine[: len(name)] = torch.tensor(list(name), dtype=torch.uint8)
    mine[NAME_BYTES] = int(gpu)
    everyone = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(everyone, mine)
    found = []
    for tensor in everyone:
        values = tensor.tolist()
        found.append((bytes(values[:NAME_BYTES]).rstrip(b"\0").decode("utf-8", "replace"), bool(values[NAME_BYTES])))
    return found


def _timed(torch, dist, group, members, rank, nbytes, iters, device):
    """One figure for `group`: an untimed call that checks the sums, then `iters` timed calls; the median time, the
    slowest rank's."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    size = len(members)
    data = torch.full((nbytes // 4,), float(rank + 1), dtype=torch.float32, device=device)
    dist.all_reduce(data, group=group)
    sync()
    ok = bool((data == float(sum(m + 1 for m in members))).all())
    data.fill_(1.0 / size)  # the sum stays 1: as many calls as wanted, never an overflow or a denormal
    flag = torch.ones(1, dtype=torch.float32, device=device)
    dist.all_reduce(flag, group=group)  # every rank starts the timed calls together
    sync()
    times = []
    for _ in range(iters):
        started = time.perf_counter()
        dist.all_reduce(data, group=group)
        sync()
        times.append(time.perf_counter() - started)
    outcome = torch.tensor([statistics.median(times), 0.0 if ok else 1.0], dtype=torch.float32, device=device)
    dist.all_reduce(outcome, op=dist.ReduceOp.MAX, group=group)  # the slowest rank's time; any rank's wrong sum
    sync()
    seconds, wrong = max(float(outcome[0].item()), 1e-9), bool(outcome[1].item())
    algbw = nbytes / seconds / 1e9
    del data
    busbw = algbw * busbw_factor(size)
    return {"ranks": size, "seconds": seconds, "algbw_gbps": algbw, "busbw_gbps": busbw, "ok": not wrong}


if __name__ == "__main__":
    main()
