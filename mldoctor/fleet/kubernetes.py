"""Kubernetes: manifests that run the node-side task on GPU nodes, and a small YAML writer to print them.

Nothing here talks to a cluster (the `kubernetes` package is not needed; the tests load the manifests with its
models). Two shapes, as the cluster-health tools use them:

- a sweep: an Indexed Job, one pod per node (required pod anti-affinity on the host name), `completions` pods;
- continuous: a DaemonSet on every GPU node, re-checking every INTERVAL seconds.

Each pod learns its node's name from the downward API (`NODE_NAME` = `spec.nodeName`), which the task puts in the
report; the reports travel in the pods' logs as `@mldoctor-fleet` lines, which `mldoctor fleet -` reads:
`kubectl logs -l mldoctor.io/run=NAME --tail=-1 --prefix=false | mldoctor fleet -`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

APP_LABEL = "app.kubernetes.io/name"
RUN_LABEL = "mldoctor.io/run"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_CHECK_ARGS = ("--skip", "docker", "--no-container")
"""A pod has no Docker daemon of its own: the host, NVIDIA and probe checks, the probe running in the pod."""


@dataclass(frozen=True)
class ManifestOptions:
    """What the Kubernetes manifests (the sweep's Job, the DaemonSet) are made from: the image, names, sizes,
    the check's arguments and where the pods may run."""

    image: str
    name: str = "mldoctor"
    namespace: str = "default"
    nodes: int = 1
    """Sweep size: the Job's completions (and parallelism)."""
    gpus: int = 8
    """GPUs requested per pod: every GPU of the node, so the check sees them all."""
    check_args: tuple[str, ...] = DEFAULT_CHECK_ARGS
    deadline: int = 900
    interval: int = 3600
    """Seconds between checks in the DaemonSet."""
    runtime_class: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)


def _labels(options: ManifestOptions) -> dict[str, str]:
    return {APP_LABEL: "mldoctor", RUN_LABEL: options.name}


def _pod_spec(options: ManifestOptions, task_options: list[str], restart: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "mldoctor",
        "image": options.image,
        "command": ["python3", "-m", "mldoctor"],
        "args": ["fleet", "task", *task_options, "--", *options.check_args],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    }
    if options.gpus:
        container["resources"] = {"limits": {GPU_RESOURCE: str(options.gpus)}}
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container],
    }
    if options.node_selector:
        spec["nodeSelector"] = dict(options.node_selector)
    if options.runtime_class:
        spec["runtimeClassName"] = options.runtime_class
    return spec


def job(options: ManifestOptions) -> dict[str, Any]:
    """A sweep: one pod on each of `nodes` distinct nodes (required anti-affinity on the host name)."""
    spec = _pod_spec(options, [], "Never")
    spec["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": _labels(options)}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": options.name, "namespace": options.namespace, "labels": _labels(options)},
        "spec": {
            "completionMode": "Indexed",
            "completions": options.nodes,
            "parallelism": options.nodes,
            "backoffLimit": 0,
            "activeDeadlineSeconds": options.deadline,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": _labels(options)}, "spec": spec},
        },
    }


def daemonset(options: ManifestOptions) -> dict[str, Any]:
    """Continuous: a pod on every (selected) node, re-checking every `interval` seconds."""
    # a check that hangs is given up after one interval, so the next round still comes
    spec = _pod_spec(options, ["--every", str(options.interval), "--timeout", str(options.interval)], "Always")
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": options.name, "namespace": options.namespace, "labels": _labels(options)},
        "spec": {
            "selector": {"matchLabels": _labels(options)},
            "template": {"metadata": {"labels": _labels(options)}, "spec": spec},
        },
    }


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (enough for a manifest; every odd string is quoted)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_scalar(key)}:")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{_scalar(key)}: {_flow(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2 :]}")
            else:
                lines.append(f"{pad}- {_flow(item)}")
    else:
        lines.append(pad + _scalar(value))
    return "\n".join(lines)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def render(*documents: dict[str, Any]) -> str:
    return "".join(f"---\n{to_yaml(document)}\n" for document in documents)
