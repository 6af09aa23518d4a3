"""`mldoctor image check` against the real daemon: small images built here from the local base image (the legacy
builder, no registry, no RUN so no network is needed), the torch CPU test image, a `docker save` tarball read with
no daemon reachable, and the promise that nothing is started and nothing left behind.

Every image built here is removed in a `finally`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from provided import BASE_IMAGE, BUSYBOX_IMAGE, TORCH_IMAGE, require_docker, require_images

from mldoctor.image.checks import judge
from mldoctor.image.daemon import LABEL, read_image
from mldoctor.image.targets import from_values
from mldoctor.model import Status

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
RUN_CHECK = "from mldoctor.image.command import check; check()"
LIB = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
CASES = {
    "require": (BASE_IMAGE, 'ENV NVIDIA_REQUIRE_CUDA="cuda>=13.0"'),
    "driverlib": (BASE_IMAGE, f"COPY libnvidia-ml.so.1 {LIB}"),
    "visible": (BASE_IMAGE, "ENV CUDA_VISIBLE_DEVICES=all"),
    "small": (BUSYBOX_IMAGE, f"COPY libnvidia-ml.so.1 {LIB}\nENV CUDA_VISIBLE_DEVICES=all\nEXPOSE 8000"),
    "cu124": (
        BASE_IMAGE,
        "COPY version.py /usr/local/lib/python3.11/dist-packages/torch/version.py\n"
        "COPY libnvidia-ml.so.1 /usr/local/cuda-12.4/compat/libcuda.so.1\n"
        "ENV LD_LIBRARY_PATH=/usr/local/cuda-12.4/compat:/usr/local/nvidia/lib64 CUDA_VERSION=12.4.1",
    ),
}
VERSION_PY = b"__version__ = '2.5.1+cu124'\ncuda: Optional[str] = '12.4'\n"


def _build(client, base: str, lines: str, tag: str) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        files = {
            "Dockerfile": f"FROM {base}\n{lines}\n".encode(),
            "libnvidia-ml.so.1": b"\x7fELF",
            "version.py": VERSION_PY,
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    stream = client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True)
    errors = [chunk["error"] for chunk in stream if "error" in chunk]
    assert not errors, errors


@pytest.fixture(scope="module")
def images():
    """case -> tag, built once for the module, all removed afterwards whatever happens."""
    import docker

    require_images(BASE_IMAGE, BUSYBOX_IMAGE)
    client = docker.from_env(timeout=60)
    suffix = uuid.uuid4().hex[:8]
    tags = {case: f"mldoctor-image-test-{case}:{suffix}" for case in CASES}
    try:
        for case, (base, lines) in CASES.items():
            _build(client, base, lines, tags[case])
        yield tags
    finally:
        for tag in tags.values():
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True)
        client.close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "false", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", RUN_CHECK, "--no-host", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def results(process: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(process.stdout)["results"]}


def test_a_torch_cpu_image_reports_cuda_build_none():
    require_images(TORCH_IMAGE)
    process = cli(TORCH_IMAGE, "--format", "json")
    assert process.returncode == 0, process.stderr
    torch = results(process)["image.torch"]
    assert torch["status"] == "WARN" and "CUDA build: none" in torch["summary"]
    assert results(process)["image.python"]["summary"] == "Python 3.11"


def test_a_torch_cpu_image_against_a_gpu_fleet_fails(tmp_path):
    require_images(TORCH_IMAGE)
    process = cli(TORCH_IMAGE, "--driver", "550.90", "--gpu", "H100", "--junit", str(tmp_path / "r.xml"))
    assert process.returncode == 1
    assert "CUDA build: none" in process.stdout and 'name="image.torch"' in (tmp_path / "r.xml").read_text()


def test_an_image_requiring_cuda_13_fails_against_driver_550_naming_the_branch(images):
    process = cli(images["require"], "--driver", "550.90", "--format", "json")
    assert process.returncode == 1, process.stderr
    cuda = results(process)["image.cuda"]
    assert cuda["status"] == "FAIL" and "CUDA >= 13.0" in cuda["summary"] and "580" in cuda["fix"]


def test_a_baked_libnvidia_ml_fails(images):
    facts = read_image(images["driverlib"])
    assert facts.driver_files == [LIB]
    (result,) = [r for r in judge(facts, from_values("550.90", [], "flags")) if r.id == "image.driver_libs"]
    assert result.status is Status.FAIL and "file exists" in result.summary


def test_baked_cuda_visible_devices_all_fails(images):
    process = cli(images["visible"], "--format", "json")
    assert process.returncode == 1
    assert results(process)["image.visible_devices"]["status"] == "FAIL"


def test_a_docker_save_tarball_with_no_daemon_gives_the_daemons_verdicts(images, tmp_path):
    import docker

    client = docker.from_env(timeout=60)
    path = tmp_path / "small.tar"
    try:
        with open(path, "wb") as handle:
            for chunk in client.images.get(images["small"]).save(named=True):
                handle.write(chunk)
    finally:
        client.close()
    no_daemon = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}
    offline = cli("--from-tar", str(path), "--driver", "550.90", "--format", "json", env=no_daemon)
    online = cli(images["small"], "--driver", "550.90", "--format", "json")
    assert offline.returncode == online.returncode == 1, offline.stderr
    verdicts = {k: r["status"] for k, r in results(offline).items()}
    daemon = {k: r["status"] for k, r in results(online).items()}
    # only the daemon's history carries local tags, so only it sees the base (mldoctor-test-busybox:latest)
    assert (verdicts.pop("image.base"), daemon.pop("image.base")) == ("SKIP", "WARN")
    assert verdicts == daemon
    assert verdicts["image.driver_libs"] == verdicts["image.visible_devices"] == "FAIL"
    assert verdicts["image.healthcheck"] == "WARN"
    assert json.loads(offline.stdout)["facts"]["image"]["source"] == "docker-save"
    # an image name with no daemon is not mistaken for a file: exit 3, one line
    assert cli(images["small"], env=no_daemon).returncode == 3


def test_no_container_is_started_and_none_is_left(images):
    import docker

    client = docker.from_env(timeout=30)
    try:
        since = int(time.time()) - 1
        facts = read_image(images["driverlib"])
        until = int(time.time()) + 1
        events = client.events(
            since=since, until=until, filters={"type": "container", "label": f"{LABEL}=1"}, decode=True
        )
        actions = [event.get("Action") or event.get("status") for event in events]
        left = client.api.containers(all=True, filters={"label": LABEL})
    finally:
        client.close()
    assert facts.files_read
    assert "create" in actions and "destroy" in actions, actions  # the events were seen: this test can fail
    assert not any(str(action).startswith("start") for action in actions), actions
    assert left == []


def test_reading_files_costs_well_under_a_second_beyond_inspect():
    require_images(TORCH_IMAGE)
    facts = read_image(TORCH_IMAGE)
    beyond_inspect = facts.timings["history"] + facts.timings["files"]
    assert beyond_inspect < 1.0, facts.timings
    assert facts.torch is not None and facts.torch.cuda is None


@pytest.mark.parametrize(("ref", "words"), [(f"mldoctor-no-such-image:{uuid.uuid4().hex[:8]}", "not on this machine"),
                                             ("Bad:::Name", "invalid reference format")])  # fmt: skip
def test_an_image_that_does_not_exist_is_one_line_and_exit_2(ref, words):
    require_docker()
    process = cli(ref)
    assert process.returncode == 2 and process.stderr.count("\n") == 1 and words in process.stderr


def test_a_container_left_by_a_killed_run_is_removed_by_the_next(images):
    """SIGKILL skips the `finally`: the next run on this host removes what a dead mldoctor left."""
    import socket

    import docker

    client = docker.from_env(timeout=30)
    name = f"mldoctor-image-leftover-{uuid.uuid4().hex[:8]}"
    labels = {LABEL: "1", f"{LABEL}.pid": "999999999", f"{LABEL}.host": socket.gethostname()}
    try:
        client.api.create_container(images["visible"], entrypoint=["/x"], name=name, labels=labels)
        read_image(images["visible"])
        assert client.api.containers(all=True, filters={"name": name}) == []
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(name, force=True)
        client.close()


def test_a_cu124_torch_with_cuda_compat_against_blackwell_and_geforce(images):
    """torch's CUDA build and the compat directory read from the image's files, judged for two fleets."""
    process = cli(images["cu124"], "--driver", "550.90", "--gpu", "RTX 5090", "--gpu", "RTX 4090", "--format", "json")
    found = results(process)
    assert process.returncode == 1
    assert found["image.torch"]["status"] == "PASS" and "CUDA build: 12.4" in found["image.torch"]["summary"]
    assert found["image.arch"]["status"] == "FAIL" and "sm_120" in found["image.arch"]["summary"]
    assert found["image.compat"]["status"] == "FAIL" and "804" in found["image.compat"]["summary"]
    assert found["image.cuda"]["status"] == "PASS"
    healthy = results(cli(images["cu124"], "--driver", "550.90", "--gpu", "H100", "--format", "json"))
    assert {healthy[k]["status"] for k in ("image.arch", "image.compat", "image.torch")} == {"PASS"}
