"""`mldoctor check` against a real daemon, and against the real ways reaching it fails."""

from __future__ import annotations

import contextlib
import grp
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from daemon_proxy import HeaderProxy

pytestmark = pytest.mark.docker

SYSTEM_PYTHON = "/usr/bin/python3"
RUNTIME_PACKAGES = [
    "mldoctor",
    "docker",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset_normalizer",
    "click",
    "rich",
    "markdown_it",
    "mdurl",
    "pygments",
    "psutil",
    "pynvml",
]


def mldoctor(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--format", "json", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}, proc.stderr


def by_id(report: dict) -> dict[str, dict]:
    return {r["id"]: r for r in report["results"]}


def test_healthy_daemon_passes():
    code, report, err = mldoctor("--only", "docker")
    results = by_id(report)
    for check_id in (
        "docker.daemon",
        "docker.permission",
        "docker.version",
        "docker.flavour",
        "docker.storage",
        "docker.disk",
    ):
        assert results[check_id]["status"] == "PASS", results[check_id]
    assert not [r for r in report["results"] if r["status"] in ("FAIL", "ERROR")]
    assert code == 0, err
    assert report["facts"]["docker"]["daemon"]["api_version"]


def test_disk_thresholds_above_the_disk_fail_both_disks():
    code, report, _ = mldoctor(
        "--only", "docker.disk,host.disk", "--disk-fail-gib", "100000", "--disk-warn-gib", "100000"
    )
    results = by_id(report)
    assert code == 1
    assert results["docker.disk"]["status"] == "FAIL" and results["host.disk"]["status"] == "FAIL"
    assert results["docker.disk"]["fix"]
    assert report["facts"]["docker"]["reclaimable"] is not None  # df was asked because the disk counts as low


@pytest.fixture
def hung_socket():
    """A unix socket that accepts connections into its backlog and never answers."""
    directory = tempfile.mkdtemp(prefix="mldoctor-hung-")
    path = os.path.join(directory, "docker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    yield path
    server.close()
    shutil.rmtree(directory)


def test_daemon_that_never_answers_is_a_timeout_within_the_deadline(hung_socket):
    started = time.monotonic()
    code, report, _ = mldoctor(
        "--only", "docker.daemon", "--timeout", "2", env={"DOCKER_HOST": f"unix://{hung_socket}"}
    )
    elapsed = time.monotonic() - started
    result = by_id(report)["docker.daemon"]
    assert code == 1
    assert result["status"] == "FAIL" and "did not answer" in result["summary"]
    assert report["facts"]["docker"]["connection"]["error_kind"] == "timeout"
    assert elapsed < 2 + 8, f"the 2 s deadline was not kept: {elapsed:.1f} s"


@pytest.mark.parametrize("strip", [False, True])
def test_the_api_version_from_the_ping_or_else_from_version(tmp_path, strip):
    """The client speaks the API version the daemon's `/_ping` names, as the docker CLI does; a daemon whose ping
    does not name one is asked the unversioned `/version` first. The facts are the same either way."""
    proxy = HeaderProxy(str(tmp_path), strip)
    try:
        code, report, err = mldoctor("--only", "docker.version", env={"DOCKER_HOST": f"unix://{proxy.path}"})
    finally:
        proxy.close()
    daemon = report["facts"]["docker"]["daemon"]
    assert code == 0 and daemon["api_version"] and daemon["min_api_version"], err
    assert by_id(report)["docker.version"]["status"] == "PASS"
    assert proxy.requests.count(b"/_ping") == 1
    assert proxy.requests.count(b"/version") == (1 if strip else 0)  # the unversioned one
    assert proxy.requests.count(f"/v{daemon['api_version']}/info".encode()) == 1


@pytest.mark.parametrize(
    ("docker_host", "kind", "fix_start"),
    [
        ("unix:///tmp/mldoctor-no-such.sock", "missing_socket", "unset DOCKER_HOST"),
        ("garbage://nowhere", "bad_host", "unset DOCKER_HOST"),
        ("tcp://127.0.0.1:1", "refused", "unset DOCKER_HOST"),  # not a restart of this host's daemon
    ],
)
def test_unreachable_daemons_each_get_their_cause(docker_host, kind, fix_start):
    code, report, _ = mldoctor("--only", "docker", env={"DOCKER_HOST": docker_host})
    results = by_id(report)
    assert code == 1
    assert report["facts"]["docker"]["connection"]["error_kind"] == kind
    assert results["docker.daemon"]["status"] == "FAIL"
    assert results["docker.daemon"]["fix"].startswith(fix_start)
    assert results["docker.version"]["summary"] == "skipped: docker.daemon failed"


def test_ssh_endpoint_without_paramiko():
    pytest.importorskip("docker")
    if importlib.util.find_spec("paramiko") is not None:
        pytest.skip("paramiko is installed here; this case needs it absent")
    code, report, _ = mldoctor("--only", "docker.daemon", env={"DOCKER_HOST": "ssh://mldoctor@127.0.0.1"})
    result = by_id(report)["docker.daemon"]
    assert code == 1 and report["facts"]["docker"]["connection"]["error_kind"] == "ssh_no_paramiko"
    assert result["fix"].startswith("python3 -m pip install 'docker[ssh]'")


@pytest.fixture
def plain_http_port():
    """A TCP server that speaks plain HTTP, for a TLS client to fail its handshake against."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def answer_in_plain_text():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def client_certs(tmp_path):
    """A self-signed CA, client certificate and key, as DOCKER_CERT_PATH expects them."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mldoctor-test",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    shutil.copy(tmp_path / "cert.pem", tmp_path / "ca.pem")
    return tmp_path


def test_tls_handshake_failure(plain_http_port, client_certs):
    env = {
        "DOCKER_HOST": f"tcp://127.0.0.1:{plain_http_port}",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(client_certs),
    }
    code, report, _ = mldoctor("--only", "docker.daemon", "--timeout", "2", env=env)
    result = by_id(report)["docker.daemon"]
    assert code == 1
    assert report["facts"]["docker"]["connection"]["error_kind"] == "tls", report["facts"]["docker"]["connection"]
    assert "TLS handshake" in result["summary"] and "DOCKER_CERT_PATH" in result["fix"]


def test_tls_without_certificates():
    env = {"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"}
    code, report, _ = mldoctor("--only", "docker.daemon", env=env)
    assert code == 1 and report["facts"]["docker"]["connection"]["error_kind"] == "tls"


def test_busy_port_names_its_holder():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("0.0.0.0", 0))
        server.listen(1)
        port = server.getsockname()[1]
        code, report, _ = mldoctor("--only", "host.port", "--port", str(port))
    result = by_id(report)["host.port"]
    assert code == 1 and result["status"] == "FAIL"
    assert f"(pid {os.getpid()}" in result["summary"]
    assert result["fix"].startswith(f"kill {os.getpid()}")


def test_current_context_made_by_the_real_cli(tmp_path):
    """A context created and selected with the docker CLI is the endpoint mldoctor uses, like the CLI would."""
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}
    env.pop("DOCKER_HOST", None)
    for argv in (
        ["context", "create", "elsewhere", "--docker", "host=unix:///tmp/mldoctor-elsewhere.sock"],
        ["context", "use", "elsewhere"],
    ):
        subprocess.run(["docker", *argv], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--format", "json", "--only", "docker.daemon"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    report = json.loads(proc.stdout)
    endpoint = report["facts"]["docker"]["endpoint"]
    assert (endpoint["source"], endpoint["context"]) == ("context", "elsewhere")
    assert endpoint["url"] == "unix:///tmp/mldoctor-elsewhere.sock"
    result = by_id(report)["docker.daemon"]
    assert result["status"] == "FAIL" and proc.returncode == 1
    assert result["fix"].startswith("unset DOCKER_CONTEXT; docker context use default")


COMPOSE_PLUGIN = """#!/bin/sh
# a Compose plugin as the docker CLI runs it (metadata, then `compose ...`) and as mldoctor runs it (`version ...`)
case "$1" in
  docker-cli-plugin-metadata) echo '{"SchemaVersion":"0.1.0","Vendor":"mldoctor tests","Version":"2.29.1"}' ;;
  compose) echo 2.29.1 ;;
  version) echo 2.29.1 ;;
  *) exit 2 ;;
esac
"""


@pytest.mark.parametrize("where", ["config directory", "cliPluginsExtraDirs"])
def test_compose_plugin_found_where_the_real_cli_finds_it(tmp_path, where):
    """The Compose plugin is asked for its version where the docker CLI would find it, and the CLI agrees."""
    plugins = tmp_path / "cli-plugins" if where == "config directory" else tmp_path / "elsewhere"
    plugins.mkdir()
    (plugins / "docker-compose").write_text(COMPOSE_PLUGIN)
    (plugins / "docker-compose").chmod(0o755)
    if where == "cliPluginsExtraDirs":
        (tmp_path / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(plugins)]}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    real = subprocess.run(
        ["docker", "compose", "version", "--short"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert real.stdout.strip() == "2.29.1", real.stderr
    code, report, err = mldoctor("--only", "docker.compose", env=env)
    assert report["facts"]["docker"]["cli"]["compose_plugin"] == "2.29.1", err
    assert by_id(report)["docker.compose"]["summary"] == "docker compose 2.29.1 (plugin)" and code == 0


def test_missing_context():
    code, report, _ = mldoctor("--only", "docker.daemon", env={"DOCKER_CONTEXT": "no-such-context", "DOCKER_HOST": ""})
    result = by_id(report)["docker.daemon"]
    assert code == 1 and result["fix"].startswith("unset DOCKER_CONTEXT; docker context use default")


# --- a real non-root user -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portable_site():
    """mldoctor and its dependencies copied where any user can read them.

    The test interpreter lives under root's home (mode 0700), so other users run Debian's /usr/bin/python3
    (same minor version) with this directory on PYTHONPATH.
    """
    if os.geteuid() != 0:
        pytest.skip("creating users needs root")
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.fail(f"{SYSTEM_PYTHON} is missing: apt-get install -y python3")
    site = tempfile.mkdtemp(prefix="mldoctor-site-")
    os.chmod(site, 0o755)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin
        if spec.submodule_search_locations:
            shutil.copytree(
                os.path.dirname(origin), os.path.join(site, name), ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(origin, site)
    subprocess.run(["chmod", "-R", "a+rX", site], check=True)
    yield site
    shutil.rmtree(site)


@contextlib.contextmanager
def system_user(name: str, groups: list[str]):
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        subprocess.run(["userdel", name], check=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True)
    for group in groups:
        subprocess.run(["usermod", "-aG", group, name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def run_as(user: str, site: str, *argv: str, keep_groups: bool = True) -> tuple[int, dict]:
    prefix = ["runuser", "-u", user] + ([] if keep_groups else ["-g", user]) + ["--"]
    env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={site}", "HOME=/tmp"]
    proc = subprocess.run(
        [*prefix, *env, SYSTEM_PYTHON, "-m", "mldoctor", "check", "--format", "json", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
        check=False,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def socket_group() -> str:
    return grp.getgrgid(os.stat("/var/run/docker.sock").st_gid).gr_name


def test_user_outside_the_docker_group(portable_site):
    with system_user("mldoctor-outsider", groups=[]) as user:
        code, report = run_as(user, portable_site, "--only", "docker.daemon,docker.permission,docker.disk")
    results = by_id(report)
    assert code == 1
    assert results["docker.permission"]["status"] == "FAIL"
    as_root = "sudo " if shutil.which("sudo") else "as root: "  # this machine kind has no sudo: the fix says so
    expected_fix = f"{as_root}usermod -aG {socket_group()} {user}   # then log out and back in"
    assert results["docker.permission"]["fix"] == expected_fix
    assert any("root-equivalent" in d for d in results["docker.permission"]["details"])
    assert results["docker.daemon"]["status"] == "SKIP"
    assert results["docker.daemon"]["blocked_by"] == "docker.permission"
    assert results["docker.disk"]["summary"] == "skipped: docker.permission failed"


def test_user_in_the_group_but_not_in_this_session(portable_site):
    group = socket_group()
    with system_user("mldoctor-stale", groups=[group]) as user:
        fresh_code, fresh = run_as(user, portable_site, "--only", "docker.daemon,docker.permission")
        code, report = run_as(user, portable_site, "--only", "docker.daemon,docker.permission", keep_groups=False)
    assert by_id(fresh)["docker.permission"]["status"] == "PASS", "a session with the group must pass"
    assert fresh_code == 0
    result = by_id(report)["docker.permission"]
    assert code == 1 and result["status"] == "FAIL"
    assert "does not carry it" in result["summary"]
    assert result["fix"] == f"newgrp {group}   # a shell that carries it; or log out and back in"
