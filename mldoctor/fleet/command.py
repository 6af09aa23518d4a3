"""`mldoctor fleet REPORT...`: aggregate per-node reports into one fleet verdict.

Only wiring: arguments -> sources -> aggregate -> a renderer -> stdout or a file, and the exit code. This module
imports only click at the top, so `mldoctor --help` stays light when the command is registered.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from mldoctor.fleet.output import FORMATS


def _names(values: tuple[str, ...]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _nodes_file(path: str) -> list[str]:
    """One node name per line (`scontrol show hostnames` output, `kubectl get nodes -o name`); # starts a comment."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="'--nodes-file'") from None
    return [n.removeprefix("node/") for line in lines if (n := line.split("#", 1)[0].strip())]


def _version(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value and not re.fullmatch(r"\d+(\.\d+)*", value):
        raise click.BadParameter(f'{value!r}: give a version such as "550.54" or "12.4"')
    return value


@click.command("fleet")
@click.argument(
    "reports",
    nargs=-1,
    required=True,
    metavar="REPORT...",
    type=click.Path(exists=True, readable=True, allow_dash=True),
)
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(), metavar="FILE", help="Write here instead of stdout (atomically).")
@click.option(
    "--expect",
    multiple=True,
    metavar="NODE,...",
    help="Nodes that should have reported (repeatable); those without a report are listed as hung or unreachable.",
)
@click.option(
    "--nodes-file",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help="Expected nodes, one per line, e.g. from `scontrol show hostnames $SLURM_JOB_NODELIST`.",
)
@click.option(
    "--straggler-ratio",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.9,
    show_default=True,
    help="A GPU below this share of its model's fleet median is a straggler.",
)
@click.option(
    "--min-driver-version",
    default="",
    metavar="VERSION",
    callback=_version,
    help="Nodes on an older NVIDIA driver FAIL.",
)
@click.option(
    "--min-cuda-version",
    default="",
    metavar="VERSION",
    callback=_version,
    help="Nodes whose driver supports an older CUDA FAIL.",
)
@click.pass_context
def fleet(
    ctx: click.Context,
    reports: tuple[str, ...],
    output_format: str,
    output: str | None,
    expect: tuple[str, ...],
    nodes_file: str | None,
    **policy: Any,
) -> None:
    """Aggregate per-node reports: nodes x checks, stragglers, version drift, nodes to drain.

    REPORT is a `mldoctor check --format json` file, a folder of them (searched recursively, bundles included),
    a `mldoctor report` zip, a JSON-lines file, or - for reports on stdin (one per line, or concatenated).

    Exit codes: 0 no node failed, 1 some node failed, 2 usage error, 3 some node could not be checked (its run
    hit an ERROR, its report is unreadable or missing) and none failed.
    """
    from mldoctor.fleet.aggregate import FleetPolicy, aggregate, exit_code
    from mldoctor.fleet.output import renderer
    from mldoctor.fleet.sources import documents
    from mldoctor.options import check_output_path
    from mldoctor.output import write_output

    check_output_path(output)
    expected = _names(expect) + (_nodes_file(nodes_file) if nodes_file else [])
    stdin = sys.stdin if "-" in reports else None
    result = aggregate(documents(reports, stdin), FleetPolicy(**policy), expected)
    if not result.rows and not result.unreadable and not result.missing:
        raise click.UsageError(f"no mldoctor report found in {', '.join(reports)}")
    text = renderer(output_format)(result)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
        click.echo(f"wrote {output}: {result.summary_line()}", err=True)
    ctx.exit(exit_code(result))
