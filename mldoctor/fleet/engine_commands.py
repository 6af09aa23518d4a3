"""The subcommands of `mldoctor fleet`: launch the per-node checks through an engine and aggregate what comes back
(`run`), the node-side task it starts (`task`), and ready-to-paste integrations (`slurm-prolog`, `drain-reason`,
`k8s-manifest`).

Only wiring, and only click at the top; the engines are imported when a command runs (ray only for `--ray`).
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import TYPE_CHECKING, Any

import click

from mldoctor.fleet.options import deliver, expected_nodes, fleet_policy, verdict_options
from mldoctor.options import Seconds, setting_option

if TYPE_CHECKING:
    from mldoctor.fleet.allreduce import AllreduceRun
    from mldoctor.fleet.launch import Collection

DEFAULT_DEADLINE = 300.0
DEFAULT_ALLREDUCE_DEADLINE = 120.0
ALLREDUCE_ONLY = (
    "allreduce_deadline",
    "allreduce_image",
    "no_container",
    "allreduce_slow_ratio",
    "allreduce_min_busbw",
)
"""The options that only mean something with --allreduce."""
RAY_INSTALL = "python3 -m pip install 'mldoctor[ray]'"


def _words(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value or ""))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None


def _k8s_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A DNS-1123 label: what Kubernetes accepts as a name, a namespace and a label value."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise click.BadParameter(f"{value!r}: lower-case letters, digits and -, at most 63, e.g. mldoctor-sweep")
    return value


def default_mldoctor() -> str:
    """This interpreter running this mldoctor: what the nodes run unless told otherwise (works from any install,
    a venv or a checkout, as long as the nodes see the same path)."""
    return shlex.join([sys.executable, "-m", "mldoctor"])


CHECK_ARGS = click.option(
    "--check-args",
    default="",
    callback=_words,
    metavar="ARGS",
    help="Options for `mldoctor check` on each node, as one shell-quoted string; {node} becomes the node's name "
    '(e.g. "--no-probe --config /etc/mldoctor/{node}.toml").',
)
MLDOCTOR = click.option(
    "--mldoctor",
    "mldoctor_command",
    default=default_mldoctor,
    callback=_words,
    metavar="CMD",
    help="How the nodes run mldoctor [default: this python -m mldoctor].",
)


def _report(line: str) -> None:
    click.echo(f"mldoctor: fleet run: {line}", err=True)


@click.command("run")
@click.option("--slurm", "engine", flag_value="slurm", help="Through srun, one task per node (SRUN_OPTIONS after --).")
@click.option("--ray", "engine", flag_value="ray", help="Through a Ray STRICT_SPREAD placement group (mldoctor[ray]).")
@click.option(
    "--deadline",
    type=Seconds(1, 86400),
    default=DEFAULT_DEADLINE,
    show_default=True,
    metavar="SECONDS",
    help="Stop waiting then: nodes without a report are 'no report (hung or unreachable)'.",
)
@CHECK_ARGS
@MLDOCTOR
@click.option(
    "--ray-address", default="auto", show_default=True, metavar="ADDR", help="The Ray cluster to join (with --ray)."
)
@click.option(
    "--ray-nodes",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Check N Ray nodes (with --ray) [default: every alive node].",
)
@click.option(
    "--allreduce",
    is_flag=True,
    help="Then run a torch.distributed all-reduce across the nodes (the whole set and every pair; --slurm only).",
)
@click.option(
    "--allreduce-deadline",
    type=Seconds(15, 86400),
    default=DEFAULT_ALLREDUCE_DEADLINE,
    show_default=True,
    metavar="SECONDS",
    help="Stop the all-reduce then; nodes without a result are named.",
)
@click.option(
    "--allreduce-image",
    default=None,
    metavar="IMAGE",
    help="Run the all-reduce in this image (python3 and torch; host network) [default: mldoctor's probe image].",
)
@click.option(
    "--no-container", is_flag=True, help="Run the all-reduce with the nodes' own python (torch installed there)."
)
@setting_option("fleet.allreduce_slow_ratio")
@setting_option("fleet.allreduce_min_busbw")
@verdict_options
@click.argument("engine_options", nargs=-1, type=click.UNPROCESSED, metavar="[-- SRUN_OPTIONS...]")
@click.pass_context
def run(
    ctx: click.Context,
    engine: str | None,
    deadline: float,
    check_args: tuple[str, ...],
    mldoctor_command: tuple[str, ...],
    ray_address: str,
    ray_nodes: int | None,
    allreduce: bool,
    allreduce_deadline: float,
    allreduce_image: str | None,
    no_container: bool,
    engine_options: tuple[str, ...],
    output_format: str,
    output: str | None,
    expect: tuple[str, ...],
    nodes_file: str | None,
    **_settings: Any,  # the policy options: read through fleet_policy(ctx), with the policy file
) -> None:
    """Run `mldoctor check` on every node through an engine, then aggregate as `mldoctor fleet` does.

    Each node's report comes back through the engine's own output: no shared filesystem, no SSH. With
    --allreduce, a second srun step then measures an all-reduce across the nodes: the whole set's bus bandwidth,
    every pair's, and the nodes in two or more slow pairs.

    \b
    mldoctor fleet run --slurm -- -N16 -p gpu        (or inside salloc/sbatch: all nodes of the allocation)
    mldoctor fleet run --slurm --allreduce -- -N16 -p gpu
    mldoctor fleet run --ray --deadline 120
    """
    from mldoctor.fleet.aggregate import judge, read
    from mldoctor.fleet.launch import Collection, Expected, LaunchError, collect
    from mldoctor.options import check_output_path

    if engine is None:
        raise click.UsageError("say which engine reaches the nodes: --slurm or --ray")
    if engine == "ray" and engine_options:
        raise click.UsageError("options after -- are srun's; with --ray use --ray-address and --ray-nodes")
    if allreduce and engine != "slurm":
        raise click.UsageError("--allreduce runs through srun: use it with --slurm")
    given = [
        name for name in ALLREDUCE_ONLY if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given and not allreduce:
        raise click.UsageError(f"--{given[0].replace('_', '-')} goes with --allreduce")
    if no_container and allreduce_image:
        raise click.UsageError("--allreduce-image and --no-container exclude each other")
    policy = fleet_policy(ctx)  # a bad policy file is a usage error before anything runs
    if not mldoctor_command:
        raise click.BadParameter("give a command", param_hint="'--mldoctor'")
    check_output_path(output)
    if engine == "slurm":
        from mldoctor.fleet.slurm import srun_command

        command = srun_command(mldoctor_command, engine_options, check_args, deadline)
        collection = Collection(command)
        reports = collect(command, deadline, collection)
    else:
        from mldoctor.fleet import ray as ray_engine

        collection = Collection(("ray", ray_address))
        reports = ray_engine.collect(check_args, deadline, collection, ray_address, ray_nodes)
    expected = Expected(collection, expected_nodes(expect, nodes_file))
    try:
        reading = read(reports)
    except LaunchError as exc:
        _report(str(exc))
        ctx.exit(3)
    engine_name = "srun" if engine == "slurm" else "ray"
    _collected(engine_name, collection, deadline)
    if not reading.nodes and not reading.unreadable and not list(expected):
        _report(f"no node reported. {engine_name} said: {collection.stderr_tail()}")
        ctx.exit(3)
    measured = None
    if allreduce:
        from mldoctor.facts.probe import DEFAULT_IMAGE
        from mldoctor.fleet.allreduce import AllreduceRun

        image = None if no_container else allreduce_image or DEFAULT_IMAGE
        nodes = collection.nodes()
        if len(nodes) < 2:  # nothing to reduce across: judged as such, without a second step
            measured = AllreduceRun((), tuple(nodes))
        else:
            measured = _allreduce(mldoctor_command, engine_options, image, allreduce_deadline, nodes)
    deliver(ctx, judge(reading, policy, expected, measured), output_format, output)


def _collected(engine_name: str, collection: Collection, deadline: float) -> None:
    """One line on how an engine run went; a second naming the silent nodes when it hit its deadline."""
    _report(
        f"{engine_name}: {len(collection.started)} node(s) started, {len(collection.reported)} reported "
        f"in {collection.seconds:.1f} s (exit {collection.returncode})"
    )
    if collection.timed_out:
        _report(f"deadline of {deadline:g} s reached; stopped {engine_name}. No report from: "
                f"{', '.join(collection.silent) or '(none named)'}")  # fmt: skip


def _allreduce(
    mldoctor: tuple[str, ...], srun_options: tuple[str, ...], image: str | None, deadline: float, nodes: list[str]
) -> AllreduceRun:
    """The all-reduce step on the nodes the checks ran on: one rank per node through srun, each node's result back
    through srun's stdout."""
    from mldoctor.fleet.allreduce import AllreduceRun, node_result
    from mldoctor.fleet.launch import Collection, LaunchError, collect
    from mldoctor.fleet.slurm import allreduce_command

    command = allreduce_command(mldoctor, srun_options, image, deadline, nodes)
    collection = Collection(command)
    try:
        documents = collect(command, deadline, collection)
        results = tuple(node_result(d) for d in documents if d.name_hint)  # a line no node can be named for: dropped
    except LaunchError as exc:  # every node the checks ran on is then without a result, and says why
        return AllreduceRun((), tuple(nodes), 0.0, str(exc))
    _collected("srun (all-reduce)", collection, deadline)
    error = "" if results else f"no node sent an all-reduce result; srun said: {collection.stderr_tail()}"
    return AllreduceRun(results, (*nodes, *collection.nodes()), collection.seconds, error)


@click.command("task", hidden=True)
@click.option("--node", default=None, help="This node's name [default: $SLURMD_NODENAME, $NODE_NAME, host name].")
@click.option("--timeout", type=Seconds(1, 86400), default=None, help="Give up on the check after N seconds.")
@click.option("--every", type=Seconds(1, 86400), default=None, help="Check again every N seconds (a DaemonSet).")
@click.argument("check_args", nargs=-1, type=click.UNPROCESSED)
def task(node: str | None, timeout: float | None, every: float | None, check_args: tuple[str, ...]) -> None:
    """On a node: run `mldoctor check --format json CHECK_ARGS` and print its report as @mldoctor-fleet lines."""
    import time

    from mldoctor.fleet.task import main

    while True:
        code = main(check_args, node, timeout)
        if every is None:
            sys.exit(code)
        time.sleep(every)


@click.command("allreduce-task", hidden=True)
@click.option("--deadline", type=Seconds(5, 86400), default=60.0, help="Seconds for this node's part in all.")
@click.option("--image", default=None, help="Run the all-reduce program in this image (docker run, host network).")
@click.option("--no-container", is_flag=True, help="Run it with this python (torch installed here).")
@click.option("--node", default=None, help="This node's name [default: $SLURMD_NODENAME, host name].")
def allreduce_task(deadline: float, image: str | None, no_container: bool, node: str | None) -> None:
    """On a node, as one srun task of `fleet run --slurm --allreduce`: this node's rank of the all-reduce, its
    result printed as @mldoctor-fleet lines."""
    from mldoctor.fleet.allreduce_task import main

    if (image is None) == (not no_container):
        raise click.UsageError("give --image IMAGE or --no-container")
    sys.exit(main(image, deadline, node))


@click.command("k8s-manifest")
@click.option("--job", "shape", flag_value="job", help="A sweep: an Indexed Job, one pod per node (anti-affinity).")
@click.option("--daemonset", "shape", flag_value="daemonset", help="Continuous: a DaemonSet re-checking every node.")
@click.option("--image", required=True, metavar="IMAGE", help="An image with mldoctor (and torch for the probe).")
@click.option("--name", default="mldoctor", show_default=True, callback=_k8s_name, help="Name and run label.")
@click.option("--namespace", default="default", show_default=True, callback=_k8s_name)
@click.option("--nodes", type=click.IntRange(1, 100_000), default=1, show_default=True, help="Job: how many nodes.")
@click.option("--gpus", type=click.IntRange(0, 1024), default=8, show_default=True, help="GPUs per pod (0: none).")
@click.option("--deadline", type=click.IntRange(1), default=900, show_default=True, help="Job: seconds in all.")
@click.option("--interval", type=click.IntRange(60), default=3600, show_default=True, help="DaemonSet: seconds.")
@click.option("--runtime-class", default=None, metavar="NAME", help="e.g. nvidia (GPU-operator clusters).")
@click.option(
    "--node-selector",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only nodes with this label (repeatable), e.g. nvidia.com/gpu.present=true.",
)
@click.option(
    "--check-args",
    default=None,
    callback=_words,
    metavar="ARGS",
    help="Options for `mldoctor check` in each pod [default: --skip docker --no-container].",
)
def k8s_manifest(shape: str | None, node_selector: tuple[str, ...], check_args: tuple[str, ...], **fields: Any) -> None:
    """Print Kubernetes YAML that runs `mldoctor check` on GPU nodes; each pod's log carries its node's report.

    \b
    mldoctor fleet k8s-manifest --job --nodes 16 --image registry.example.com/mldoctor:0.1 | kubectl apply -f -
    kubectl logs -l mldoctor.io/run=mldoctor --tail=-1 --max-log-requests=16 | mldoctor fleet -
    """
    from mldoctor.fleet.kubernetes import DEFAULT_CHECK_ARGS, ManifestOptions, daemonset, job, render

    if shape is None:
        raise click.UsageError("say which manifest: --job (a sweep) or --daemonset (continuous)")
    selector = {}
    for item in node_selector:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: give KEY=VALUE", param_hint="'--node-selector'")
        selector[key] = value
    options = ManifestOptions(check_args=check_args or DEFAULT_CHECK_ARGS, node_selector=selector, **fields)
    click.echo(render(job(options) if shape == "job" else daemonset(options)), nl=False)


@click.command("drain-reason")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, readable=True))
def drain_reason(report: str) -> None:
    """Print the drain reason for a node's report: `mldoctor: <first broken link>: <summary>`, safe between double
    quotes and bounded. Exit 1 when nothing in the report FAILed (nothing to drain for)."""
    from mldoctor.fleet.drain import reason
    from mldoctor.fleet.node import ReportError, summarise
    from mldoctor.fleet.sources import documents

    document = next(iter(documents([report])), None)
    try:
        if document is None or document.error is not None:
            raise ReportError(document.error if document else "empty")
        summary = summarise(document.data, report)
    except ReportError as exc:
        raise click.UsageError(f"{report}: {exc}") from None
    if summary.link is None:
        click.echo(f"{report}: no check FAILed; nothing to drain for", err=True)
        sys.exit(1)
    click.echo(reason(summary.link))


@click.command("slurm-prolog")
@CHECK_ARGS
@MLDOCTOR
@click.option("--report-dir", default="/var/log/mldoctor", show_default=True, help="Where each node keeps its report.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE", help="Write the script here (0755).")
def slurm_prolog(
    check_args: tuple[str, ...], mldoctor_command: tuple[str, ...], report_dir: str, output: str | None
) -> None:
    """Print a Slurm Prolog / HealthCheckProgram script that drains the node, with the failing check as the reason,
    when `mldoctor check` FAILs there (exit 1), and never on exit 2 or 3.

    \b
    mldoctor fleet slurm-prolog -o /etc/slurm/prolog.d/50-mldoctor.sh
    then in slurm.conf: Prolog=/etc/slurm/prolog.d/*   (or HealthCheckProgram=... with HealthCheckInterval=300)
    """
    import os

    from mldoctor.fleet.slurm import DEFAULT_CHECK_ARGS, health_script
    from mldoctor.options import check_output_path
    from mldoctor.output import write_output

    if not mldoctor_command:
        raise click.BadParameter("give a command", param_hint="'--mldoctor'")
    text = health_script(mldoctor_command, check_args or DEFAULT_CHECK_ARGS, report_dir)
    if output is None:
        click.echo(text, nl=False)
        return
    check_output_path(output)
    write_output(output, text)
    if os.path.isfile(output):
        os.chmod(output, 0o755)
    click.echo(f"wrote {output}", err=True)


SUBCOMMANDS: dict[str, click.Command] = {
    c.name or "": c for c in (run, slurm_prolog, drain_reason, k8s_manifest, task, allreduce_task)
}
