"""Command line: wires options to gather -> rules -> report -> renderers. Nothing heavy is imported at the top,
so `mldoctor --help` stays fast and does not need docker, pynvml or torch."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from mldoctor import __version__, interrupts, options

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class LazyGroup(click.Group):
    """A group whose commands that live in their own modules are imported only when one of them runs (or help lists
    them): `mldoctor check` pays nothing for `report`, `fleet`, `fix` or `explain`."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}
        """command name -> "module:attribute" of its click command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={
        "report": "mldoctor.bundle.command:command",
        "fleet": "mldoctor.fleet.command:fleet",
        "explain": "mldoctor.explain:command",
        "fix": "mldoctor.fix.command:command",
        "why": "mldoctor.why:command",
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="mldoctor")
def cli() -> None:
    """Can this machine run GPU training in Docker? If not, what exactly fixes it.

    Exit codes: 0 nothing failed, 1 a check failed (or warned, with --strict),
    2 bad usage or configuration, 3 mldoctor (or one of its checks) could not run.
    """


@cli.command()
@options.FORMAT_OPTION
@click.option(
    "-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Write the report to FILE (atomically)."
)
@click.option("-v", "--verbose", is_flag=True, help="Show the details of every finding.")
@options.setting_option("only")
@options.setting_option("skip")
@options.setting_option("strict")
@click.option("--exit-zero", is_flag=True, help="Exit 0 whatever the checks found (report only; bad usage still 2).")
@click.option(
    "--port",
    "ports",
    multiple=True,
    type=click.IntRange(1, 65535),
    help="Check that this TCP port is free (repeatable).",
)
@options.host_options
@options.probe_options
@click.option(
    "--facts",
    "facts_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Re-diagnose a saved report (`--format json` file or `mldoctor report` zip) instead of this host.",
)
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the JSON report to FILE.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Also write JUnit XML to FILE.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), help="Also write Markdown to FILE.")
@click.option(
    "--prometheus",
    "prometheus_file",
    type=click.Path(dir_okay=False),
    help="Also write node_exporter textfile metrics to FILE (e.g. /var/lib/node_exporter/mldoctor.prom).",
)
@click.option(
    "--github/--no-github",
    default=None,
    help="GitHub Actions annotations and step summary [default: on when GITHUB_ACTIONS=true].",
)
@click.option("--ci", is_flag=True, help="No colour, no spinner, plain progress lines on stderr.")
@click.pass_context
def check(
    ctx: click.Context,
    fmt: str,
    output_path: str | None,
    verbose: bool,
    facts_file: str | None,
    github: bool | None,
    ci: bool,
    exit_zero: bool,
    **_: Any,
) -> int:
    """Check the host, Docker, the NVIDIA stack and a probe container; print a matrix with a fix per failure."""
    from mldoctor import runner

    files = {name: ctx.params[f"{name}_file"] for name in ("json", "junit", "markdown", "prometheus")}
    for name, path in [("-o", output_path), *((f"--{n}", p) for n, p in files.items())]:
        options.check_output_path(path, name)
    resolved = options.settings(ctx)
    try:
        skipped = options.split(resolved.value("skip")) + (["probe", "bench"] if ctx.params["no_probe"] else [])
        checks = runner.select(options.split(resolved.value("only")), skipped)
    except runner.SelectionError as exc:
        raise click.BadParameter(str(exc), param_hint="'--only' / '--skip'") from None
    if facts_file:
        report = _rediagnose(facts_file, checks, resolved, only=bool(resolved.value("only")))
    else:
        report = _run(checks, resolved, ctx.params)
    strict = resolved.value("strict")
    _emit(report, fmt, output_path, verbose, plain=ci)
    _export(
        report,
        files,
        strict,
        github if github is not None else os.environ.get("GITHUB_ACTIONS") == "true",
        annotations_to_stderr=fmt == "json" and output_path is None,
    )
    return EXIT_OK if exit_zero else report.exit_code(strict)


def _run(checks: list[Any], resolved: options.Settings, params: dict[str, Any]) -> Any:
    from mldoctor import runner
    from mldoctor.facts import GatherOptions

    gather = GatherOptions(
        timeout=resolved.value("timeout"),
        ports=params["ports"],
        policy=resolved.policy,
        probe=resolved.probe(params["no_container"]) if any(c.area == "probe" for c in checks) else None,
    )
    with options.progress(params["ci"]) as progress:
        areas = ", ".join(sorted({c.area for c in checks}))
        progress.step(f"checking {areas}: {gathering(runner.needed_sections(checks))}")
        report = runner.run(checks, gather)
        progress.step(f"done in {progress.elapsed():.1f} s: {len(report.results)} checks")
    return report


SECTION_NAMES = {"host": "this host", "docker": "the Docker daemon", "nvidia": "the NVIDIA stack"}


def gathering(sections: set[str]) -> str:
    """The first step's words: which facts are being read (the probe says for itself when it starts)."""
    names = [name for section, name in SECTION_NAMES.items() if section in sections]
    if not names:
        return "starting the probe"
    return "gathering the facts of " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def _rediagnose(path: str, checks: list[Any], resolved: options.Settings, only: bool) -> Any:
    """A saved report judged by today's rules; by its own recorded policy unless a flag overrides a value."""
    import dataclasses

    from mldoctor import runner
    from mldoctor.reload import load_report

    facts, saved_policy = load_report(path)
    policy = resolved.policy
    if saved_policy is not None:
        flagged = {k for k, source in resolved.effective.sources.items() if source.startswith("--")}
        policy = dataclasses.replace(saved_policy, **{k: getattr(policy, k) for k in flagged if hasattr(policy, k)})
    return runner.build_report(checks if only else runner.covered_by(checks, facts), facts, policy)


def _export(report: Any, files: dict[str, str | None], strict: bool, github: bool, annotations_to_stderr: bool) -> None:
    """The CI artifacts asked for, each written atomically; GitHub annotations and step summary when on."""
    from mldoctor import output

    rendering = output.RenderOptions(strict=strict)
    for name, path in files.items():
        if path:  # each renderer is imported only when its artifact is asked for
            output.write_output(path, output.render(name, report, rendering))
    if not github:
        return
    from mldoctor.output import github as github_output

    click.echo(output.render("github", report, rendering), nl=False, err=annotations_to_stderr)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        github_output.append_step_summary(summary, output.render("markdown", report))


def _emit(report: Any, fmt: str, output_path: str | None, verbose: bool, plain: bool = False) -> None:
    """The report in `fmt` on stdout or in a file; on a terminal the table in colour (rich only there)."""
    from mldoctor import output

    if output_path:
        output.write_output(output_path, output.render(fmt, report, output.RenderOptions(verbose=verbose)))
        return
    if fmt == "table" and not plain and (sys.stdout.isatty() or os.environ.get("FORCE_COLOR")):
        from rich.console import Console

        console = Console(highlight=False)
        if console.is_terminal:
            from mldoctor.output import table

            table.print_report(report, console, verbose)
            return
    columns = os.environ.get("COLUMNS", "")  # logs and pipes: plain text, wide lines, no trailing blanks
    width = int(columns) if columns.isdigit() else 120
    click.echo(output.render(fmt, report, output.RenderOptions(verbose=verbose, width=width)), nl=False)


@cli.command("checks")
def list_checks() -> None:
    """List every check id with its title (ids work with --only and --skip)."""
    from mldoctor.rules import REGISTRY

    width = max(len(i) for i in REGISTRY)
    for check_id, registered in REGISTRY.items():
        click.echo(f"{check_id:<{width}}  {registered.title}")


@cli.command("gpu-bench")
@options.FORMAT_OPTION
@click.option(
    "-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Write the results to FILE (atomically)."
)
@options.setting_option("strict")
@options.setting_option("probe.timeout", flag="--timeout")
@options.CONFIG_OPTION
@options.probe_options
@click.pass_context
def gpu_bench(ctx: click.Context, fmt: str, output_path: str | None, **_: Any) -> int:
    """Run the probe and its benchmarks alone: matmul per dtype, memory and host bandwidth, per GPU, each graded
    against what a healthy card of that model reaches (the CPU when there is no GPU)."""
    from mldoctor import output, runner
    from mldoctor.facts import GatherOptions
    from mldoctor.output import bench as bench_output

    options.check_output_path(output_path)
    resolved = options.settings(ctx)
    policy, probe = resolved.policy, resolved.probe(ctx.params["no_container"])
    checks = runner.select(["probe", "bench", *(["docker.daemon"] if probe.container else [])])
    with options.progress(ci=False) as progress:
        progress.step(gathering(runner.needed_sections(checks)))
        report = runner.run(checks, GatherOptions(timeout=10.0, policy=policy, probe=probe))
    if fmt == "json" or output_path:
        text = output.render("json" if fmt == "json" else "bench", report)
        if output_path:
            output.write_output(output_path, text)
        else:
            click.echo(text, nl=False)
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(highlight=False, width=120)  # logs and pipes: do not wrap at 80
        console.print(bench_output.renderable(report))
    return report.exit_code(resolved.value("strict"))


@cli.group("config")
def config_group() -> None:
    """The policy file: mldoctor.toml, or [tool.mldoctor] in pyproject.toml (see docs/ci.md)."""


@config_group.command("show")
@options.CONFIG_OPTION
@options.FORMAT_OPTION
@click.pass_context
def config_show(ctx: click.Context, fmt: str, **_: Any) -> None:
    """Print every setting, its effective value and where it came from (default, the file, or a flag)."""
    import json

    from mldoctor.serde import to_data

    resolved = options.settings(ctx)
    values = {key: to_data(value) for key, value in resolved.effective.values.items()}
    if fmt == "json":
        data = {
            "file": resolved.config_path,
            "settings": {k: {"value": v, "source": resolved.effective.sources[k]} for k, v in values.items()},
        }
        click.echo(json.dumps(data, indent=2))
        return
    where = resolved.config_path or "none found (mldoctor.toml, or [tool.mldoctor] in pyproject.toml)"
    click.echo(f"policy file: {where}")
    width = max(len(k) for k in values)
    for key, value in values.items():
        shown = json.dumps(value) if value not in (None, [], {}) else "-"
        click.echo(f"{key:<{width}}  {shown:<40}  {resolved.effective.sources[key]}")


@cli.group("image", cls=LazyGroup, lazy={"check": "mldoctor.image.command:check"})
def image() -> None:
    """Images: build the default probe image, or check any image statically (no container started)."""


@image.command("build")
@click.option("--base-image", metavar="IMAGE", help="Base with python3 (and torch) [default: the Dockerfile's].")
@click.option("--tag", metavar="TAG", help="Tag to build [default: mldoctor-probe:VERSION, what check uses].")
@click.option("--pull", is_flag=True, help="Pull the base image first, with a progress display.")
@click.option(
    "--wheelhouse",
    type=click.Path(exists=True, file_okay=False),
    help="Install every wheel in DIR offline (torch for a base without it; include pip's wheel if it has no pip).",
)
@click.option(
    "--network",
    metavar="NETWORK",
    help="Network of the build's RUN steps: host (when the default bridge is broken), none, or a network name "
    "[default: the daemon's bridge].",
)
def image_build(
    base_image: str | None, tag: str | None, pull: bool, wheelhouse: str | None, network: str | None
) -> int:
    """Build the probe image: the base, the probe program and a non-root user; the build log is streamed."""
    from mldoctor.facts.probe import DEFAULT_IMAGE
    from mldoctor.probe import launch

    base = base_image or launch.default_base_image()
    tag = tag or DEFAULT_IMAGE
    try:
        if pull and not _show_pull(launch.pull_image(base)):
            return EXIT_FAILED
        ok = _show_build(launch.build_image(base, tag, __version__, wheelhouse, network=network))
    except Exception as exc:  # the daemon is unreachable or refused: one line, and where to look
        from mldoctor.engine.errors import classify_error

        click.echo(f"mldoctor: error: {type(exc).__name__}: {exc} ({classify_error(exc)})", err=True)
        click.echo("run `mldoctor check --only docker` for the fix", err=True)
        return EXIT_FAILED
    if ok:
        click.echo(f"built {tag} from {base}; `mldoctor check` now runs its probe in it")
    return EXIT_OK if ok else EXIT_FAILED


def _show_build(events: Any) -> bool:
    """Stream the build log, one line per log line; on a terminal a spinner below it names the current step.

    While the spinner is live, only rich may write to that terminal (it prints the log above the spinner);
    errors are printed once it has stopped, so its clean-up cannot erase them."""
    import contextlib

    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False)
    live = console.is_terminal and not console.is_dumb_terminal
    through_rich = live and sys.stdout.isatty()  # the log and the spinner share the screen
    errors: list[str] = []
    status = console.status("building…") if live else contextlib.nullcontext()
    try:
        with status as spinner:
            for event in events:
                if event.error:
                    errors.append(event.text)
                elif through_rich:
                    console.print(Text(event.text), soft_wrap=True, markup=False, emoji=False)
                else:
                    click.echo(event.text)
                if spinner is not None and event.text.startswith("Step "):
                    spinner.update(Text(f"building: {event.text}", no_wrap=True, overflow="ellipsis"))
    finally:
        for text in errors:
            click.echo(f"mldoctor: build failed: {text}", err=True)
    return not errors


def _show_pull(events: Any) -> bool:
    """Pull progress: one bar over all layers' bytes on a terminal, the status lines elsewhere; an error is printed
    once the bar is gone (its clean-up would erase it)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    console = Console(stderr=True, highlight=False)
    layers: dict[str, tuple[int, int]] = {}
    error = None
    with Progress(TextColumn("pulling"), BarColumn(), DownloadColumn(), console=console, transient=True) as bar:
        task = bar.add_task("pull", total=None)
        for event in events:
            if event.error:
                error = event.text
                break
            if event.layer and event.total:
                layers[event.layer] = (event.current, event.total)
                bar.update(task, completed=sum(c for c, _ in layers.values()), total=sum(t for _, t in layers.values()))
            elif not console.is_terminal and event.text:
                click.echo(f"{event.layer + ': ' if event.layer else ''}{event.text}", err=True)
    if error is not None:
        click.echo(f"mldoctor: pull failed: {error}", err=True)
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """One line and exit 2 for bad input, exit 3 (never a traceback) when mldoctor breaks; after Ctrl-C (130) or
    SIGTERM (143) what the run started is undone first (`mldoctor.interrupts`). Raises SystemExit."""
    with interrupts.sigterm_raises():
        try:
            code = cli.main(args=argv, prog_name="mldoctor", standalone_mode=False)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            click.echo(f"mldoctor: error: {exc.format_message()}{hint}", err=True)
            code = EXIT_USAGE
        except click.ClickException as exc:
            click.echo(f"mldoctor: error: {exc.format_message()}", err=True)
            code = EXIT_USAGE
        except (KeyboardInterrupt, click.Abort, interrupts.Terminated) as exc:
            click.echo("mldoctor: interrupted", err=True)
            interrupts.undo_all()
            raise Interrupted(interrupts.Terminated.code if isinstance(exc, interrupts.Terminated) else 130) from None
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


class Interrupted(SystemExit):
    """The run was cut short and has undone what it started: the process may end without waiting for its threads."""


def entry() -> None:
    """The `mldoctor` command and `python -m mldoctor`: `main`, ended at once after an interrupt (`interrupts.end`),
    and without the interpreter's teardown once it finished with nothing left running (`interrupts.finish`)."""
    try:
        main()
    except Interrupted as exc:
        interrupts.end(int(exc.code))
    except SystemExit as exc:
        interrupts.finish(int(exc.code or 0))
