"""`mldoctor image check IMAGE`: will this image run on our GPUs? Nothing in the image is started.

Only wiring: arguments -> facts (daemon or archive) -> targets -> pure checks -> Report -> the existing renderers,
and `check`'s exit codes: 0 nothing failed, 1 a FAIL (or a WARN with --strict), 2 bad input (an image that does not
exist, a bad --driver, an unreadable archive), 3 mldoctor could not run (no daemon to ask). Bad input is one line.
Only click is imported at the top, so registering the command keeps `mldoctor --help` light.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from mldoctor import options

EXIT_USAGE, EXIT_INTERNAL = 2, 3


def _fail(ctx: click.Context, message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"mldoctor: error: {message}", err=True)
    ctx.exit(code)


def _is_archive(ref: str) -> bool:
    """An argument that names a file or an OCI layout folder here is read as an archive, not as an image name."""
    if os.path.isdir(ref):
        return any(os.path.exists(os.path.join(ref, n)) for n in ("index.json", "manifest.json"))
    return os.path.isfile(ref)


@click.command("check")
@click.argument("image_ref", metavar="IMAGE", required=False)
@click.option(
    "--from-tar",
    "from_tar",
    metavar="PATH",
    help="Read a `docker save` tarball or an OCI layout (file or folder) instead of the daemon; IMAGE then picks "
    "one of its tags.",
)
@click.option("--driver", metavar="VERSION", help="Judge against this NVIDIA driver (e.g. 550.90) [default: this "
              "host's, else the policy's min_driver_version].")  # fmt: skip
@click.option(
    "--gpu",
    "gpus",
    multiple=True,
    metavar="MODEL",
    help="A GPU model the image must run on (H100, A100, RTX 4090; repeatable) [default: this host's, else the "
    "policy's require_gpu_models].",
)
@click.option("--dockerfile", type=click.Path(dir_okay=False), help="Also lint this Dockerfile (hadolint's ids).")
@click.option("--no-host", is_flag=True, help="Do not ask this host's NVIDIA driver for targets.")
@options.CONFIG_OPTION
@options.FORMAT_OPTION
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Write the report to FILE.")
@click.option("-v", "--verbose", is_flag=True, help="Show the details of every finding.")
@options.setting_option("strict")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the JSON report to FILE.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), help="Also write JUnit XML to FILE.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), help="Also write Markdown to FILE.")
@click.option(
    "--github/--no-github",
    default=None,
    help="GitHub Actions annotations and step summary [default: on when GITHUB_ACTIONS=true].",
)
@click.option("--timeout", type=options.Seconds(0.5, 300), default=10.0, show_default=True, help="Per daemon call.")
@click.pass_context
def check(
    ctx: click.Context,
    image_ref: str | None,
    from_tar: str | None,
    driver: str | None,
    gpus: tuple[str, ...],
    dockerfile: str | None,
    no_host: bool,
    fmt: str,
    output_path: str | None,
    verbose: bool,
    github: bool | None,
    timeout: float,
    **_: Any,
) -> None:
    """Check an image statically (no container is started): the CUDA it requires and torch's CUDA build against
    the driver, torch's kernels against the GPUs, driver files or CUDA_VISIBLE_DEVICES baked in, cuda-compat on
    GeForce, Python, the user, HEALTHCHECK, the base tag and the size. Targets: --driver/--gpu, else this host's
    driver and GPUs, else the policy file."""
    from mldoctor.image import checks, report, targets

    if not (image_ref or from_tar or dockerfile):
        _fail(ctx, "give an IMAGE, --from-tar PATH or --dockerfile PATH (see `mldoctor image check --help`)")
    files = {name: ctx.params[f"{name}_file"] for name in ("json", "junit", "markdown")}
    try:
        for name, path in [("-o", output_path), *((f"--{n}", p) for n, p in files.items())]:
            options.check_output_path(path, name)
        resolved = options.settings(ctx)
        driver = targets.check_driver(driver) if driver else None
    except (click.UsageError, ValueError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        _fail(ctx, message)
    policy = resolved.policy
    target = targets.resolve(driver, list(gpus), policy, use_host=not no_host, timeout=min(timeout, 5.0))
    facts = _facts(ctx, image_ref, from_tar, timeout)
    results = checks.judge(facts, target) if facts is not None else []
    text = None
    if dockerfile:
        text = _dockerfile(ctx, dockerfile, target, results)
    built = report.build(results, facts, target, policy, dockerfile=text)
    strict = bool(resolved.value("strict"))
    _emit(built, fmt, output_path, verbose)
    _export(built, files, strict, github if github is not None else os.environ.get("GITHUB_ACTIONS") == "true", fmt)
    ctx.exit(built.exit_code(strict))


def _facts(ctx: click.Context, image_ref: str | None, from_tar: str | None, timeout: float) -> Any:
    """The image's facts, or None when only a Dockerfile is linted; bad input exits 2, no daemon 3."""
    from mldoctor.image import archive, daemon

    path = from_tar or (image_ref if image_ref and _is_archive(image_ref) else None)
    if path:
        try:
            return archive.read_archive(path, image_ref if from_tar else None)
        except archive.ArchiveError as exc:
            _fail(ctx, str(exc))
    if not image_ref:
        return None
    try:
        return daemon.read_image(image_ref, timeout)
    except daemon.ImageError as exc:
        if exc.kind == "image":
            _fail(ctx, str(exc))
        _fail(ctx, f"{exc}; `mldoctor check --only docker` says why, or use --from-tar", EXIT_INTERNAL)
    return None


def _dockerfile(ctx: click.Context, path: str, target: Any, results: list[Any]) -> str | None:
    from mldoctor.image import dockerfile

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(dockerfile.MAX_BYTES + 1)
        results += dockerfile.findings(text, target, path)
    except (OSError, UnicodeDecodeError, dockerfile.DockerfileError) as exc:
        _fail(ctx, f"cannot read the Dockerfile {path}: {exc}")
        return None
    return text


def _emit(built: Any, fmt: str, output_path: str | None, verbose: bool) -> None:
    from mldoctor import output

    if output_path:
        output.write_output(output_path, output.render(fmt, built, output.RenderOptions(verbose=verbose)))
        return
    if fmt == "table" and (sys.stdout.isatty() or os.environ.get("FORCE_COLOR")):
        from rich.console import Console

        console = Console(highlight=False)
        if console.is_terminal:
            from mldoctor.output import table

            table.print_report(built, console, verbose)
            return
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else 120
    click.echo(output.render(fmt, built, output.RenderOptions(verbose=verbose, width=width)), nl=False)


def _export(built: Any, files: dict[str, str | None], strict: bool, github: bool, fmt: str) -> None:
    from mldoctor import output

    rendering = output.RenderOptions(strict=strict)
    for name, path in files.items():
        if path:
            output.write_output(path, output.render(name, built, rendering))
    if not github:
        return
    from mldoctor.output import github as github_output

    click.echo(output.render("github", built, rendering), nl=False, err=fmt == "json")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        github_output.append_step_summary(summary, output.render("markdown", built))
