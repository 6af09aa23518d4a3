"""Command line: wires options to gather -> rules -> report -> renderers. Nothing heavy is imported at the top,
so `mldoctor --help` stays fast and does not need docker, pynvml or torch."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click

from mldoctor import __version__
from mldoctor.bundle.command import command as report_command

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


BENCH_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")


def _gpus(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value in ("auto", "all", "none") or re.fullmatch(r"\d+(,\d+)*", value):
        return value
    raise click.BadParameter(f"{value!r}: use auto, all, none or GPU indices such as 0,1")


def _shm_size(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or re.fullmatch(r"\d+[bkmg]?", value, re.IGNORECASE):
        return value.lower() if value else None
    raise click.BadParameter(f"{value!r}: a size such as 16g, 512m or a number of bytes")


def _expect_tflops(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, float], ...]:
    pairs = []
    for value in values:
        dtype, _, number = value.partition("=")
        try:
            tflops = float(number)
        except ValueError:
            tflops = 0.0
        if dtype not in BENCH_DTYPES or tflops <= 0:
            raise click.BadParameter(f"{value!r}: use DTYPE=TFLOPS with DTYPE one of {', '.join(BENCH_DTYPES)}")
        pairs.append((dtype, tflops))
    return tuple(pairs)


def _probe_options(command: Any) -> Any:
    """Options shared by `check` and `gpu-bench`: which image the probe runs in, with what, for how long."""
    options = [
        click.option("--image", metavar="IMAGE", help="Run the probe in this image (yours) instead of mldoctor's."),
        click.option("--no-container", is_flag=True, help="Run the probe on this host (needs mldoctor[bench])."),
        click.option(
            "--gpus",
            default="auto",
            show_default=True,
            callback=_gpus,
            help="GPUs for the probe container: auto (all when this host has any), all, none or 0,1.",
        ),
        click.option("--shm-size", callback=_shm_size, metavar="SIZE", help="The probe container's /dev/shm (16g)."),
        click.option(
            "--duration",
            type=click.FloatRange(min=0, max=3600),
            default=10.0,
            show_default=True,
            help="Benchmark seconds per GPU (or for the CPU when there is none); 0 skips the benchmarks.",
        ),
        click.option(
            "--expect-tflops",
            multiple=True,
            metavar="DTYPE=N",
            callback=_expect_tflops,
            help="Expected matmul TFLOP/s for a GPU the spec table lacks (repeatable), e.g. bf16=700.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _probe_settings(probe: dict[str, Any], timeout: float) -> Any:
    """ProbeOptions from the shared options; --image and --no-container exclude each other."""
    from mldoctor.facts.probe import ProbeOptions

    if probe["image"] and probe["no_container"]:
        raise click.BadParameter("--image runs a container; --no-container runs on the host: pick one")
    return ProbeOptions(
        image=probe["image"],
        gpus=probe["gpus"],
        shm_size=probe["shm_size"],
        duration=probe["duration"],
        timeout=timeout,
        container=not probe["no_container"],
        bench=probe["duration"] > 0,
    )


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
    "--require-gpus",
    type=click.IntRange(min=0),
    metavar="N",
    help="FAIL unless this host has at least N NVIDIA GPUs (default 0: a GPU-less host skips the NVIDIA checks).",
)
@_probe_options
@click.option("--no-probe", is_flag=True, help="Skip the probe container and the benchmarks (probe.*, bench.*).")
@click.option(
    "--probe-timeout",
    type=click.FloatRange(min=1, max=3600),
    default=120.0,
    show_default=True,
    help="Seconds the probe may take besides its benchmarks; then its container is killed and removed.",
)
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
    require_gpus: int | None,
    facts_file: str | None,
    no_probe: bool,
    probe_timeout: float,
    **probe: Any,
) -> int:
    """Check the host, Docker and (soon) the GPU stack; print a matrix with a fix for every failure."""
    from mldoctor import runner
    from mldoctor.facts import GatherOptions
    from mldoctor.policy import Policy

    _check_output_path(output)
    overrides: dict[str, Any] = {
        "disk_fail_gib": disk_fail_gib,
        "disk_warn_gib": disk_warn_gib,
        "require_gpus": require_gpus,
        "expect_tflops": probe["expect_tflops"] or None,
    }
    policy = Policy(**{k: v for k, v in overrides.items() if v is not None})
    if policy.disk_warn_gib < policy.disk_fail_gib:
        raise click.BadParameter(
            f"{policy.disk_warn_gib:g} is below the FAIL limit {policy.disk_fail_gib:g}; warn must be >= fail",
            param_hint="'--disk-warn-gib'",
        )
    try:
        checks = runner.select(_split(only), _split(skip) + (["probe", "bench"] if no_probe else []))
    except runner.SelectionError as exc:
        raise click.BadParameter(str(exc), param_hint="'--only' / '--skip'") from None
    probe_options = _probe_settings(probe, probe_timeout)
    if facts_file:
        from mldoctor.reload import load_facts

        saved = load_facts(facts_file)
        report = runner.build_report(checks if only else runner.covered_by(checks, saved), saved, policy)
    else:
        _cleanup_on_sigterm(checks)
        with _progress(fmt == "table" and output is None):
            options = GatherOptions(timeout=timeout, ports=ports, policy=policy, probe=probe_options)
            report = runner.run(checks, options)
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


def _cleanup_on_sigterm(checks: list[Any]) -> None:
    """When a probe container will run, let SIGTERM end mldoctor like Ctrl-C does: the container gets removed."""
    if any(c.area == "probe" for c in checks):
        from mldoctor.probe import launch

        launch.exit_on_sigterm()


@cli.command("gpu-bench")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the results to FILE (atomically).")
@click.option("--strict", is_flag=True, help="Treat warnings (and checks that could not run) as failures.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1, max=3600),
    default=120.0,
    show_default=True,
    help="Seconds the probe may take besides its benchmarks; then its container is killed and removed.",
)
@_probe_options
def gpu_bench(fmt: str, output: str | None, strict: bool, timeout: float, **probe: Any) -> int:
    """Run the probe and its benchmarks alone: matmul per dtype, memory and host bandwidth, per GPU, each graded
    against what a healthy card of that model reaches (the CPU when there is no GPU)."""
    from mldoctor import runner
    from mldoctor.facts import GatherOptions
    from mldoctor.output import bench as bench_output
    from mldoctor.output import write_atomic
    from mldoctor.policy import Policy

    _check_output_path(output)
    probe_options = _probe_settings(probe, timeout)
    policy = Policy(expect_tflops=probe["expect_tflops"])
    checks = runner.select(["probe", "bench", *(["docker.daemon"] if probe_options.container else [])])
    _cleanup_on_sigterm(checks)
    with _progress(fmt == "table" and output is None):
        report = runner.run(checks, GatherOptions(timeout=10.0, policy=policy, probe=probe_options))
    if fmt == "json" or output:
        text = bench_output.render_json(report, policy) if fmt == "json" else bench_output.render(report, policy)
        if output:
            write_atomic(output, text)
        else:
            click.echo(text, nl=False)
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(highlight=False, width=120)  # logs and pipes: do not wrap at 80
        console.print(bench_output.renderable(report, policy))
    return report.exit_code(strict)


cli.add_command(report_command())


@cli.group("image")
def image() -> None:
    """The default probe image (`mldoctor check` runs the probe in it)."""


@image.command("build")
@click.option("--base-image", metavar="IMAGE", help="Base with python3 (and torch) [default: the Dockerfile's].")
@click.option("--tag", metavar="TAG", help="Tag to build [default: mldoctor-probe:VERSION, what check uses].")
@click.option("--pull", is_flag=True, help="Pull the base image first, with a progress display.")
@click.option(
    "--wheelhouse",
    type=click.Path(exists=True, file_okay=False),
    help="Install every wheel in DIR offline (torch for a base without it; include pip's wheel if it has no pip).",
)
def image_build(base_image: str | None, tag: str | None, pull: bool, wheelhouse: str | None) -> int:
    """Build the probe image: the base, the probe program and a non-root user; the build log is streamed."""
    from mldoctor.facts.probe import DEFAULT_IMAGE
    from mldoctor.probe import launch

    base = base_image or launch.default_base_image()
    tag = tag or DEFAULT_IMAGE
    try:
        if pull and not _show_pull(launch.pull_image(base)):
            return EXIT_FAILED
        ok = _show_build(launch.build_image(base, tag, __version__, wheelhouse))
    except Exception as exc:  # the daemon is unreachable or refused: one line, and where to look
        from mldoctor.facts.docker import classify_error

        click.echo(f"mldoctor: error: {type(exc).__name__}: {exc} ({classify_error(exc)})", err=True)
        click.echo("run `mldoctor check --only docker` for the fix", err=True)
        return EXIT_FAILED
    if ok:
        click.echo(f"built {tag} from {base}; `mldoctor check` now runs its probe in it")
    return EXIT_OK if ok else EXIT_FAILED


def _show_build(events: Any) -> bool:
    """Stream the build log; on a terminal a spinner names the current step."""
    import contextlib

    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    status = console.status("building…") if console.is_terminal else contextlib.nullcontext()
    ok = True
    with status as spinner:
        for event in events:
            if event.error:
                ok = False
                click.echo(f"mldoctor: build failed: {event.text}", err=True)
                continue
            click.echo(event.text)
            if spinner is not None and event.text.startswith("Step "):
                spinner.update(event.text)
    return ok


def _show_pull(events: Any) -> bool:
    """Pull progress: one bar over all layers' bytes on a terminal, the status lines elsewhere."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    console = Console(stderr=True, highlight=False)
    layers: dict[str, tuple[int, int]] = {}
    with Progress(TextColumn("pulling"), BarColumn(), DownloadColumn(), console=console, transient=True) as bar:
        task = bar.add_task("pull", total=None)
        for event in events:
            if event.error:
                click.echo(f"mldoctor: pull failed: {event.text}", err=True)
                return False
            if event.layer and event.total:
                layers[event.layer] = (event.current, event.total)
                bar.update(task, completed=sum(c for c, _ in layers.values()), total=sum(t for _, t in layers.values()))
            elif not console.is_terminal and event.text:
                click.echo(f"{event.layer + ': ' if event.layer else ''}{event.text}", err=True)
    return True


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
