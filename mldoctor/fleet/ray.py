"""Ray: one `mldoctor check` per node through a STRICT_SPREAD placement group, the reports returned as task values.

For Ray-based training shops, whose nodes Ray already reaches. A placement group with one bundle per node and the
STRICT_SPREAD strategy puts exactly one task on each distinct node; each task runs the same node-side code as a
Slurm task (`mldoctor.fleet.task`), named by its Ray node id. ray is an extra (`mldoctor[ray]`) and is imported
only here, only when `--ray` is asked for.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from mldoctor.fleet.document import Document
from mldoctor.fleet.launch import Collection, LaunchError

INSTALL = "python3 -m pip install 'mldoctor[ray]'"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LaunchError(f"--ray needs ray, which is not installed: {INSTALL}") from None
    return ray


def _node_check(check_args: Sequence[str], timeout: float) -> tuple[str, str]:
    """Runs on a Ray node: its node id and its report as JSON text."""
    import ray

    from mldoctor.fleet.task import run_check

    node = ray.get_runtime_context().get_node_id()
    report, _code = run_check(check_args, node, timeout)
    return node, json.dumps(report, separators=(",", ":"))


def collect(
    check_args: Sequence[str], deadline: float, collection: Collection, address: str, nodes: int | None
) -> Iterator[Document]:
    """Yield each node's report as its task returns, until `deadline`; unfinished tasks are cancelled."""
    ray = _import_ray()
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    began = time.monotonic()
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", include_dashboard=False)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError... for "no cluster there"
        raise LaunchError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}") from None
    group = None
    try:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        count = nodes or len(alive)
        if count > len(alive):
            raise LaunchError(f"--ray-nodes {count}, but the Ray cluster has {len(alive)} alive node(s)")
        group = placement_group([{"CPU": 1}] * count, strategy="STRICT_SPREAD")
        ready, _ = ray.wait([group.ready()], timeout=max(1.0, deadline / 2))
        if not ready:
            raise LaunchError(f"Ray could not place {count} tasks on {count} distinct nodes, each with 1 free CPU")
        placed = placement_group_table(group).get("bundles_to_node_id", {})
        collection.expected.update(str(n) for n in placed.values())
        env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
        remote = ray.remote(num_cpus=1, runtime_env={"env_vars": env} if env else None)(_node_check)
        pending = [
            remote.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)
            ).remote(list(check_args), deadline)
            for i in range(count)
        ]
        collection.started.update(collection.expected)
        while pending:
            left = deadline - (time.monotonic() - began)
            if left <= 0:
                collection.timed_out = True
                for ref in pending:
                    ray.cancel(ref, force=True)
                break
            done, pending = ray.wait(pending, num_returns=1, timeout=left)
            for ref in done:
                try:
                    node, text = ray.get(ref)
                except Exception as exc:  # the task died: its node is known only from the placement
                    yield Document("ray", error=f"a Ray task failed: {str(exc).splitlines()[0][:300]}")
                    continue
                collection.reported.add(node)
                yield Document(f"ray:{node}", json.loads(text), name_hint=node)
        collection.returncode = 0 if not collection.timed_out else None
    finally:
        collection.seconds = time.monotonic() - began
        if group is not None:
            remove_placement_group(group)
        ray.shutdown()
