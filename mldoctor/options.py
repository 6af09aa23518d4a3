"""Command-line options shared by `check`, `gpu-bench` and `report`, and how they meet the policy file.

Precedence for every setting: built-in default < policy file (mldoctor.toml / [tool.mldoctor]) < the flag typed on
the command line. `settings()` resolves that once per command, so each command reads one `Settings`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from mldoctor.settings import Setting
from mldoctor.settings import settings as settings_table

if TYPE_CHECKING:
    from mldoctor.config import Effective
    from mldoctor.facts.options import ProbeOptions
    from mldoctor.policy import Policy


def _convert(setting: Setting, word: str) -> Any:
    """One command-line word as the setting's value type (click would call `inf` a float: the check refuses it)."""
    if setting.parse is not None:
        return setting.parse(word)
    kind = setting.type
    try:
        return int(word) if kind is int else float(word) if kind is float else word
    except ValueError:
        raise click.BadParameter(f"{word!r} is not {'a whole number' if kind is int else 'a number'}") from None


def _validated(setting: Setting) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """The click callback of a setting's flag: convert, then the same check the policy file gets."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == () or setting.type is bool:
            return value
        words = value if setting.repeatable else (value,)
        parts = [_convert(setting, word) for word in words]
        if not setting.repeatable:
            typed = parts[0]
        elif setting.type == list[str]:
            typed = [item for part in parts for item in part]
        else:
            typed = {k: v for part in parts for k, v in part.items()}
        problem = setting.problem(typed)
        if problem:
            shown = ",".join(words) if setting.repeatable else value
            raise click.BadParameter(f"{shown!r}: use {problem}")
        return typed.lower() if setting.name == "probe.shm_size" else typed

    return callback


def _shown(value: Any) -> str:
    if isinstance(value, bool) or value in (None, [], {}, ()):
        return ""
    return f" [default: {value:g}]" if isinstance(value, float) else f" [default: {value}]"


def setting_option(name: str, flag: str | None = None) -> Callable[[Any], Any]:
    """The click option of a setting, from the table (`flag` renames it for one command: gpu-bench's --timeout is
    the probe's timeout); its value stays under the setting's own parameter name."""
    setting = settings_table()[name]
    flag = flag or setting.flag
    if flag is None or setting.param is None:
        raise ValueError(f"setting {name} has no command-line flag")
    if setting.type is bool:
        return click.option(flag, setting.param, is_flag=True, help=setting.help)
    return click.option(
        flag,
        setting.param,
        multiple=setting.repeatable,
        metavar=setting.metavar or ("N" if setting.type in (int, float) else None),
        callback=_validated(setting),
        help=setting.help + _shown(setting.default),
        shell_complete=_completion(setting),
    )


Completer = Callable[[click.Context, click.Parameter, str], list[Any]]


def _completion(setting: Setting) -> Completer | None:
    """What shell completion offers for a setting's flag: check ids for --only/--skip, else its suggested values."""
    if setting.name in ("only", "skip"):
        return complete_check_ids
    if setting.suggest:
        values = setting.suggest
        return lambda ctx, param, incomplete: [v for v in values if v.startswith(incomplete)]
    return None


def complete_check_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Areas and check ids for --only/--skip, the last item of a comma list completed (`docker.disk,nv<TAB>`).
    The rule modules are pure (no docker, pynvml or torch), so loading them all keeps completion fast."""
    from click.shell_completion import CompletionItem

    from mldoctor.model import AREAS
    from mldoctor.rules import load

    done, _, word = incomplete.rpartition(",")
    prefix = done + "," if done else ""
    given = set(done.split(",")) if done else set()
    titles = {area: f"every {title} check" for area, title in AREAS.items()}
    titles.update((check_id, check.title) for check_id, check in load().items())
    return [
        CompletionItem(prefix + name, help=title)
        for name, title in titles.items()
        if name.startswith(word) and name not in given
    ]


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
        setting_option("probe.image"),
        click.option("--no-container", is_flag=True, help="Run the probe on this host (needs mldoctor[bench])."),
        setting_option("probe.gpus"),
        setting_option("probe.shm_size"),
        setting_option("probe.duration"),
        setting_option("probe.dtypes"),
        setting_option("expect_tflops"),
    ]
)
"""Which image the probe runs in, with what, for how long."""

host_options = _decorate(
    [
        CONFIG_OPTION,
        setting_option("timeout"),
        setting_option("disk_fail_gib"),
        setting_option("disk_warn_gib"),
        setting_option("require_gpus"),
        click.option(
            "--no-probe", is_flag=True, help="Skip the probe container and the benchmarks (probe.*, bench.*)."
        ),
        setting_option("probe.timeout"),
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
        from mldoctor.facts.options import ProbeOptions

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


def settings(ctx: click.Context) -> Settings:
    """Resolve defaults < policy file < command line for this command; a bad file is a usage error (exit 2)."""
    from mldoctor import config

    params = dict(ctx.params)
    given = {
        name
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
    if path is None or path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):  # /dev/null, a FIFO
        if not os.access(path, os.W_OK):
            raise click.BadParameter(f"cannot write to {path}", param_hint=f"'{option}'")
        return
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
