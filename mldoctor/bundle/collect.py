"""raw/: the outputs a support engineer asks for first, declared the way a sos plugin declares them.

Each Source names one file of the archive and how to read it: a command (with a deadline), a file, or a view of
the facts already gathered. Collection never raises: a source that does not exist here (no nvidia-smi on a
GPU-less host) or fails is recorded as a note for the manifest, and the bundle is written without it. Nothing
here redacts: the archive writer sends every file through the one Redactor.

Never collected: ~/.docker/config.json (registry credentials) and the rest of the home directory.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass

from mldoctor import interrupts
from mldoctor.bundle.redact import relevant_environment
from mldoctor.facts import Facts
from mldoctor.facts.common import CommandOutput
from mldoctor.serde import to_data
from mldoctor.text import printable

MAX_CHARS = 2 << 20
"""Per file: keeps a bundle from a machine with a huge log well under 5 MB (the tail is kept, where the
recent lines are)."""
SLOW_COMMAND_S = 30.0
"""nvidia-smi -q on 8 GPUs takes seconds; slow collectors get at least this long whatever --timeout says."""
KERNEL_LINES = 500
MAX_CDI_SPECS = 64
NVIDIA_PCI = re.compile(r"NVIDIA|\[10de:", re.IGNORECASE)
NVIDIA_KERNEL = re.compile(r"NVRM|Xid|nvidia|nouveau|NVSwitch|nvlink", re.IGNORECASE)


class Unavailable(Exception):
    """The source does not exist on this machine or could not be read; the message says which."""


@dataclass(frozen=True)
class Collected:
    """One file of raw/ as collected: its text (None when not collected) and the note the manifest records for it."""

    name: str
    text: str | None
    note: str
    """"collected", or why the file is missing or partial (for the manifest)."""


@dataclass(frozen=True)
class Source:
    """One file of raw/ and how to read it: a command, a file, or a view of the facts already gathered."""

    name: str
    read: Callable[[Facts, float], str]
    """Facts and the per-command timeout -> the file's text; raises Unavailable."""


def command(*argv: str, keep: re.Pattern[str] | None = None, slow: bool = False) -> Callable[[Facts, float], str]:
    """A read-only command's output (stdout, then stderr), kept even when it fails: nvidia-smi's "couldn't
    communicate with the NVIDIA driver" is exactly what support wants to read."""

    def read(facts: Facts, timeout: float) -> str:
        return _run(list(argv), max(timeout, SLOW_COMMAND_S) if slow else timeout, keep)

    return read


def _output(argv: list[str], timeout: float) -> CommandOutput:
    if shutil.which(argv[0]) is None:
        raise Unavailable(f"{argv[0]} is not installed")
    output = run_keeping_tail(argv, timeout)
    if output.error:
        raise Unavailable(output.error)
    return output


def run_keeping_tail(argv: list[str], timeout: float, limit: int = MAX_CHARS) -> CommandOutput:
    """Run a command and keep the *tail* of its output. Like facts.common.run_command (a hard deadline, never
    raises), with two more guarantees a bundle needs: at most the last `limit` bytes of each stream are kept (the
    recent lines of a huge dmesg, at no memory cost), and the deadline holds even when a child of the command keeps
    the pipes open (the command's whole process group is killed)."""
    result = CommandOutput(argv=argv)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        result.error = f"{argv[0]}: {exc.strerror or exc}"
        return result
    streams = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as selector:
            for stream in streams:
                selector.register(stream, selectors.EVENT_READ)  # type: ignore[arg-type]
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in selector.select(min(left, 1.0)):
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    tail = streams[key.fileobj]  # type: ignore[index]
                    tail += chunk
                    del tail[: max(0, len(tail) - limit)]
        result.returncode = proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        result.error = f"{' '.join(argv)}: no answer within {timeout:g} s"
    finally:
        if result.returncode is None:  # timed out, or Ctrl-C: nothing of it outlives the bundle
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for stream in streams:
            stream.close()  # type: ignore[union-attr]
    if result.error is None:
        out, err = (bytes(tail).decode("utf-8", errors="replace").strip() for tail in streams.values())
        result.stdout, result.stderr = out, err
    return result


def _run(argv: list[str], timeout: float, keep: re.Pattern[str] | None = None) -> str:
    output = _output(argv, timeout)
    text = output.stdout
    if keep is not None:
        text = "\n".join(line for line in text.splitlines() if keep.search(line)) or "# no matching lines"
    if output.returncode:
        text += f"\n# {' '.join(argv)} exited with code {output.returncode}\n{output.stderr}"
    if not text.strip():
        raise Unavailable(f"{' '.join(argv)} printed nothing")
    return text.strip() + "\n"


def file(*paths: str) -> Callable[[Facts, float], str]:
    """The first of `paths` that is readable."""

    def read(facts: Facts, timeout: float) -> str:
        return _read_file(*paths)

    return read


def read_tail(path: str, limit: int = MAX_CHARS) -> str | None:
    """A regular file's *last* `limit` characters (facts.common.read_text keeps the first ones: a fact is at the
    top of a small file, a log's news at the bottom of a big one); None when it is missing, unreadable or not a
    regular file. Never blocks: a FIFO or a device planted where a config should be (/etc/cdi/x as a pipe) is
    refused before anything is read from it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > 4 * limit:  # /proc files report size 0 and are read whole; a huge file: its tail
            os.lseek(fd, info.st_size - 4 * limit, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(4 * limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")[-limit:]


def _read_file(*paths: str) -> str:
    for path in paths:
        text = read_tail(path, limit=MAX_CHARS + 1)
        if text is not None:
            return text
    raise Unavailable(f"{' or '.join(paths)}: missing or not readable")


def docker_system_df(facts: Facts, timeout: float) -> str:
    """`docker system df` prints one JSON object per line; the file holds them as one JSON list."""
    text = _run(["docker", "system", "df", "--format", "{{json .}}"], max(timeout, SLOW_COMMAND_S))
    try:
        return json.dumps([json.loads(line) for line in text.splitlines() if line.strip()], indent=2) + "\n"
    except ValueError:
        return text


def daemon_json(facts: Facts, timeout: float) -> str:
    """The daemon.json the running daemon uses (the docker facts found which: --config-file, rootless, snap)."""
    config = facts.docker.config if facts.docker else None
    if config is None or not config.path:
        raise Unavailable("no daemon on this host whose configuration could be located")
    if not config.found:
        raise Unavailable(f"{config.path} does not exist (the daemon runs with its defaults)")
    return _read_file(config.path)


def cdi_specs(facts: Facts, timeout: float) -> str:
    """Every CDI spec, as one multi-document YAML file, each document headed by its path."""
    paths = sorted(glob.glob("/etc/cdi/*") + glob.glob("/var/run/cdi/*"))[:MAX_CDI_SPECS]
    documents = [f"--- # {path}\n{text}" for path in paths if (text := read_tail(path, limit=MAX_CHARS)) is not None]
    if not documents:
        raise Unavailable("no CDI spec in /etc/cdi or /var/run/cdi")
    return "\n".join(documents)


def docker_journal(facts: Facts, timeout: float) -> str:
    """The daemon's recent log, from the unit of this Docker flavour."""
    flavour = facts.docker.flavour if facts.docker else "engine"
    units = {"snap": ["-u", "snap.docker.dockerd"], "rootless": ["--user", "-u", "docker"]}
    unit = units.get(flavour, ["-u", "docker"])
    return _run(["journalctl", *unit, "--no-pager", "-q", "-n", "300"], timeout)


def kernel_lines(facts: Facts, timeout: float) -> str:
    """Recent NVRM/Xid/nvidia kernel lines: dmesg, else the journal's kernel log (either may need privileges)."""
    errors = []
    for argv in (["dmesg"], ["journalctl", "-k", "--no-pager", "-q", "-n", "20000"]):
        try:
            output = _output(argv, timeout)
        except Unavailable as exc:
            errors.append(str(exc))
            continue
        if not output.ok:
            errors.append(f"{argv[0]}: {output.stderr or f'exit code {output.returncode}'}")
            continue
        lines = [line for line in output.stdout.splitlines() if NVIDIA_KERNEL.search(line)]
        return "\n".join(lines[-KERNEL_LINES:]) + "\n" if lines else "# no NVIDIA kernel messages\n"
    raise Unavailable("; ".join(errors))


def uname(facts: Facts, timeout: float) -> str:
    return " ".join(os.uname()) + "\n"


def probe_stdout(facts: Facts, timeout: float) -> str:
    """What the probe printed: its document as parsed, or the start of whatever else it printed."""
    if facts.probe is None:
        raise Unavailable("the probe did not run (--no-probe)")
    if facts.probe.document is not None:
        return json.dumps(to_data(facts.probe.document), indent=2) + "\n"
    if facts.probe.run.stdout_head:
        return facts.probe.run.stdout_head
    raise Unavailable(f"the probe printed nothing (stopped at {facts.probe.run.stage}: {facts.probe.run.error})")


def probe_stderr(facts: Facts, timeout: float) -> str:
    if facts.probe is None:
        raise Unavailable("the probe did not run (--no-probe)")
    if not facts.probe.run.stderr_tail:
        raise Unavailable("the probe wrote nothing on stderr")
    return facts.probe.run.stderr_tail + "\n"


def image_packages(facts: Facts, timeout: float) -> str:
    """The Python distributions of the environment that trains (the probed image, or the host under
    --no-container), as the probe listed them there, `name==version` as `pip freeze` prints them. The names come
    from the image: each is made one printable line."""
    if facts.probe is None:
        raise Unavailable("the probe did not run (--no-probe)")
    document, run = facts.probe.document, facts.probe.run
    if document is None:
        raise Unavailable(f"the probe printed no document (stopped at {run.stage}: {run.error})")
    if document.packages is None:
        raise Unavailable("the probe did not list the packages (an older probe, or listing failed: see its errors)")
    where = "the host (--no-container)" if run.mode == "host" else f"the image {run.image}"
    python = document.python
    lines = [_one_line(f"# Python distributions in {where}: python {python.version} at {python.executable}")]
    if document.packages_omitted:
        lines.append(f"# {document.packages_omitted} more not listed (past the probe's bound, or unreadable metadata)")
    pins = sorted(document.packages, key=lambda item: item[0].lower())
    lines += [_one_line(f"{name}=={version}") for name, version in pins]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return printable(text).replace("\r", "\\r").replace("\n", "\\n")


def packages(facts: Facts, timeout: float) -> str:
    """mldoctor's own Python packages, as `pip freeze` would list them, read from their metadata: 0.07 s where
    `python -m pip freeze` takes 0.38 s, and no pip needed."""
    from importlib import metadata

    names = {(d.metadata["Name"] or "?", d.version) for d in metadata.distributions()}
    lines = [f"# mldoctor's own environment ({as_text(sys.executable)}), not the image that trains"]
    return (
        "\n".join([*lines, *(f"{name}=={version}" for name, version in sorted(names, key=lambda n: n[0].lower()))])
        + "\n"
    )


def environment(facts: Facts, timeout: float) -> str:
    """mldoctor's interpreter and the allowlisted part of its environment, as text that encodes (see `as_text`)."""
    kept, left_out = relevant_environment(os.environ)
    lines = [
        f"# python {sys.version.split()[0]} at {as_text(sys.executable)}",
        *(f"{as_text(k)}={as_text(v)}" for k, v in kept.items()),
    ]
    lines.append(f"# {left_out} other variables left out (not on the allowlist in docs/report.md)")
    return "\n".join(lines) + "\n"


def as_text(value: str) -> str:
    """An environment string as text that encodes to UTF-8. Python keeps the bytes of a variable that are not
    UTF-8 (`LD_LIBRARY_PATH=$'\\xff'`) as lone surrogates, which no encoder accepts: each such byte becomes U+FFFD,
    so one odd byte costs one character, not the whole bundle. Values of any length are kept whole."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


SOURCES = (
    Source("raw/docker-version.json", command("docker", "version", "--format", "{{json .}}")),
    Source("raw/docker-info.json", command("docker", "info", "--format", "{{json .}}")),
    Source("raw/docker-system-df.json", docker_system_df),
    Source("raw/daemon.json", daemon_json),
    Source("raw/docker-journal.txt", docker_journal),
    Source("raw/nvidia-smi-q.txt", command("nvidia-smi", "-q", slow=True)),
    Source("raw/proc-driver-nvidia-version.txt", file("/proc/driver/nvidia/version")),
    Source("raw/lspci-nvidia.txt", command("lspci", "-nn", keep=NVIDIA_PCI)),
    Source("raw/kernel-nvidia.txt", kernel_lines),
    Source("raw/nvidia-container-runtime-config.toml", file("/etc/nvidia-container-runtime/config.toml")),
    Source("raw/cdi-specs.yaml", cdi_specs),
    Source("raw/os-release.txt", file("/etc/os-release", "/usr/lib/os-release")),
    Source("raw/uname.txt", uname),
    Source("raw/probe-stdout.json", probe_stdout),
    Source("raw/probe-stderr.txt", probe_stderr),
    Source("raw/image-packages.txt", image_packages),
    Source("raw/pip-freeze.txt", packages),
    Source("raw/environment.txt", environment),
)


def _collect_one(source: Source, facts: Facts, timeout: float) -> Collected:
    try:
        text = source.read(facts, timeout)
        if not isinstance(text, str):
            raise TypeError(f"{source.name}: read {type(text).__name__}, not text")
    except Unavailable as exc:
        return Collected(source.name, None, f"not collected: {exc}")
    except Exception as exc:  # a collector bug must not cost the user the rest of the bundle
        return Collected(source.name, None, f"not collected: {type(exc).__name__}: {exc}")
    if len(text) > MAX_CHARS:
        cut = len(text) - MAX_CHARS
        return Collected(source.name, text[-MAX_CHARS:], f"collected; its first {cut} characters were cut")
    return Collected(source.name, text, "collected")


def collect(facts: Facts, timeout: float, sources: tuple[Source, ...] | None = None) -> list[Collected]:
    """Every source (SOURCES unless given), in parallel, each under its own deadline; in their order."""
    sources = SOURCES if sources is None else sources
    budget = 2 * max(timeout, SLOW_COMMAND_S) + 5  # one source may run two commands (dmesg, then journalctl -k)
    deadline = time.monotonic() + budget
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bundle-collect")
    try:
        futures = [pool.submit(_collect_one, source, facts, timeout) for source in sources]
        collected = []
        for source, future in zip(sources, futures, strict=True):
            interrupts.wait(future, deadline - time.monotonic())  # Ctrl-C is not held up by a slow source
            try:
                collected.append(future.result(0))
            except FuturesTimeout:  # a source that ignores its deadline does not hold the bundle back
                collected.append(Collected(source.name, None, f"not collected: no answer within {budget:g} s"))
        return collected
    finally:  # on Ctrl-C, do not start the sources still queued
        pool.shutdown(wait=False, cancel_futures=True)
