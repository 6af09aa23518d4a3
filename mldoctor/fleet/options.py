"""The options every fleet verdict takes (output, expected nodes, policy), shared by `mldoctor fleet REPORT...`
and `mldoctor fleet run`, and the one way a verdict is delivered (rendered, written, exit code).

Only click and the settings table are imported at the top: the CLI registers these commands without loading the
aggregator. The policy options are the settings table's (`mldoctor.settings`), so the policy file's `[fleet]` table
and version floors, and `mldoctor config show`, agree with the flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mldoctor.fleet.output import FORMATS
from mldoctor.options import CONFIG_OPTION, setting_option

if TYPE_CHECKING:
    from mldoctor.fleet.aggregate import Fleet
    from mldoctor.fleet.policy import FleetPolicy

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
    CONFIG_OPTION,
    setting_option("fleet.straggler_ratio"),
    setting_option("min_driver_version"),
    setting_option("min_cuda_version"),
)


def verdict_options(function: F) -> F:
    for option in reversed(VERDICT_OPTIONS):
        function = option(function)
    return function


def fleet_policy(ctx: click.Context) -> FleetPolicy:
    """The fleet's policy: defaults < the policy file (`--config FILE`, else the nearest mldoctor.toml or
    [tool.mldoctor], as `mldoctor check` finds it) < the flags; resolved through the one settings table."""
    from mldoctor.fleet.policy import FleetPolicy
    from mldoctor.options import settings

    return FleetPolicy.from_settings(settings(ctx).effective.values)


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
