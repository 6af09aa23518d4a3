"""The options every fleet verdict takes (output, expected nodes, policy), shared by `mldoctor fleet REPORT...`
and `mldoctor fleet run`, and the one way a verdict is delivered (rendered, written, exit code).

Only click is imported at the top: the CLI registers these commands without loading the aggregator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mldoctor.fleet.output import FORMATS

if TYPE_CHECKING:
    from mldoctor.fleet.aggregate import Fleet

F = TypeVar("F", bound=Callable[..., Any])


def names(values: Iterable[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def nodes_file(path: str) -> list[str]:
    """One node name per line (`scontrol show hostnames` output, `kubectl get nodes -o name`); # starts a comment."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="'--nodes-file'") from None
    return [n.removeprefix("node/") for line in lines if (n := line.split("#", 1)[0].strip())]


def expected_nodes(expect: Iterable[str], nodes_path: str | None) -> list[str]:
    return names(expect) + (nodes_file(nodes_path) if nodes_path else [])


def _version(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value and not re.fullmatch(r"\d+(\.\d+)*", value):
        raise click.BadParameter(f'{value!r}: give a version such as "550.54" or "12.4"')
    return value


VERDICT_OPTIONS = (
    click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True),
    click.option(
        "-o", "--output", type=click.Path(), metavar="FILE", help="Write here instead of stdout (atomically)."
    ),
    click.option(
        "--expect",
        multiple=True,
        metavar="NODE,...",
        help="Nodes that should have reported (repeatable); those without a report are listed as hung or unreachable.",
    ),
    click.option(
        "--nodes-file",
        type=click.Path(exists=True, dir_okay=False, readable=True),
        help="Expected nodes, one per line, e.g. from `scontrol show hostnames $SLURM_JOB_NODELIST`.",
    ),
    click.option(
        "--straggler-ratio",
        type=click.FloatRange(0.0, 1.0, min_open=True),
        default=0.9,
        show_default=True,
        help="A GPU below this share of its model's fleet median is a straggler.",
    ),
    click.option(
        "--min-driver-version",
        default="",
        metavar="VERSION",
        callback=_version,
        help="Nodes on an older NVIDIA driver FAIL.",
    ),
    click.option(
        "--min-cuda-version",
        default="",
        metavar="VERSION",
        callback=_version,
        help="Nodes whose driver supports an older CUDA FAIL.",
    ),
)


def verdict_options(function: F) -> F:
    for option in reversed(VERDICT_OPTIONS):
        function = option(function)
    return function


def deliver(ctx: click.Context, result: Fleet, output_format: str, output: str | None) -> None:
    """Render the verdict to stdout or a file (atomically), then exit with the fleet's exit code."""
    from mldoctor.fleet.aggregate import exit_code
    from mldoctor.fleet.output import renderer
    from mldoctor.output import write_output

    text = renderer(output_format)(result)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
        click.echo(f"wrote {output}: {result.summary_line()}", err=True)
    ctx.exit(exit_code(result))
