"""Every Docker fix that can be applied on this machine kind, applied verbatim in a sandbox, then the check PASSes.

Each test: set the failure up, run mldoctor inside, assert the first broken link (dependants SKIP pointing at it),
run the printed `fix` as a shell command as the user it names, run mldoctor again (a new login where the fix needs
one), assert PASS, and record the fix as proven. Where the printed fix cannot make the check pass (wrong for this
host, or not a command), the test states the right behaviour (five such found this way were mended in mldoctor;
their tests now prove the right fix); a fix that is manual by nature has its text asserted. Beyond Docker:
host.port, host.shm and probe.shm (in a real container, from an image of this machine's own python3).
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
from sandboxing import REPO

pytestmark = pytest.mark.sandbox

DAEMON_JSON = "/etc/docker/daemon.json"
ROTATED = '{"log-opts": {"max-size": "100m", "max-file": "3"}}'
CHECK = "mldoctor check --only 'docker.*' --format json --ci --timeout 5"
MARKER = "=====mldoctor-fix====="


def applied(sandbox, fix: str, user: str = "root"):
    done = sandbox.apply_fix(fix, user)
    assert done.returncode == 0, f"the printed fix failed (exit {done.returncode}): {fix}\n{done.stdout}{done.stderr}"
    return done


def test_daemon_stopped(sandbox, proven):
    report = sandbox.check()
    broken = report.first_broken()
    assert broken["id"] == "docker.daemon" and broken["status"] == "FAIL", broken
    assert "not running" in broken["summary"]
    assert report["docker.version"]["status"] == "SKIP" and report["docker.version"]["blocked_by"] == "docker.daemon"
    assert broken["fix"] == "service docker start"  # root, no systemd, no sudo: the init that is there
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    assert sandbox.check().status("docker.daemon") == "PASS"
    proven("docker.daemon", broken["fix"])


@pytest.mark.parametrize("config", [None, '{\n    "debug": false\n}'], ids=["config-absent", "config-without-log-opts"])
def test_logging_without_rotation(sandbox, proven, config):
    if config is not None:
        sandbox.write(DAEMON_JSON, config)
    sandbox.start_daemon()
    report = sandbox.check()
    broken = report.first_broken()
    assert broken["id"] == "docker.logging" and broken["status"] == "WARN", broken
    assert DAEMON_JSON in broken["summary"]
    assert broken["fix"].startswith("mldoctor fix docker.logging --yes --restart")
    assert '"log-opts"' not in broken["fix"]  # no fragment to paste
    applied(sandbox, broken["fix"])
    after = sandbox.check()
    assert after.status("docker.logging") == "PASS", after["docker.logging"]
    assert after.status("docker.config") == "PASS", after["docker.config"]  # restarted: applied
    written = json.loads(sandbox.read(DAEMON_JSON))
    assert written["log-opts"] == {"max-size": "100m", "max-file": "3"} and written["log-driver"] == "json-file"
    backups = sandbox.sh(f"ls {DAEMON_JSON}.mldoctor-backup-* 2>/dev/null").stdout.split()
    if config is None:
        assert backups == []
    else:
        assert written["debug"] is False and len(backups) == 1
        assert sandbox.read(backups[0]).strip() == config
    proven("docker.logging", broken["fix"])


def test_logging_fix_dry_run_and_refusal(sandbox):
    """Without --yes nothing is written; an invalid file is refused in one line, exit 2, and left as it was."""
    sandbox.start_daemon()
    dry = sandbox.sh("mldoctor fix docker.logging")
    assert dry.returncode == 0 and "+++ /etc/docker/daemon.json" in dry.stdout
    assert sandbox.sh(f"test -e {DAEMON_JSON}").returncode == 1
    sandbox.write(DAEMON_JSON, '"log-opts": {"max-size": "100m", "max-file": "3"}')
    refused = sandbox.sh("mldoctor fix docker.logging --yes --restart")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused
    assert DAEMON_JSON in refused.stderr and "not valid JSON" in refused.stderr
    assert sandbox.read(DAEMON_JSON).strip() == '"log-opts": {"max-size": "100m", "max-file": "3"}'
    unknown = sandbox.sh("mldoctor fix docker.daemon")
    assert unknown.returncode == 2 and "fixable: docker.logging" in unknown.stderr


def test_malformed_config(sandbox, proven):
    """The historic harm: a fragment pasted into daemon.json. Running, the daemon keeps going (FAIL: it will not
    start again); restarted, it does not start (docker.daemon names the file). The printed fix restores the backup
    `mldoctor fix` kept and starts the daemon."""
    sandbox.write(DAEMON_JSON, "{}")
    sandbox.start_daemon()
    applied(sandbox, "mldoctor fix docker.logging --yes --restart")  # leaves a backup of the good file
    sandbox.write(DAEMON_JSON, '"log-opts": {"max-size": "100m", "max-file": "3"}')

    report = sandbox.check()
    broken = report.first_broken()
    assert broken["id"] == "docker.config" and broken["status"] == "FAIL", broken
    assert DAEMON_JSON in broken["summary"] and "will not start again after its next restart" in broken["summary"]
    assert report.status("docker.logging") == "SKIP" and report["docker.logging"]["blocked_by"] == "docker.config"
    assert broken["fix"].startswith(f"cp -p {DAEMON_JSON}.mldoctor-backup-")
    applied(sandbox, broken["fix"])  # restored while it runs: no restart needed
    assert sandbox.check().status("docker.config") == "PASS"
    proven("docker.config", broken["fix"])

    sandbox.write(DAEMON_JSON, '"log-opts": {"max-size": "100m", "max-file": "3"}')
    sandbox.sh("service docker restart")  # what the FAIL warned about: it stops, and does not start
    down = sandbox.check()
    broken = down.first_broken()
    assert broken["id"] == "docker.daemon" and DAEMON_JSON in broken["summary"], broken
    assert down.status("docker.config") == "FAIL"
    assert broken["fix"].startswith(f"cp -p {DAEMON_JSON}.mldoctor-backup-") and "service docker start" in broken["fix"]
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    after = sandbox.check()
    assert after.status("docker.daemon") == "PASS" and after.status("docker.config") == "PASS", after["docker.config"]
    proven("docker.daemon", broken["fix"])


def test_config_edited_not_applied(sandbox, proven):
    sandbox.write(DAEMON_JSON, '{"log-opts": {"max-size": "100m", "max-file": "3"}}')
    sandbox.start_daemon()
    assert sandbox.check().status("docker.config") == "PASS"
    time.sleep(2.5)  # the daemon's start time is known to the clock tick, the boot time to the second
    sandbox.write(DAEMON_JSON, '{"log-opts": {"max-size": "50m", "max-file": "3"}}')
    report = sandbox.check()
    broken = report.first_broken()
    assert broken["id"] == "docker.config" and broken["status"] == "WARN", broken
    assert "edited but not applied yet: restart to apply" in broken["summary"] and DAEMON_JSON in broken["summary"]
    assert broken["fix"] == "service docker restart"  # started by the init script: restarted by it
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    assert sandbox.check().status("docker.config") == "PASS"
    proven("docker.config", broken["fix"])


def test_config_edited_daemon_started_by_hand(sandbox, proven):
    """A daemon started by hand (no init): restarted by pid with its own command line, not `service`."""
    sandbox.write(DAEMON_JSON, "{}")
    started = sandbox.sh(
        "(setsid $(command -v dockerd) --config-file /etc/docker/daemon.json >>/var/log/dockerd.log 2>&1 </dev/null &)"
    )
    assert started.returncode == 0
    sandbox.wait_for_daemon()
    time.sleep(2.5)
    sandbox.write(DAEMON_JSON, '{"debug": true}')
    broken = sandbox.check().first_broken()
    assert broken["id"] == "docker.config" and broken["status"] == "WARN", broken
    assert broken["fix"].startswith("sh -c 'kill ") and "dockerd --config-file /etc/docker/daemon.json" in broken["fix"]
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    after = sandbox.check()
    assert after.status("docker.config") == "PASS", after["docker.config"]
    assert sandbox.sh("pgrep -c -x dockerd").stdout.strip() == "1"  # one daemon, not a second one
    proven("docker.config", broken["fix"])


def test_user_not_in_docker_group(sandbox, proven):
    sandbox.start_daemon()
    assert sandbox.sh("useradd -m -s /bin/sh trainee").returncode == 0
    report = sandbox.check(user="trainee")
    broken = report.first_broken()
    assert broken["id"] == "docker.permission" and broken["status"] == "FAIL", broken
    assert report.status("docker.daemon") == "SKIP" and report["docker.daemon"]["blocked_by"] == "docker.permission"
    # not root, and no sudo on this machine: the steps are for root
    assert broken["fix"] == "as root: usermod -aG docker trainee   # then log out and back in"
    applied(sandbox, broken["fix"], user="trainee")
    after = sandbox.check(user="trainee")  # a new login (su -) picks up the group
    assert after.status("docker.permission") == "PASS" and after.status("docker.daemon") == "PASS"
    proven("docker.permission", broken["fix"])


def test_bridge_deleted(sandbox, proven):
    """docker0 deleted under a running daemon (what a --bridge=none dockerd in the same namespace does): every plain
    `docker run` fails; the restart recreates it."""
    sandbox.write(DAEMON_JSON, ROTATED)  # nothing else to report
    sandbox.start_daemon()
    assert sandbox.sh("ip link del docker0").returncode == 0
    broken = sandbox.check().first_broken()
    assert broken["id"] == "docker.network" and broken["status"] == "FAIL", broken
    assert "docker0 is gone" in broken["summary"]
    assert broken["fix"].startswith("service docker restart")
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    assert sandbox.check().status("docker.network") == "PASS"
    proven("docker.network", broken["fix"])


def in_the_users_shell(sandbox, setup: str, fix: str = ""):
    """mldoctor in a shell where `setup` ran (an exported variable), then the fix typed in that same shell, then
    mldoctor again: the two reports."""
    typed = f"{{\n{fix}\n}} >&2" if fix else ""  # what the fix prints goes to stderr, apart from the reports
    done = sandbox.sh(f"{setup}\n{CHECK}\necho {MARKER}\n{typed}\n{CHECK}")
    before, _, after = done.stdout.partition(MARKER)
    return json.loads(before), (json.loads(after) if fix else None), done


@pytest.mark.parametrize(
    "setup",
    ["export DOCKER_HOST=unix:///run/nothing-here.sock", "export DOCKER_CONTEXT=gone"],
    ids=["DOCKER_HOST-to-a-missing-socket", "DOCKER_CONTEXT-naming-a-missing-context"],
)
def test_endpoint_pointing_nowhere(sandbox, proven, setup):
    """The fix is typed in the shell whose environment is wrong (an `unset` has no effect anywhere else)."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    before, _, _ = in_the_users_shell(sandbox, setup)
    broken = next(r for r in before["results"] if r["status"] in ("FAIL", "WARN"))
    assert broken["id"] == "docker.daemon" and broken["status"] == "FAIL", broken
    _, after, done = in_the_users_shell(sandbox, setup, broken["fix"])
    daemon = next(r for r in after["results"] if r["id"] == "docker.daemon")
    assert daemon["status"] == "PASS", (daemon, done.stderr)
    proven("docker.daemon", broken["fix"])


def test_stale_socket(sandbox, proven):
    """The daemon died (SIGKILL) and left its socket: connection refused; the printed restart brings it back."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    assert sandbox.sh("kill -9 $(cat /var/run/docker.pid) && sleep 0.5 && test -S /var/run/docker.sock").returncode == 0
    broken = sandbox.check().first_broken()
    assert broken["id"] == "docker.daemon" and "stale socket" in broken["summary"], broken
    assert broken["fix"].startswith("service docker restart")
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    assert sandbox.check().status("docker.daemon") == "PASS"
    proven("docker.daemon", broken["fix"])


def test_socket_of_no_usable_group(sandbox, proven):
    """No docker group when the daemon started (by hand): its socket is root:root and no group may use it. The
    printed fix, two steps: create the group and restart this daemon by hand (its own command line), then the
    user's membership; a new login: PASS."""
    sandbox.write(DAEMON_JSON, ROTATED)
    assert sandbox.sh("groupdel docker && useradd -m -s /bin/sh trainee").returncode == 0
    started = sandbox.sh("(setsid $(command -v dockerd) >>/var/log/dockerd.log 2>&1 </dev/null &)")
    assert started.returncode == 0
    sandbox.wait_for_daemon()
    assert sandbox.sh("stat -c %U:%G /var/run/docker.sock").stdout.strip() == "root:root"

    broken = sandbox.check(user="trainee").first_broken()
    assert broken["id"] == "docker.permission" and "no group may use it" in broken["summary"], broken
    first, second = broken["fix"].splitlines()
    assert first.startswith("as root: groupadd -f docker && sh -c 'kill ")  # no sudo here: each step says so
    assert second == "as root: usermod -aG docker trainee   # then log out and back in"
    applied(sandbox, broken["fix"], user="trainee")
    sandbox.wait_for_daemon()
    assert sandbox.sh("stat -c %U:%G /var/run/docker.sock").stdout.strip() == "root:docker"
    assert sandbox.check(user="trainee").status("docker.permission") == "PASS"  # a new login
    proven("docker.permission", broken["fix"])


def test_logging_for_a_daemon_started_with_its_own_config_file(sandbox, proven):
    """The daemon in use reads --config-file, not daemon.json: the fix merges into that file, restarts
    that daemon by hand with its own command line, and leaves /etc/docker/daemon.json alone."""
    custom = "/etc/docker/custom.json"
    sandbox.write(custom, '{"debug": false}')  # dockerd refuses a --config-file that does not exist
    started = sandbox.sh(
        f"(setsid $(command -v dockerd) --config-file {custom} >>/var/log/dockerd.log 2>&1 </dev/null &)"
    )
    assert started.returncode == 0
    sandbox.wait_for_daemon()
    report = sandbox.check()
    broken = report.first_broken()
    assert broken["id"] == "docker.logging" and custom in broken["summary"], broken
    applied(sandbox, broken["fix"])
    after = sandbox.check()
    assert after.status("docker.logging") == "PASS" and after.status("docker.config") == "PASS", after["docker.config"]
    assert json.loads(sandbox.read(custom))["log-opts"]["max-size"] == "100m"
    assert sandbox.sh(f"test -e {DAEMON_JSON}").returncode == 1
    assert sandbox.sh("pgrep -c -x dockerd").stdout.strip() == "1"
    proven("docker.logging", broken["fix"])


def test_hung_daemon(sandbox, proven):
    """A daemon that accepts and never answers (stopped with SIGSTOP): the printed restart (the init script's stop
    escalates to SIGKILL) brings an answering one back."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    assert sandbox.sh("kill -STOP $(cat /var/run/docker.pid)").returncode == 0
    broken = sandbox.check(timeout=2).first_broken()
    assert broken["id"] == "docker.daemon" and "did not answer" in broken["summary"], broken
    assert broken["fix"].startswith("service docker restart")
    applied(sandbox, broken["fix"])
    sandbox.wait_for_daemon()
    assert sandbox.check().status("docker.daemon") == "PASS"
    proven("docker.daemon", broken["fix"], "hung")


def old_login(sandbox, user: str, fix: str = "") -> tuple[dict, dict | None]:
    """A login of `user` that started before root added it to the docker group (what `usermod -aG` does to a user
    who is logged in): mldoctor in that session, then `fix` typed in that same session, then mldoctor again.

    The session is the user's login shell (bash) reading what is typed from its standard input, as at a terminal:
    a command that starts a new shell there (newgrp) hands the rest of the input to that shell."""
    typed = f"{fix}\n{CHECK}\n" if fix else ""
    script = (
        f"export PATH={sandbox.bin}:$PATH PYTHONPATH={shlex.quote(str(REPO))}\n"
        "echo logged-in >&2\n"
        "while [ ! -e /run/group-added ]; do sleep 0.1; done\n"
        f"{CHECK}\necho {MARKER}\n{typed}"
    )
    sandbox.write("/run/old-login.sh", script)
    done = sandbox.sh(
        "rm -f /run/old-login.out /run/old-login.err /run/group-added\n"
        f"su - {user} </run/old-login.sh >/run/old-login.out 2>/run/old-login.err & login=$!\n"
        "until grep -q logged-in /run/old-login.err; do sleep 0.1; done\n"  # its groups are fixed at login
        f"usermod -aG docker {user} && touch /run/group-added\n"
        "wait $login",
        timeout=120,
    )
    out, err = sandbox.read("/run/old-login.out"), sandbox.read("/run/old-login.err")
    assert done.returncode == 0 or MARKER in out, (done, out, err)
    before, _, after = out.partition(MARKER)
    return json.loads(before), (json.loads(after) if fix and after.strip() else None)


def result(document: dict, check_id: str) -> dict:
    return next(r for r in document["results"] if r["id"] == check_id)


def first_broken(document: dict) -> dict | None:
    return next((r for r in document["results"] if r["status"] in ("FAIL", "WARN", "ERROR")), None)


def without_a_gpu(document: dict) -> None:
    """The machine kind a test describes: no NVIDIA GPU, so nvidia.toolkit SKIPs behind nvidia.gpu. On a GPU machine
    that check runs, and the proof belongs to a GPU test."""
    if result(document, "nvidia.gpu")["status"] != "SKIP":
        pytest.skip("this machine has an NVIDIA GPU: nvidia.toolkit judges this case here, not what this test pins")


def test_user_in_the_group_with_an_old_login(sandbox, proven):
    """Root added the user to the docker group after the user logged in: /etc/group says yes, the session's groups
    say no. The fix is a new login; run as one (`su - USER -c ...`, what logging out and back in gives), it passes."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    assert sandbox.sh("useradd -m -s /bin/bash trainee").returncode == 0
    before, _ = old_login(sandbox, "trainee")
    broken = first_broken(before)
    assert broken["id"] == "docker.permission" and broken["status"] == "FAIL", broken
    assert "trainee is in group docker, but this login session does not carry it yet" in broken["summary"]
    daemon = result(before, "docker.daemon")
    assert daemon["status"] == "SKIP" and daemon["blocked_by"] == "docker.permission", daemon
    assert "log out and back in" in broken["fix"] and "newgrp docker" in broken["fix"], broken["fix"]
    after = sandbox.check(user="trainee")  # the new login
    assert after.status("docker.permission") == "PASS" and after.status("docker.daemon") == "PASS", after.run
    proven("docker.permission", broken["fix"], "old login")


def test_old_login_fix_typed_in_that_session(sandbox):
    """The printed fix, typed verbatim in the old session, then mldoctor again in that session: PASS."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    assert sandbox.sh("useradd -m -s /bin/bash trainee").returncode == 0
    before, _ = old_login(sandbox, "trainee")
    fix = result(before, "docker.permission")["fix"]
    assert sandbox.sh("gpasswd -d trainee docker").returncode == 0  # the same situation again, for a new session
    before, after = old_login(sandbox, "trainee", fix)
    assert result(before, "docker.permission")["status"] == "FAIL"
    assert after is not None, f"no report after the fix {fix!r}: {sandbox.read('/run/old-login.err')[-2000:]}"
    assert result(after, "docker.permission")["status"] == "PASS", result(after, "docker.permission")


def test_socket_of_a_group_without_a_name(sandbox, proven):
    """The docker group is deleted under a running daemon: its socket keeps a gid that no longer has a name, which
    no one can be added to. The printed fixes, applied in turn (at most two: the group, then the membership), as
    the user who ran mldoctor, and a new login: PASS."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    assert sandbox.sh("useradd -m -s /bin/sh trainee && groupdel docker").returncode == 0
    gid = sandbox.sh("stat -c %g /var/run/docker.sock").stdout.strip()
    assert sandbox.sh(f"getent group {gid}").returncode == 2  # no name for it
    report = sandbox.check(user="trainee")
    broken = report.first_broken()
    assert broken["id"] == "docker.permission" and broken["status"] == "FAIL", broken
    fixes = []
    for _ in range(2):
        fixes.append(broken["fix"])
        applied(sandbox, broken["fix"], user="trainee")
        sandbox.wait_for_daemon()
        report = sandbox.check(user="trainee")
        if report.status("docker.permission") == "PASS":
            break
        broken = report["docker.permission"]
    assert report.status("docker.permission") == "PASS", (fixes, report["docker.permission"])
    for fix in fixes:
        proven("docker.permission", fix, "socket of a gid without a name")


def test_data_root_nearly_full(sandbox, proven):
    """Docker's data-root on a small filesystem (1 GiB) filled with unused images: docker.disk FAILs and prints the
    prune that frees them; run verbatim, answering its confirmation prompt as the person at the terminal does, it
    frees the space. The thresholds are scaled to the small filesystem with mldoctor's own options."""
    sandbox.write(DAEMON_JSON, ROTATED)
    assert sandbox.sh("mount -o remount,size=1g /var/lib/docker").returncode == 0
    sandbox.start_daemon()
    filled = sandbox.sh(
        "mkdir /run/filler && for i in 1 2 3 4; do head -c 210M /dev/urandom >/run/filler/blob && "
        "tar -C /run/filler -c blob | docker import - filler:$i >/dev/null || exit 1; done; rm -r /run/filler",
        timeout=180,
    )
    assert filled.returncode == 0, filled.stderr
    check = f"{CHECK} --disk-fail-gib 0.25 --disk-warn-gib 0.5"
    report = json.loads(sandbox.sh(check).stdout)
    broken = first_broken(report)
    assert broken["id"] == "docker.disk" and broken["status"] == "FAIL", broken
    assert "/var/lib/docker" in broken["summary"]
    assert broken["fix"].startswith("docker image prune -a   # frees 0.8 GiB"), broken["fix"]
    done = sandbox.sh(f"yes y | sh -c {shlex.quote(broken['fix'])}")  # y at each "Are you sure?"
    assert done.returncode == 0, done
    assert sandbox.sh("docker images -q").stdout.strip() == ""
    after = json.loads(sandbox.sh(check).stdout)
    assert result(after, "docker.disk")["status"] == "PASS", result(after, "docker.disk")
    proven("docker.disk", broken["fix"])


def test_port_in_use(sandbox, proven):
    """A server holds the port a training job wants (`--port`): host.port names it and prints `kill PID`; run
    verbatim, the port is free. The holder runs in the sandbox's own network namespace."""
    held = sandbox.sh("(setsid python3 -m http.server 8888 >/dev/null 2>&1 </dev/null &) ; sleep 1; ss -ltn")
    assert ":8888" in held.stdout, held
    check = "mldoctor check --only host.port --port 8888 --port 8889 --format json --ci"
    broken = first_broken(json.loads(sandbox.sh(check).stdout))
    assert broken["id"] == "host.port" and broken["status"] == "FAIL", broken
    assert broken["summary"].startswith("8888: held by python3 (pid ") and "8889" not in broken["summary"]
    assert broken["fix"].startswith("kill ") and "python3 holds port 8888" in broken["fix"], broken["fix"]
    applied(sandbox, broken["fix"])
    sandbox.sh("t=0; while ss -ltn | grep -q ':8888 '; do t=$((t+1)); [ $t -gt 50 ] && break; sleep 0.1; done")
    after = json.loads(sandbox.sh(check).stdout)
    assert result(after, "host.port")["status"] == "PASS", result(after, "host.port")
    proven("host.port", broken["fix"])


def test_port_held_by_another_user(sandbox):
    """Manual by nature (the command shows the holder, it frees nothing), but it must run as printed: as root, it
    names the holder."""
    sandbox.sh("(setsid python3 -m http.server 8888 >/dev/null 2>&1 </dev/null &) ; sleep 1")
    assert sandbox.sh("useradd -m -s /bin/sh trainee").returncode == 0
    done = sandbox.as_user("trainee", "mldoctor check --only host.port --port 8888 --format json --ci")
    broken = first_broken(json.loads(done.stdout))
    assert broken["id"] == "host.port" and broken["summary"] == "8888: in use by a process this user cannot see"
    assert broken["fix"].startswith("as root: ss -ltnp 'sport = :8888'")  # no sudo on this host
    shown = applied(sandbox, broken["fix"], user="trainee")
    assert "python3" in shown.stdout, shown


def test_small_dev_shm(sandbox, proven):
    """/dev/shm of 64 MiB (a tmpfs mounted over it in the sandbox's own mount namespace): host.shm WARNs; the
    printed remount, run verbatim as root, gives it room: PASS."""
    assert sandbox.sh("mount -t tmpfs -o size=64m,mode=1777 sandbox-shm /dev/shm").returncode == 0
    check = "mldoctor check --only host.shm --format json --ci"
    broken = first_broken(json.loads(sandbox.sh(check).stdout))
    assert broken["id"] == "host.shm" and broken["status"] == "WARN", broken
    assert "remount,size=8G /dev/shm" in broken["fix"], broken["fix"]
    applied(sandbox, broken["fix"])
    after = json.loads(sandbox.sh(check).stdout)
    assert result(after, "host.shm")["status"] == "PASS", result(after, "host.shm")
    proven("host.shm", broken["fix"])


def stale_socket(sandbox, path: str) -> None:
    """A unix socket file that nothing listens on: bound, and its process gone."""
    bind = f"import socket; socket.socket(socket.AF_UNIX).bind({path!r})"
    made = sandbox.sh(f"python3 -c {shlex.quote(bind)} && test -S {path}")
    assert made.returncode == 0, made


def test_docker_host_at_a_stale_socket(sandbox, proven):
    """A socket file left by something that died (not the daemon in use, which answers on the default socket);
    the fix is typed in the shell whose environment is wrong."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    stale_socket(sandbox, "/run/old-docker.sock")
    setup = "export DOCKER_HOST=unix:///run/old-docker.sock"
    before, _, _ = in_the_users_shell(sandbox, setup)
    broken = first_broken(before)
    assert broken["id"] == "docker.daemon" and broken["status"] == "FAIL", broken
    assert "stale socket" in broken["summary"] and "DOCKER_HOST" in broken["summary"], broken
    _, after, done = in_the_users_shell(sandbox, setup, broken["fix"])
    daemon = result(after, "docker.daemon")
    assert daemon["status"] == "PASS", (broken["fix"], daemon, done.stderr[-2000:])
    proven("docker.daemon", broken["fix"], "DOCKER_HOST at a stale socket")


PYTHON_IMAGE = "sandbox-python:3"
PROBE = f"mldoctor check --only 'docker.*' --only 'probe.*' --image {PYTHON_IMAGE} --format json --ci --timeout 20"


def python_image(sandbox) -> None:
    """An image for the probe in the sandbox's daemon, which reaches no registry: this machine's own python3 (the
    interpreter, its standard library and the shared libraries they load), imported with `docker import`. No torch:
    probe.torch FAILs, and the checks that need only python (probe.shm) run."""
    script = r"""
set -eu
root=/run/python-image
py=$(readlink -f /usr/bin/python3)
stdlib=$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
mkdir -p $root/usr/bin $root/tmp $root/etc
chmod 1777 $root/tmp
libs=$( (ldd "$py"; for so in "$stdlib"/lib-dynload/*.so; do ldd "$so"; done) | grep -o '/[^ ]*' | sort -u)
for f in "$py" $libs; do cp -L --parents "$f" $root/; done
cp -a --parents "$stdlib" $root/
rm -rf "$root$stdlib/test" "$root$stdlib/idlelib" "$root$stdlib/tkinter"
ln -s "$(basename "$py")" $root/usr/bin/python3
tar -C $root -c . | docker import - IMAGE >/dev/null
rm -rf $root
docker run --rm --network none IMAGE python3 -c pass
""".replace("IMAGE", PYTHON_IMAGE)
    built = sandbox.sh(script, timeout=180)
    assert built.returncode == 0, built


def test_small_default_shm_for_containers(sandbox, proven):
    """Containers get the daemon's default /dev/shm (64 MiB): probe.shm WARNs from inside a real container; the
    printed fix, run verbatim as root, and the daemon gives containers 16 GiB: PASS."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    python_image(sandbox)
    report = json.loads(sandbox.sh(PROBE, timeout=120).stdout)
    shm = result(report, "probe.shm")
    assert shm["status"] == "WARN" and "containers get 0.1 GiB of /dev/shm by default" in shm["summary"], shm
    assert result(report, "probe.container")["status"] == "PASS"
    assert "default-shm-size" in shm["fix"] and DAEMON_JSON in shm["fix"], shm["fix"]
    applied(sandbox, shm["fix"])
    sandbox.wait_for_daemon()
    after = json.loads(sandbox.sh(PROBE, timeout=120).stdout)
    assert result(after, "probe.shm")["status"] == "PASS", result(after, "probe.shm")
    assert result(after, "docker.config")["status"] == "PASS", result(after, "docker.config")
    proven("probe.shm", shm["fix"])


def test_default_runtime_without_its_binary(sandbox):
    """daemon.json registers the nvidia runtime and makes it the default, and nvidia-container-runtime is not
    installed: every `docker run` fails. On this machine kind (no NVIDIA GPU) nvidia.toolkit SKIPs behind nvidia.gpu
    and every docker.* check passes; only the probe's container start shows it. Manual: the fix printed is the
    command that shows the error (installing the toolkit, or removing the default runtime, is for a person)."""
    config = {
        "log-opts": {"max-size": "100m", "max-file": "3"},
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
        "default-runtime": "nvidia",
    }
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    python_image(sandbox)  # built with runc, before the default changes
    sandbox.write(DAEMON_JSON, json.dumps(config))
    assert sandbox.sh("service docker restart").returncode == 0
    sandbox.wait_for_daemon()
    assert sandbox.sh("command -v nvidia-container-runtime").returncode != 0
    report = json.loads(sandbox.sh(PROBE.replace("--only 'docker.*' --only 'probe.*'", ""), timeout=120).stdout)
    without_a_gpu(report)
    assert result(report, "nvidia.toolkit")["status"] == "SKIP" and result(report, "nvidia.gpu")["status"] == "SKIP"
    docker = {r["id"]: r["status"] for r in report["results"] if r["id"].startswith("docker.")}
    assert {i for i, status in docker.items() if status not in ("PASS", "SKIP")} <= {"docker.compose"}, docker
    container = result(report, "probe.container")
    assert container["status"] == "FAIL", container
    assert container["summary"] == f"the daemon could not start a container from {PYTHON_IMAGE}"
    assert 'exec: "nvidia-container-runtime": executable file not found' in " ".join(container["details"])
    assert container["fix"].startswith(f"docker run --rm --entrypoint python3 {PYTHON_IMAGE} -c pass")
    shown = sandbox.sh(container["fix"])  # it shows the same error, as it says
    assert shown.returncode != 0 and "nvidia-container-runtime" in shown.stderr, shown


STALE_CDI_SPEC = """cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  mounts:
  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14
    containerPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14
    options: [ro, nosuid, nodev, bind]"""


def test_stale_cdi_spec_not_judged_without_a_gpu(sandbox):
    """Not provable on this machine kind: a CDI spec (in the sandbox's /etc overlay) naming a device node and a
    driver library that do not exist is read into the report, but nvidia.toolkit, the only check that judges CDI
    specs, SKIPs behind nvidia.gpu (no NVIDIA device on the PCI bus), and it judges a spec only against the running
    driver's version (NVML or the kernel module), which a machine without a driver does not have. Debian's docker.io
    (20.10) does not read CDI specs either, so no printed fix could be proven against the sandbox's daemon."""
    sandbox.write(DAEMON_JSON, ROTATED)
    sandbox.start_daemon()
    assert sandbox.sh("mkdir -p /etc/cdi").returncode == 0
    sandbox.write("/etc/cdi/nvidia.yaml", STALE_CDI_SPEC)
    report = json.loads(sandbox.sh("mldoctor check --only 'nvidia.*' --format json --ci").stdout)
    without_a_gpu(report)
    assert sandbox.sh("test -e /dev/nvidia0 || test -e /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14").returncode
    specs = report["facts"]["nvidia"]["toolkit"]["cdi_specs"]
    spec = {"path": "/etc/cdi/nvidia.yaml", "driver_version": "550.54.14", "cdi_version": "0.5.0", "error": None}
    assert spec in specs, specs
    toolkit = result(report, "nvidia.toolkit")
    assert toolkit["status"] == "SKIP" and toolkit["blocked_by"] == "nvidia.gpu", toolkit
    assert result(report, "nvidia.gpu")["status"] == "SKIP"
