"""`mldoctor report` on this machine's real daemon, with the probe in the CI probe image, and secrets planted where
users keep them: the environment, a proxy URL, and registry credentials in ~/.docker/config.json."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.docker

TORCH_IMAGE = "mldoctor-probe-test:cpu"
SECRETS = {
    "HF_TOKEN": "hf_" + "ZyXwVuTsRqPoNmLkJiHgFeDcBa98765432",
    "GITHUB_TOKEN": "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8",
    "DOCKER_AUTH_CONFIG": '{"auths": {"r.example.com": {"auth": "cGxhbnRlZDpzZWNyZXQ="}}}',
    "HTTPS_PROXY": "http://proxyuser:Pr0xy-Pa55@proxy.example.com:3128",
}
PLANTED = [
    "ZyXwVuTsRqPoNmLkJiHgFeDcBa98765432",
    "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8",
    "cGxhbnRlZDpzZWNyZXQ=",
    "Pr0xy-Pa55",
]
REGISTRY_AUTH = base64.b64encode(b"registry-user:registry-only-secret").decode()


@pytest.fixture
def home(tmp_path):
    """A home whose ~/.docker/config.json holds registry credentials, as `docker login` leaves them."""
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": REGISTRY_AUTH}}}))
    return tmp_path


def report(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **SECRETS, "HOME": str(home)}
    env.pop("DOCKER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "mldoctor", "report", *args], capture_output=True, text=True, env=env, timeout=600
    )


def unpack(path) -> dict[str, str]:
    with zipfile.ZipFile(path) as bundle:
        return {name: bundle.read(name).decode() for name in bundle.namelist()}


def test_a_redacted_bundle_with_the_probe(home, tmp_path, probe_test_image):
    target = tmp_path / "bundle.zip"
    proc = report(
        home, "--image", probe_test_image, "--duration", "1", "--shm-size", "1g", "--redact-hosts", "-o", str(target)
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert f"wrote {target}" in proc.stdout
    files = unpack(target)
    for name in (
        "report.json",
        "report.md",
        "report.html",
        "manifest.json",
        "raw/docker-info.json",
        "raw/docker-version.json",
        "raw/probe-stdout.json",
        "raw/pip-freeze.txt",
        "raw/image-packages.txt",
        "raw/environment.txt",
    ):
        assert name in files, sorted(files)
    assert "torch==2.13.0" in files["raw/image-packages.txt"]  # the image's own packages, not mldoctor's
    assert "### Environment" in files["report.md"]
    for name, text in files.items():
        for secret in [*PLANTED, REGISTRY_AUTH]:
            assert secret not in text, f"a planted secret is in {name}"
    assert "HF_TOKEN" not in files["raw/environment.txt"]  # not on the allowlist
    assert "DOCKER_AUTH_CONFIG=[REDACTED:environment-secret]" in files["raw/environment.txt"]
    assert "proxyuser:[REDACTED:url-password]@" in files["raw/environment.txt"]
    assert sum(len(t.encode()) for t in files.values()) < 5 << 20

    manifest = json.loads(files.pop("manifest.json"))
    assert {f["name"] for f in manifest["files"]} == set(files)
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256(files[entry["name"]].encode()).hexdigest()
    assert manifest["redaction"]["hosts"] is True and manifest["raw"]["raw/probe-stdout.json"] == "collected"

    saved = json.loads(files["report.json"])
    assert {r["id"] for r in saved["results"]} >= {"docker.daemon", "probe.container", "probe.torch", "bench.cpu"}
    again = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--facts", str(target), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rediagnosed = json.loads(again.stdout)["results"]
    assert rediagnosed[0]["id"] == "report.integrity" and rediagnosed[0]["status"] == "PASS"  # an intact bundle
    assert [(r["id"], r["status"]) for r in rediagnosed[1:]] == [(r["id"], r["status"]) for r in saved["results"]]


def test_registry_credentials_are_never_read_even_unredacted(home, tmp_path):
    target = tmp_path / "plain.zip"
    proc = report(home, "--no-probe", "--no-redact", "-o", str(target))
    assert proc.returncode in (0, 1), proc.stderr
    assert "NOT redacted" in proc.stderr
    files = unpack(target)
    assert json.loads(files["manifest.json"])["redaction"] == {"enabled": False}
    assert SECRETS["DOCKER_AUTH_CONFIG"] in files["raw/environment.txt"]  # --no-redact means it
    for name, text in files.items():
        assert REGISTRY_AUTH not in text and "registry-only-secret" not in text, name


def test_default_name_in_a_directory(home, tmp_path):
    proc = report(home, "--no-probe", "-o", str(tmp_path))
    assert proc.returncode in (0, 1), proc.stderr
    (bundle,) = [p for p in os.listdir(tmp_path) if p.endswith(".zip")]
    assert re.fullmatch(r"mldoctor-report-[A-Za-z0-9._-]+-\d{8}T\d{6}Z-[0-9a-f]{8}\.zip", bundle), bundle
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_variable_that_is_not_utf8_does_not_cost_the_bundle(home, tmp_path):
    """`LD_LIBRARY_PATH=$'\\xff'` crashed `report` with UnicodeEncodeError before any bundle was written."""
    target = tmp_path / "env.zip"
    env = {**os.environb, b"HOME": os.fsencode(home), b"LD_LIBRARY_PATH": b"/opt/\xff/lib"}
    env.pop(b"DOCKER_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "report", "--no-probe", "-o", str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "LD_LIBRARY_PATH=/opt/\ufffd/lib\n" in unpack(target)["raw/environment.txt"]


def test_concurrent_runs_into_one_directory_each_write_their_own_private_bundle(home, tmp_path):
    """A job array starting `report -o DIR/` on one node at once: as many bundles as runs, none replaced."""
    env = {**os.environ, "HOME": str(home)}
    env.pop("DOCKER_CONFIG", None)
    argv = [sys.executable, "-m", "mldoctor", "report", "--no-probe", "-o", f"{tmp_path}/"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(4)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode in (0, 1), err.decode()
    bundles = [p for p in os.listdir(tmp_path) if p.endswith(".zip")]
    assert len(bundles) == 4 and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert {stat.S_IMODE((tmp_path / p).stat().st_mode) for p in bundles} == {0o600}
