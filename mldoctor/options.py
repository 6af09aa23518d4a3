"""Command-line options shared by `check`, `gpu-bench` and `report`, and how they meet the policy file.

Precedence for every setting: built-in default < policy file (mldoctor.toml / [tool.mldoctor]) < the flag typed on
the command line. `settings()` resolves that once per command, so each command reads one `Settings`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
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
    if isinstance(value, bool) or value in (None, "", [], {}, ()):
        return ""
    return f" [default: {value:g}]" if isinstance(value, float) else f" [default: {value}]"


class Seconds(click.FloatRange):
    """A number of seconds within bounds, for the options outside the settings table: click's FloatRange refuses
    inf by its bounds but lets nan through (every comparison with nan is false), which then crashes a deadline."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


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


def split(values: Any) -> list[str]:
    """--only a,b --only c (or a list from the policy file) -> [a, b, c]"""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


PROGRESS_LOGGER = "mldoctor.progress"
"""Where slow work says what it is doing: `logging.getLogger(PROGRESS_LOGGER).info(text, extra={"usual_s": N})`.
The gatherers log there (from their threads) without knowing who listens; `Progress` listens while it is open."""

USUAL_S = 10.0
"""After this long a step is taking longer than usual (flutter doctor says so after 10 s too)."""

REPEAT_S = 30.0
"""In CI, how often a slow step says again that it is still running (a silent log looks like a hang)."""


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


class Progress:
    """What the run is doing and for how long, on stderr only: a spinner line on a terminal, timed plain lines in CI
    (`--ci`), nothing on a pipe. Each step says what is happening; one that runs past its usual time says so.

    Thread-safe: steps come from the command and from gatherer threads (through the PROGRESS_LOGGER log). Once
    closed (the work is done, or Ctrl-C ended it) it prints nothing more, and the spinner leaves no trace."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._lock = threading.RLock()
        self._text = ""
        self._usual = USUAL_S
        self._began = self._since = time.monotonic()
        self._live: Any = None
        self._spinner: Any = None
        self._due = float("inf")
        """CI: when the current step is next reported as late (monotonic time)."""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._closed = False
        self._handler = _ProgressHandler(self)
        self._saved_level = logging.NOTSET

    def __enter__(self) -> Progress:
        if self.mode == "off":
            return self
        if self.mode == "spinner":
            from rich.console import Console
            from rich.live import Live
            from rich.spinner import Spinner

            self._spinner = Spinner("dots", style="green")
            console = Console(stderr=True, highlight=False)
            self._live = Live(self, console=console, transient=True, refresh_per_second=8, redirect_stdout=False)
            self._live.start()
        else:
            self._ticker = threading.Thread(target=self._tick, name="mldoctor-progress", daemon=True)
            self._ticker.start()
        logger = logging.getLogger(PROGRESS_LOGGER)
        self._saved_level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self._handler)
        return self

    def step(self, text: str, usual_s: float = USUAL_S) -> None:
        """Now doing `text`, which usually takes under `usual_s` seconds."""
        with self._lock:
            if self._closed or self.mode == "off":
                return
            self._text, self._usual, self._since = text, usual_s, time.monotonic()
            if self.mode == "lines":
                self._line(text)
                self._due = self._since + usual_s
        # the spinner shows it at its next redraw (8 a second); refreshing here would take rich's lock inside this
        # one, while rich's refresh thread takes them the other way round

    def elapsed(self) -> float:
        """Seconds since the work began."""
        return time.monotonic() - self._began

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        click.echo(f"mldoctor: {stamp} +{self.elapsed():5.1f}s {text}", err=True)

    def _tick(self) -> None:
        """CI: one thread for the whole run (none started mid-run) says when a step runs past its usual time, then
        again every REPEAT_S seconds while it keeps running."""
        while not self._stop.wait(0.1):
            with self._lock:
                if self._closed or time.monotonic() < self._due:
                    continue
                took = time.monotonic() - self._since
                again = "still " if took >= self._usual + REPEAT_S / 2 else ""
                self._line(f"{again}taking longer than usual ({_seconds(took)} so far): {self._text}")
                self._due = time.monotonic() + REPEAT_S

    def __rich_console__(self, console: Any, options: Any) -> Any:
        """The spinner line, redrawn by rich several times a second: the step, cut to fit the terminal, then how long
        it has been running and, past its usual time, that it is taking longer than usual (never cut off)."""
        from rich.text import Text

        with self._lock:
            took = time.monotonic() - self._since
            tail = Text()
            if self._text and took >= 1:
                tail.append(f" · {_seconds(took)}", style="dim")
            if self._text and took >= self._usual:
                tail.append(" · taking longer than usual", style="yellow")
            line = Text(self._text, no_wrap=True)
            line.truncate(max(8, options.max_width - 2 - tail.cell_len), overflow="ellipsis")
            self._spinner.update(text=line + tail)
        yield self._spinner

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
        self._stop.set()
        logger = logging.getLogger(PROGRESS_LOGGER)
        logger.removeHandler(self._handler)
        logger.setLevel(self._saved_level)
        if self._live is not None:
            self._live.stop()


class _ProgressHandler(logging.Handler):
    """Steps logged by gatherers (from any thread) go to the open Progress."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # progress must never break, nor clutter, the work it describes
            self.progress.step(record.getMessage(), getattr(record, "usual_s", None) or USUAL_S)


def progress(ci: bool) -> Progress:
    """Timed lines on stderr with `--ci`; else a spinner when stderr is a terminal (whatever stdout is: a report
    piped or written to a file keeps its progress on the terminal); else nothing."""
    if ci:
        return Progress("lines")
    return Progress("spinner" if sys.stderr.isatty() and os.environ.get("TERM") != "dumb" else "off")
