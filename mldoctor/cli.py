"""Command line: wires options to gather -> rules -> report -> renderers. Nothing heavy is imported at the top,
so `mldoctor --help` stays fast and does not need docker, pynvml or torch."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from mldoctor import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _split(values: tuple[str, ...]) -> list[str]:
    """--only a,b --only c -> [a, b, c]"""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _check_output_path(path: str | None) -> None:
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise click.BadParameter(f"{path} is a directory; give a file name", param_hint="'-o'")
    if not os.path.isdir(directory):
        raise click.BadParameter(f"directory {directory} does not exist", param_hint="'-o'")
    if not os.access(directory, os.W_OK):
        raise click.BadParameter(f"cannot write in {directory}", param_hint="'-o'")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="mldoctor")
def cli() -> None:
    """Can this machine run GPU training in Docker? If not, what exactly fixes it.

    Exit codes: 0 nothing failed, 1 a check failed (or warned, with --strict),
    2 bad usage or configuration, 3 mldoctor (or one of its checks) could not run.
    """


@cli.command()
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE (atomically).")
@click.option("-v", "--verbose", is_flag=True, help="Show the details of every finding.")
@click.option("--only", multiple=True, metavar="ID", help="Run only these checks (id, glob or prefix; repeatable).")
@click.option("--skip", multiple=True, metavar="ID", help="Leave these checks out (id, glob or prefix; repeatable).")
@click.option("--strict", is_flag=True, help="Treat warnings (and checks that could not run) as failures.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=600),
    default=5.0,
    show_default=True,
    help="Seconds to wait for each answer from the daemon or a helper command.",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    type=click.IntRange(1, 65535),
    help="Check that this TCP port is free (repeatable).",
)
@click.option("--disk-fail-gib", type=click.FloatRange(min=0), help="FAIL a disk with less free space (default 5).")
@click.option("--disk-warn-gib", type=click.FloatRange(min=0), help="WARN on a disk with less free space (default 20).")
@click.option(
    "--facts",
    "facts_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Re-diagnose the facts of a saved `--format json` report instead of this machine.",
)
def check(
    fmt: str,
    output: str | None,
    verbose: bool,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    strict: bool,
    timeout: float,
    ports: tuple[int, ...],
    disk_fail_gib: float | None,
    disk_warn_gib: float | None,
    facts_file: str | None,
) -> int:
    """Check the host, Docker and (soon) the GPU stack; print a matrix with a fix for every failure."""
    from mldoctor import runner
    from mldoctor.facts import GatherOptions
    from mldoctor.policy import Policy

    _check_output_path(output)
    overrides: dict[str, Any] = {"disk_fail_gib": disk_fail_gib, "disk_warn_gib": disk_warn_gib}
    policy = Policy(**{k: v for k, v in overrides.items() if v is not None})
    if policy.disk_warn_gib < policy.disk_fail_gib:
        raise click.BadParameter(
            f"{policy.disk_warn_gib:g} is below the FAIL limit {policy.disk_fail_gib:g}; warn must be >= fail",
            param_hint="'--disk-warn-gib'",
        )
    try:
        checks = runner.select(_split(only), _split(skip))
    except runner.SelectionError as exc:
        raise click.BadParameter(str(exc), param_hint="'--only' / '--skip'") from None
    if facts_file:
        from mldoctor.reload import load_facts

        report = runner.build_report(checks, load_facts(facts_file), policy)
    else:
        with _progress(fmt == "table" and output is None):
            report = runner.run(checks, GatherOptions(timeout=timeout, ports=ports, policy=policy))
    _emit(report, fmt, output, verbose)
    return report.exit_code(strict)


def _progress(enabled: bool) -> Any:
    """A spinner on stderr while gathering, only on a terminal."""
    import contextlib

    if not enabled or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status("Checking Docker and the host…")


def _emit(report: Any, fmt: str, output: str | None, verbose: bool) -> None:
    from mldoctor.output import write_atomic

    if fmt == "json":
        from mldoctor.output import json as json_output

        text = json_output.render(report)
        if output:
            write_atomic(output, text)
        else:
            click.echo(text, nl=False)
        return
    from mldoctor.output import table

    if output:
        write_atomic(output, table.render(report, verbose))
        return
    from rich.console import Console

    console = Console(highlight=False)
    if console.is_terminal:
        table.print_report(report, console, verbose)
    else:  # logs and pipes: plain text, wide lines, no trailing blanks
        columns = os.environ.get("COLUMNS", "")
        click.echo(table.render(report, verbose, width=int(columns) if columns.isdigit() else 120), nl=False)


@cli.command("checks")
def list_checks() -> None:
    """List every check id with its title (ids work with --only and --skip)."""
    from mldoctor.rules import REGISTRY

    width = max(len(i) for i in REGISTRY)
    for check_id, registered in REGISTRY.items():
        click.echo(f"{check_id:<{width}}  {registered.title}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit 2 for bad input, exit 3 (never a traceback) when mldoctor breaks."""
    try:
        code = cli.main(args=argv, prog_name="mldoctor", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"mldoctor: error: {exc.format_message()}{hint}", err=True)
        code = EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"mldoctor: error: {exc.format_message()}", err=True)
        code = EXIT_USAGE
    except (KeyboardInterrupt, click.Abort):
        click.echo("mldoctor: interrupted", err=True)
        code = 130
    except Exception as exc:
        if os.environ.get("MLDOCTOR_DEBUG"):
            raise
        click.echo(
            f"mldoctor: internal error: {type(exc).__name__}: {exc} "
            "(rerun with MLDOCTOR_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        code = EXIT_INTERNAL
    sys.exit(code or 0)
