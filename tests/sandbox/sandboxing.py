"""A sandbox in which a Docker failure is set up for real and a printed fix applied verbatim.

Private mount, PID, UTS and network namespaces (`unshare`), with a small init that reaps orphans as PID 1. Inside:
its own tmpfs `/run`, `/etc/docker`, `/var/lib/docker`, `/var/log` and `/home`, `/etc` as an overlay whose writes
stay in the sandbox (useradd, usermod, the init script's copy), and its own dockerd, started the way Debian does
(`/etc/init.d/docker start`) when a test asks for it. Its network namespace is its own: a dockerd there cannot touch
the host's docker0 (a second daemon in the host's namespace with --bridge=none deletes it). Commands run inside with
`nsenter`, with a clean environment (no DOCKER_HOST: the sandbox's /var/run/docker.sock is the endpoint in use).

Teardown kills the sandbox's init (the kernel then kills every process of its PID namespace) and the mounts go with
the mount namespace. Nothing is written on the host but a temporary directory of its own, removed at the end.

One property of this project's machine is handled here, not in the fixes: root lacks CAP_SYS_RESOURCE, so Debian's
init script's `ulimit -n 1048576` (and `-u`/`-p unlimited`) fails; the sandbox's copy of the script makes those
lines non-fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INIT = """
import os, signal, time
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""
DOCKERDS = ("/usr/sbin/dockerd", "/usr/bin/dockerd")
"""Where Debian's docker.io installs dockerd (its init script says /usr/sbin), and where other packages do."""
INIT_SCRIPT = "/etc/init.d/docker"
AS_ROOT = "as root: "


def missing() -> str | None:
    """What this machine lacks to build a sandbox (None: nothing)."""
    if os.geteuid() != 0:
        return "the sandbox needs root (namespaces, mounts, a dockerd)"
    for tool in ("unshare", "nsenter", "su", "useradd", "usermod", "ip", "start-stop-daemon"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not any(os.access(path, os.X_OK) for path in DOCKERDS) or not os.path.exists(INIT_SCRIPT):
        return f"Debian's docker.io (dockerd and {INIT_SCRIPT}) is not installed"
    return None


@dataclass
class Run:
    command: str
    returncode: int
    stdout: str
    stderr: str


class Sandbox:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.unshare: subprocess.Popen | None = None
        self.pid = 0
        self.bin = "/run/.sandbox/bin"

    # lifecycle
    def start(self) -> Sandbox:
        init = self.tmp / "init.py"
        init.write_text(INIT)
        self.unshare = subprocess.Popen(
            ["unshare", "-m", "-p", "-n", "-u", "-f", "--mount-proc", "--propagation", "private", *self.init(init)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not self.pid:
            children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
            try:
                found = children.read_text().split()
            except OSError:
                found = []
            if found and str(init).encode() in _cmdline(int(found[0])):  # exec'd: its namespaces are complete
                self.pid = int(found[0])
            elif time.monotonic() > deadline or self.unshare.poll() is not None:
                raise RuntimeError("unshare did not start the sandbox's init")
            else:
                time.sleep(0.05)
        self._setup()
        return self

    @staticmethod
    def init(path: Path) -> list[str]:
        return [sys.executable, str(path)]

    def stop(self) -> None:
        """Kill the namespace's init: the kernel kills every process in it; its mounts go with it."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.unshare is not None:
            try:
                self.unshare.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait(timeout=5)
        self.pid = 0

    def _setup(self) -> None:
        python_home = self._home_entry(sys.prefix)
        mldoctor = f"#!{sys.executable}\n" + (REPO / "tests" / "sandbox" / "mldoctor_entry.py").read_text()
        script = f"""
set -eu
hostname mldoctor-sandbox
ip link set lo up
mount -t tmpfs -o mode=0755 sandbox-run /run
mkdir -p /run/lock /run/.sandbox/etc-upper /run/.sandbox/etc-work {self.bin} /run/.sandbox/cgroup
mount -t overlay sandbox-etc -o lowerdir=/etc,upperdir=/run/.sandbox/etc-upper,workdir=/run/.sandbox/etc-work /etc
mount -t tmpfs -o mode=0755 sandbox-etc-docker /etc/docker
mount -t tmpfs -o mode=0711,size=64g sandbox-docker-data /var/lib/docker
mount -t tmpfs -o mode=0755 sandbox-log /var/log
mount -t tmpfs -o mode=0755 sandbox-home /home
# sysfs of this network namespace (its own docker0), the host's cgroup hierarchies kept in place
mount --rbind /sys/fs/cgroup /run/.sandbox/cgroup
mount -t sysfs sandbox-sys /sys
mount --move /run/.sandbox/cgroup /sys/fs/cgroup
# this machine's root lacks CAP_SYS_RESOURCE: the init script's ulimit lines, non-fatal in the sandbox's copy
sed -i -E 's/^([[:space:]]*ulimit [^|]*)$/\\1 || true/' {INIT_SCRIPT}
"""
        if python_home:  # the interpreter lives under root's 0700 home: other users may traverse it in here
            script += f"""
mkdir -p /run/.sandbox/root-home
mount --bind /root /run/.sandbox/root-home
mount -t tmpfs -o mode=0711 sandbox-root /root
mkdir -p {shlex.quote(python_home)}
mount --bind /run/.sandbox/root-home/{shlex.quote(os.path.relpath(python_home, "/root"))} {shlex.quote(python_home)}
"""
        script += f"cat > {self.bin}/mldoctor <<'PYEOF'\n{mldoctor}PYEOF\nchmod 0755 {self.bin}/mldoctor\n"
        done = self.sh(script, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"sandbox setup failed (exit {done.returncode}): {done.stderr or done.stdout}")

    @staticmethod
    def _home_entry(prefix: str) -> str | None:
        """The entry under /root that holds the interpreter, if root's home is private (mode 0700)."""
        parts = Path(prefix).resolve().parts
        if len(parts) > 2 and parts[1] == "root" and not os.stat("/root").st_mode & 0o001:
            return "/root/" + parts[2]
        return None

    # running things inside
    def env(self) -> list[str]:
        path = f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return ["env", "-i", f"PATH={path}", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", f"PYTHONPATH={REPO}"]

    def sh(self, command: str, timeout: float = 60) -> Run:
        """Run a shell command inside, as root, with a clean environment."""
        argv = ["nsenter", "-t", str(self.pid), "-m", "-u", "-n", "-p", "--", *self.env(), "sh", "-c", command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            return Run(command, 124, str(exc.stdout or ""), f"timed out after {timeout} s")
        stderr = done.stderr
        if done.returncode == -9:  # nothing in the sandbox sends it: something outside killed the command or init
            alive = "alive" if os.path.exists(f"/proc/{self.pid}") else "gone"
            stderr += f"\n(killed by SIGKILL from outside the sandbox; its init is {alive})"
        return Run(command, done.returncode, done.stdout, stderr)

    def as_user(self, user: str, command: str, timeout: float = 60) -> Run:
        """A new login of `user` (it picks up /etc/group as it is now) running `command`."""
        login = f"PYTHONPATH={REPO} PATH={self.bin}:$PATH {command}"
        return self.sh(f"su - {shlex.quote(user)} -c {shlex.quote(login)}", timeout)

    def apply_fix(self, fix: str, user: str = "root") -> Run:
        """The printed fix, verbatim, step by step (a line each), each as the user it names: 'as root: ...' runs as
        root, anything else as the user who ran mldoctor; the first step that fails ends it, as it would a person."""
        runs = []
        for step in (line for line in fix.split("\n") if line.strip()):
            if step.startswith(AS_ROOT):
                done = self.sh(step[len(AS_ROOT) :])
            else:
                done = self.sh(step) if user == "root" else self.as_user(user, step)
            runs.append(done)
            if done.returncode != 0:
                break
        return Run(fix, runs[-1].returncode, "".join(r.stdout for r in runs), "".join(r.stderr for r in runs))

    def check(self, user: str = "root", only: str = "docker.*", timeout: float = 5) -> Report:
        command = f"mldoctor check --only {shlex.quote(only)} --format json --ci --timeout {timeout:g}"
        done = self.sh(command) if user == "root" else self.as_user(user, command)
        try:
            document = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"mldoctor printed no JSON ({exc}): {done.stdout[-2000:]} {done.stderr[-2000:]}"
            ) from None
        return Report(document, done)

    # the daemon
    def start_daemon(self) -> None:
        done = self.sh(f"{INIT_SCRIPT} start")
        assert done.returncode == 0, done.stdout + done.stderr
        self.wait_for_daemon()

    def wait_for_daemon(self, timeout: float = 20) -> None:
        """What a person does after `service docker start`: wait until `docker info` answers (the init script
        returns before the daemon listens)."""
        waited = self.sh(
            f"t=0; until docker -H unix:///var/run/docker.sock info >/dev/null 2>&1; do "
            f"t=$((t+1)); [ $t -gt {int(timeout * 4)} ] && exit 1; sleep 0.25; done",
            timeout=timeout + 5,
        )
        if waited.returncode != 0:
            log = self.sh("tail -n 20 /var/log/docker.log /var/log/dockerd.log 2>/dev/null").stdout
            raise AssertionError(f"the sandbox's daemon did not answer within {timeout} s; its log:\n{log}")

    def write(self, path: str, text: str) -> None:
        done = self.sh(f"cat > {shlex.quote(path)} <<'EOF'\n{text}\nEOF")
        assert done.returncode == 0, done.stderr

    def read(self, path: str) -> str:
        return self.sh(f"cat {shlex.quote(path)}").stdout


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class Report:
    """mldoctor's JSON report, as the tests read it."""

    def __init__(self, document: dict, run: Run):
        self.document = document
        self.run = run
        self.results = {r["id"]: r for r in document["results"]}

    def __getitem__(self, check_id: str) -> dict:
        return self.results[check_id]

    def status(self, check_id: str) -> str:
        return self.results[check_id]["status"]

    def first_broken(self) -> dict | None:
        """The first result in chain order that is not PASS (SKIPs point at it)."""
        return next((r for r in self.document["results"] if r["status"] in ("FAIL", "WARN", "ERROR")), None)


def sandbox_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="mldoctor-sandbox-"))
