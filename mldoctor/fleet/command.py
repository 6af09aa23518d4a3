"""`mldoctor fleet REPORT...`: aggregate per-node reports into one fleet verdict; and its subcommands
(`mldoctor fleet run`, `slurm-prolog`, `k8s-manifest`, ...) that launch the per-node checks through an engine.

Only wiring: arguments -> sources -> aggregate -> a renderer -> stdout or a file, and the exit code. This module
imports only click at the top, so `mldoctor --help` stays light when the command is registered.

`fleet` stays the aggregating command itself (its parameters are the aggregate's), so `mldoctor fleet REPORT...`
works as before; a first argument that names a subcommand runs that subcommand instead. A report file whose
name is a subcommand's is read as `./run`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from mldoctor.fleet.engine_commands import SUBCOMMANDS
from mldoctor.fleet.options import deliver, expected_nodes, fleet_policy, verdict_options


class FleetCommand(click.Command):
    """A command that reads reports, with subcommands dispatched on its first argument."""

    def __init__(self, *args: Any, subcommands: dict[str, click.Command], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands = subcommands

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        if args and args[0] in self.subcommands:
            # The subcommand's parent context, for its help's path ("mldoctor fleet run"): a bare group, because
            # this command's own REPORT... argument would be shown in that path otherwise.
            own = click.Context(click.Group(self.name), info_name=info_name, parent=parent, **extra)
            return self.subcommands[args[0]].make_context(args[0], args[1:], parent=own, **extra)
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.command is not self:  # a subcommand's context, made above
            return ctx.command.invoke(ctx)
        return super().invoke(ctx)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, command.get_short_help_str(80)) for name, command in self.subcommands.items()]
        with formatter.section("Commands (mldoctor fleet COMMAND -h)"):
            formatter.write_dl([row for row in rows if not self.subcommands[row[0]].hidden])
        super().format_epilog(ctx, formatter)


@click.command("fleet", cls=FleetCommand, subcommands=SUBCOMMANDS)
@click.argument(
    "reports",
    nargs=-1,
    required=True,
    metavar="REPORT...",
    type=click.Path(exists=True, readable=True, allow_dash=True),
)
@verdict_options
@click.pass_context
def fleet(
    ctx: click.Context,
    reports: tuple[str, ...],
    output_format: str,
    output: str | None,
    expect: tuple[str, ...],
    nodes_file: str | None,
    **_settings: Any,  # the policy options: read through fleet_policy(ctx), with the policy file
) -> None:
    """Aggregate per-node reports: nodes x checks, stragglers, version drift, nodes to drain.

    REPORT is a `mldoctor check --format json` file, a folder of them (searched recursively, bundles included),
    a `mldoctor report` zip, a JSON-lines file, or - for reports on stdin (one per line, concatenated, or the
    lines a `mldoctor fleet run` task prints).

    Exit codes: 0 no node failed, 1 some node failed, 2 usage error, 3 some node could not be checked (its run
    hit an ERROR, its report is unreadable or missing) and none failed.
    """
    from mldoctor.fleet.aggregate import aggregate
    from mldoctor.fleet.sources import documents
    from mldoctor.options import check_output_path

    check_output_path(output)
    policy = fleet_policy(ctx)
    expected = expected_nodes(expect, nodes_file)
    stdin = sys.stdin if "-" in reports else None
    result = aggregate(documents(reports, stdin), policy, expected)
    if not result.rows and not result.unreadable and not result.missing:
        raise click.UsageError(f"no mldoctor report found in {', '.join(reports)}")
    deliver(ctx, result, output_format, output)
