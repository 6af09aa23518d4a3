"""Every Docker fix that can be applied on this machine kind, applied verbatim in a sandbox, then the check PASSes.

Each test: set the failure up, run mldoctor inside, assert the first broken link (dependants SKIP pointing at it),
run the printed `fix` as a shell command as the user it names, run mldoctor again (a new login where the fix needs
one), assert PASS, and record the fix as proven.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.sandbox

DAEMON_JSON = "/etc/docker/daemon.json"
ROTATED = '{"log-opts": {"max-size": "100m", "max-file": "3"}}'


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
    check = "mldoctor check --only 'docker.*' --format json --ci --timeout 5"
    marker = "=====mldoctor-fix====="
    typed = f"{{\n{fix}\n}} >&2" if fix else ""  # what the fix prints goes to stderr, apart from the reports
    done = sandbox.sh(f"{setup}\n{check}\necho {marker}\n{typed}\n{check}")
    before, _, after = done.stdout.partition(marker)
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
    printed fix creates the group and restarts this daemon by hand (its own command line); the next broken link is
    then the user's membership, whose printed fix and a new login make it PASS."""
    sandbox.write(DAEMON_JSON, ROTATED)
    assert sandbox.sh("groupdel docker && useradd -m -s /bin/sh trainee").returncode == 0
    started = sandbox.sh("(setsid $(command -v dockerd) >>/var/log/dockerd.log 2>&1 </dev/null &)")
    assert started.returncode == 0
    sandbox.wait_for_daemon()
    assert sandbox.sh("stat -c %U:%G /var/run/docker.sock").stdout.strip() == "root:root"

    broken = sandbox.check(user="trainee").first_broken()
    assert broken["id"] == "docker.permission" and "no group may use it" in broken["summary"], broken
    assert broken["fix"].startswith("as root: groupadd -f docker && sh -c 'kill ")
    applied(sandbox, broken["fix"], user="trainee")
    sandbox.wait_for_daemon()
    assert sandbox.sh("stat -c %U:%G /var/run/docker.sock").stdout.strip() == "root:docker"
    proven("docker.permission", broken["fix"])

    following = sandbox.check(user="trainee").first_broken()
    assert following["id"] == "docker.permission" and "belongs to group docker" in following["summary"], following
    applied(sandbox, following["fix"], user="trainee")
    assert sandbox.check(user="trainee").status("docker.permission") == "PASS"


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
