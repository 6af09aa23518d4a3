"""Command-line options shared by `check`, `gpu-bench` and `report`, and how they meet the policy file.

Precedence for every setting: built-in default < policy file (mldoctor.toml / [tool.mldoctor]) < the flag typed on
the command line. `settings()` resolves that once per command, so each command reads one `Settings`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

if TYPE_CHECKING:
    from mldoctor.config import Effective
    from mldoctor.facts.probe import ProbeOptions
    from mldoctor.policy import Policy

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


def _dtypes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    dtypes = tuple(split(values))
    unknown = [d for d in dtypes if d not in BENCH_DTYPES]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: use some of {', '.join(BENCH_DTYPES)}")
    return dtypes


def _decorate(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


FORMAT_OPTION = click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format (on stdout, or in -o FILE).",
)

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Policy file [default: mldoctor.toml or [tool.mldoctor] in pyproject.toml, from here upwards].",
)

probe_options = _decorate(
    [
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
            "--dtypes",
            multiple=True,
            metavar="LIST",
            callback=_dtypes,
            help="Matmul dtypes to benchmark, e.g. bf16,fp8 [default: all the GPU supports].",
        ),
        click.option(
            "--expect-tflops",
            multiple=True,
            metavar="DTYPE=N",
            callback=_expect_tflops,
            help="Expected matmul TFLOP/s for a GPU the spec table lacks (repeatable), e.g. bf16=700.",
        ),
    ]
)
"""Which image the probe runs in, with what, for how long."""

host_options = _decorate(
    [
        CONFIG_OPTION,
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1, max=600),
            default=5.0,
            show_default=True,
            help="Seconds to wait for each answer from the daemon or a helper command.",
        ),
        click.option(
            "--disk-fail-gib", type=click.FloatRange(min=0), help="FAIL a disk with less free space (default 5)."
        ),
        click.option(
            "--disk-warn-gib", type=click.FloatRange(min=0), help="WARN on a disk with less free space (default 20)."
        ),
        click.option(
            "--require-gpus",
            type=click.IntRange(min=0),
            metavar="N",
            help="FAIL unless this host has at least N NVIDIA GPUs (default 0: a GPU-less host skips them).",
        ),
        click.option(
            "--no-probe", is_flag=True, help="Skip the probe container and the benchmarks (probe.*, bench.*)."
        ),
        click.option(
            "--probe-timeout",
            type=click.FloatRange(min=1, max=3600),
            default=120.0,
            show_default=True,
            help="Seconds the probe may take besides its benchmarks; then its container is killed and removed.",
        ),
    ]
)
"""What a full check of this host needs: the policy file, deadlines, the GPU requirement, the probe switch."""


@dataclass
class Settings:
    """One command's resolved settings: the flags, merged with the policy file and the defaults."""

    effective: Effective
    config_path: str | None

    @property
    def policy(self) -> Policy:
        return self.effective.policy()

    def value(self, key: str) -> Any:
        return self.effective.values[key]

    def probe(self, no_container: bool = False) -> ProbeOptions:
        from mldoctor.facts.probe import ProbeOptions

        probe = self.effective.probe()
        return ProbeOptions(
            image=probe["image"],
            gpus=probe["gpus"],
            shm_size=probe["shm_size"],
            duration=probe["duration"],
            timeout=probe["timeout"],
            container=not no_container,
            bench=probe["duration"] > 0,
            dtypes=tuple(probe["dtypes"]),
        )


def settings(ctx: click.Context, renamed: dict[str, str] | None = None) -> Settings:
    """Resolve defaults < policy file < command line for this command; a bad file is a usage error (exit 2).

    `renamed` maps a command's own parameter to the setting it means (gpu-bench's --timeout is the probe's).
    """
    from mldoctor import config

    renamed = renamed or {}
    params = {renamed.get(name, name): value for name, value in ctx.params.items()}
    given = {
        renamed.get(name, name)
        for name in ctx.params
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }
    if params.get("image") and params.get("no_container"):
        raise click.BadParameter("--image runs a container; --no-container runs on the host: pick one")
    try:
        loaded = config.load(params.get("config_file"))
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    effective = config.effective(loaded, params, given)
    resolved = Settings(effective, loaded.path)
    policy = resolved.policy
    for host in (False, True):
        fail_gib, warn_gib = policy.disk_limits(host)
        if warn_gib < fail_gib:
            prefix = "host_" if host else ""
            raise click.UsageError(
                f"{prefix}disk_warn_gib {warn_gib:g} is below {prefix}disk_fail_gib {fail_gib:g} "
                f"({effective.sources[prefix + 'disk_warn_gib']}): warn must be >= fail"
            )
    return resolved


def check_output_path(path: str | None, option: str = "-o") -> None:
    """Refuse an output path that cannot be written before any work is done."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise click.BadParameter(f"{path} is a directory; give a file name", param_hint=f"'{option}'")
    if not os.path.isdir(directory):
        raise click.BadParameter(f"directory {directory} does not exist", param_hint=f"'{option}'")
    if not os.access(directory, os.W_OK):
        raise click.BadParameter(f"cannot write in {directory}", param_hint=f"'{option}'")


def cleanup_on_sigterm(checks: list[Any]) -> None:
    """When a probe container will run, let SIGTERM end mldoctor like Ctrl-C does: the container gets removed."""
    if any(c.area == "probe" for c in checks):
        from mldoctor.probe import launch

        launch.exit_on_sigterm()


def split(values: Any) -> list[str]:
    """--only a,b --only c (or a list from the policy file) -> [a, b, c]"""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


class Progress:
    """What the run is doing, on stderr: a spinner on a terminal, plain timed lines in CI (`--ci`), else nothing."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._status: Any = None

    def __enter__(self) -> Progress:
        if self.mode == "spinner":
            from rich.console import Console

            self._status = Console(stderr=True).status("")
            self._status.__enter__()
        return self

    def step(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)
        elif self.mode == "lines":
            import time

            click.echo(f"mldoctor: {time.strftime('%H:%M:%S')} {text}", err=True)

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)


def progress(ci: bool, quiet: bool = False) -> Progress:
    if ci:
        return Progress("lines")
    return Progress("spinner" if sys.stderr.isatty() and not quiet else "off")
