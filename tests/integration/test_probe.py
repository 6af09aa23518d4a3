"""The probe against a real daemon and real containers: the images come from scripts/ci/build-test-images.sh.

Every test runs `mldoctor` as a subprocess, the way a user does, and reads its JSON. Without the images these
tests skip with the command that builds them, except in CI (CI=true), where a missing image is a broken CI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from daemon_proxy import DaemonProxy
from provided import labelled_containers, require_images

pytestmark = pytest.mark.docker

TORCH_IMAGE = "mldoctor-probe-test:cpu"
BASE_IMAGE = "mldoctor-base:bookworm"
BUSYBOX_IMAGE = "mldoctor-test-busybox:latest"
GARBAGE_IMAGE = "mldoctor-test-garbage:latest"
HANG_IMAGE = "mldoctor-test-hang:latest"
LABEL = "mldoctor.probe"


def _docker():
    import docker

    return docker.from_env(timeout=10)


@pytest.fixture(scope="module")
def images() -> None:
    require_images(TORCH_IMAGE, BASE_IMAGE, BUSYBOX_IMAGE, GARBAGE_IMAGE, HANG_IMAGE)


def probe_containers() -> list[str]:
    """Every container mldoctor's probe runs create: the probe's and the name lookup's beside it."""
    return sorted(labelled_containers(LABEL))


def the_probe(names: set[str]) -> set[str]:
    """The probe's own containers among `names` (not the name lookup's)."""
    return {name for name in names if name.startswith("mldoctor-probe-")}


def left_behind(before: set[str], grace: float = 15.0) -> set[str]:
    """Probe containers that appeared since `before` and are still there after `grace` seconds: another run on
    the same daemon (a colleague's test run) removes its own within seconds; a leak stays."""
    deadline = time.monotonic() + grace
    while (new := set(probe_containers()) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    return new


@pytest.fixture(autouse=True)
def no_probe_container_left(images):
    before = set(probe_containers())
    yield
    assert left_behind(before) == set(), "a probe container outlived its run"


def mldoctor(*args: str, timeout: float = 120) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.stderr == "" or "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["results"]}


def result(report: dict, check_id: str) -> dict:
    return next(r for r in report["results"] if r["id"] == check_id)


def test_torch_image_runs_the_cpu_benchmark_and_passes():
    code, report = mldoctor("gpu-bench", "--image", TORCH_IMAGE, "--duration", "2", "--shm-size", "2g")
    got = statuses(report)
    assert code == 0, got
    for check_id in ("probe.container", "probe.python", "probe.torch", "probe.shm", "bench.cpu"):
        assert got[check_id] == "PASS", (check_id, result(report, check_id))
    assert got["probe.cuda"] == "SKIP"  # no GPU on this machine: nothing given to the container
    document = report["facts"]["probe"]["document"]
    assert document["torch"]["version"].startswith("2.13.0")
    assert document["system"]["uid"] != 0, "the probe image runs as its non-root user"
    assert document["shm"]["total_bytes"] == 2 << 30
    cpu = document["bench"]["cpu"]
    assert cpu["ok"] and cpu["gflops"] > 10 and cpu["threads"] >= 1
    (row,) = [r for r in report["benchmarks"] if r["gpu"] == "cpu"]  # the all-reduce adds its own rows
    assert (row["gpu"], row["metric"], row["status"]) == ("cpu", "fp32", "PASS")
    assert row["measured"] == pytest.approx(cpu["gflops"])


def test_the_container_is_hardened():
    """No network, no capabilities, no new privileges: what the probe sees from inside says so."""
    code, report = mldoctor("gpu-bench", "--image", TORCH_IMAGE, "--duration", "0")
    assert code == 0, statuses(report)
    run = report["facts"]["probe"]["run"]
    assert run["gpus"] == "none" and run["stage"] == "done"
    assert report["facts"]["probe"]["document"]["system"]["in_container"] is True


def test_an_image_with_python_but_no_torch():
    code, report = mldoctor("gpu-bench", "--image", BASE_IMAGE, "--duration", "1")
    got = statuses(report)
    assert code == 1
    assert got["probe.container"] == "PASS" and got["probe.python"] == "PASS"
    assert got["probe.torch"] == "FAIL"
    assert "pip install torch" in result(report, "probe.torch")["fix"]
    assert got["bench.matmul"] == "SKIP" and got.get("bench.cpu") == "SKIP"


def test_an_image_without_python3():
    code, report = mldoctor("gpu-bench", "--image", BUSYBOX_IMAGE)
    got = statuses(report)
    assert code == 1
    assert got["probe.python"] == "FAIL"
    assert "no python3" in result(report, "probe.python")["summary"]
    assert got["probe.torch"] == "SKIP"


def test_a_banner_around_the_probes_document_is_tolerated_and_noted():
    """NGC-style entrypoints and .pth files print on stdout before the probe runs: the document is still read,
    and the banner is a note in probe.container's details, not a failure."""
    code, report = mldoctor("gpu-bench", "--image", GARBAGE_IMAGE)
    container = result(report, "probe.container")
    assert container["status"] == "PASS", container
    assert code == 1 and statuses(report)["probe.torch"] == "FAIL"  # that image has python3 and no torch
    assert any("hello from a .pth file" in line and "before" in line for line in container["details"])
    assert report["facts"]["probe"]["document"]["schema"] == "mldoctor-probe"


def test_a_probe_past_its_deadline_is_killed_and_removed():
    started = time.monotonic()
    code, report = mldoctor("gpu-bench", "--image", HANG_IMAGE, "--timeout", "3", "--duration", "0")
    assert time.monotonic() - started < 20
    failed = result(report, "probe.container")
    assert code == 1 and failed["status"] == "FAIL"
    assert "did not finish within 3 s" in failed["summary"] and "removed" in failed["summary"]
    assert report["facts"]["probe"]["run"]["timed_out"] is True


def test_a_nonexistent_image():
    code, report = mldoctor("gpu-bench", "--image", "mldoctor-test/does-not-exist:1")
    failed = result(report, "probe.container")
    assert code == 1 and failed["status"] == "FAIL"
    assert failed["fix"].startswith("docker pull mldoctor-test/does-not-exist:1")


def test_check_without_the_default_image_warns_with_the_build_command():
    """A fresh machine: mldoctor's own image is not built yet. That is a WARN with the build command, and the
    probe's dependants are skipped, not a wall of red."""
    _, report = mldoctor("check", "--only", "probe,bench", "--timeout", "10")
    container = result(report, "probe.container")
    if container["status"] == "PASS":
        pytest.skip("the default probe image is built on this machine")
    assert container["status"] == "WARN" and container["fix"].startswith("mldoctor image build")
    assert {r["status"] for r in report["results"] if r["id"] != "probe.container"} == {"SKIP"}


def test_check_runs_the_probe_in_a_given_image_and_no_probe_skips_it():
    code, report = mldoctor("check", "--image", TORCH_IMAGE, "--duration", "1", "--only", "probe,bench")
    assert code == 0 and statuses(report)["bench.cpu"] == "PASS"  # Docker's default 64 MiB /dev/shm is a WARN
    _, report = mldoctor("check", "--no-probe", "--only", "docker")
    assert not [r for r in report["results"] if r["area"] in ("probe", "bench")]
    assert report["facts"]["probe"] is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_removes_its_container(signum):
    proc = subprocess.Popen(
        [sys.executable, "-m", "mldoctor", "gpu-bench", "--image", HANG_IMAGE, "--timeout", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    before = set(probe_containers())
    try:
        deadline = time.monotonic() + 30
        while not the_probe(set(probe_containers()) - before):
            assert time.monotonic() < deadline, "the probe container never appeared"
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(signum)
        _ended(proc, signum)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (130, 143)
    assert "Traceback" not in proc.stderr.read()
    assert not (set(probe_containers()) - before)  # the probe's, and the name lookup's beside it


def test_an_interrupt_mid_request_leaves_the_client_alone_and_the_exit_hook_removes_the_container(monkeypatch):
    """An interrupt inside a request may leave the client's pool lock held: the run must not use that client
    again (it could wait forever); the exit hook removes the container over a fresh connection."""
    from docker.api.client import APIClient

    from mldoctor import interrupts
    from mldoctor.probe import launch

    interrupted: list[APIClient] = []
    touched_after: list[str] = []
    start, remove = APIClient.start, APIClient.remove_container

    def start_then_interrupt(self, *args, **kwargs):
        interrupted.append(self)
        raise KeyboardInterrupt

    def remove_container(self, *args, **kwargs):
        if self in interrupted:
            touched_after.append("remove_container")
        return remove(self, *args, **kwargs)

    monkeypatch.setattr(APIClient, "start", start_then_interrupt)
    monkeypatch.setattr(APIClient, "remove_container", remove_container)
    before = set(probe_containers())
    with pytest.raises(KeyboardInterrupt):
        launch.run_in_container(launch.LaunchRequest(image=HANG_IMAGE, deadline_s=60, timeout=10))
    created = set(probe_containers()) - before
    assert len(created) == 1 and not touched_after
    monkeypatch.setattr(APIClient, "start", start)
    assert interrupts.undo_all() == []
    assert not created & set(probe_containers())


def test_an_interrupt_while_the_daemon_stops_answering_ends_within_the_undo_deadline(tmp_path):
    """The undo is bounded as a whole, not by --timeout per call: a hung daemon costs at most UNDO_DEADLINE_S, and
    the container left is named with the command that removes it."""
    from mldoctor.interrupts import UNDO_DEADLINE_S

    proxy = DaemonProxy(str(tmp_path))
    before = set(probe_containers())
    proc = subprocess.Popen(
        [sys.executable, "-m", "mldoctor", "gpu-bench", "--image", HANG_IMAGE, "--timeout", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOCKER_HOST": f"unix://{proxy.path}", "PYTHONFAULTHANDLER": "1"},
    )
    name = None
    try:
        deadline = time.monotonic() + 30
        while not (mine := the_probe(set(probe_containers()) - before)):
            assert time.monotonic() < deadline and proc.poll() is None, "the probe container never appeared"
            time.sleep(0.1)
        (name,) = mine
        time.sleep(1)  # the run is waiting on the probe now
        proxy.frozen.set()
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        try:
            proc.wait(timeout=UNDO_DEADLINE_S + 15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=10)
            pytest.fail(f"no exit after Ctrl-C with a hung daemon; its threads:\n{proc.stderr.read()[-8000:]}")
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
        for left in set(probe_containers()) - before:  # the daemon "hung": what the run could not remove
            _docker().api.remove_container(left, force=True)
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert took <= UNDO_DEADLINE_S + 10, err
    assert f"the container {name} is still there (" in err and f"`docker rm -f {name}` removes it" in err
    assert "Traceback" not in err


def test_a_container_on_the_default_bridge_resolves_what_the_host_resolves():
    """probe.network: a second container joins the default bridge and resolves pypi.org while the probe runs
    (the probe itself has none); removed like the probe's. SKIP only where this host resolves nothing either."""
    import socket

    try:
        socket.getaddrinfo("pypi.org", 443)
        host_resolves = True
    except OSError:
        host_resolves = False
    _, report = mldoctor("check", "--only", "docker.network,probe.*", "--image", TORCH_IMAGE, "--duration", "0")
    lookup = report["facts"]["probe"]["lookup"]
    row = result(report, "probe.network")
    assert lookup["host_resolves"] is host_resolves
    if host_resolves:
        assert lookup["resolved"] is True and lookup["error"] is None, lookup
        assert row["status"] == "PASS" and row["summary"].startswith("a container on the default bridge resolves")
    else:
        assert row["status"] == "SKIP", row
    assert report["facts"]["probe"]["document"]["shm"] is not None  # the probe ran as before, beside it


def test_two_runs_at_once_do_not_interfere():
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "mldoctor", "gpu-bench", "--image", image, "--duration", "1", "--format", "json"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for image in (TORCH_IMAGE, BASE_IMAGE)
    ]
    torch_report, base_report = (json.loads(run.communicate(timeout=120)[0]) for run in runs)
    assert statuses(torch_report)["bench.cpu"] == "PASS"
    assert statuses(base_report)["probe.torch"] == "FAIL"


GPU_PATH_SHIM = """
import json, sys, time
import torch

ns = {"__name__": "mldoctor_probe"}
exec(compile(SOURCE, "probe.py", "exec"), ns)


class Event:  # host-clock stand-in for torch.cuda.Event: the same calls, on the CPU
    def __init__(self, enable_timing=False):
        assert enable_timing, "the probe must ask for timing events"
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1e3


torch.cuda.Event = Event
torch.cuda.synchronize = lambda device=None: None
torch.cuda.set_device = lambda device: None
torch.cuda.empty_cache = lambda: None
torch.cuda.mem_get_info = lambda device=None: (256 << 20, 1 << 30)
real_empty = torch.empty


def empty(*args, pin_memory=False, **kwargs):  # a CPU-only torch cannot pin
    return real_empty(*args, **kwargs)


torch.empty = empty
ns.update(DEVICE_TYPE="cpu", FLUSH_BYTES=1 << 20, WARMUP_N=256)
ns["shapes"] = lambda dtype, free: [(128, 256, 384), (256, 256, 256)]
before = torch.backends.cuda.matmul.allow_tf32
result = ns["_bench_gpu"](torch, {"index": 0, "major": 9, "minor": 0, "l2_bytes": 50 << 20}, ns["Budget"](2.0), [])
result["tf32_restored"] = torch.backends.cuda.matmul.allow_tf32 == before
nan = ns["relative_error"](torch, torch.ones(2, 2), torch.tensor([[1.0, float("nan")], [1.0, 1.0]]))
result["nan_is_an_error"] = nan != nan
sys.__stdout__.write(json.dumps(result) + "\\n")
"""


def test_the_gpu_benchmark_code_runs_on_real_torch():
    """The GPU benchmark path (dtype choice, TF32 flags, fp8 through torch._scaled_mm, L2 flush, correctness
    checks, copies) against the image's real torch, on the CPU: only the CUDA-only calls are stood in for."""
    from mldoctor.probe.launch import probe_source

    container = _docker().containers.create(
        TORCH_IMAGE,
        entrypoint=["python3"],
        command=["-c", f"SOURCE = {probe_source()!r}\n{GPU_PATH_SHIM}"],
        network_mode="none",
    )
    try:
        container.start()
        assert container.wait(timeout=120)["StatusCode"] == 0, container.logs(stdout=False, stderr=True)[-3000:]
        bench = json.loads(container.logs(stdout=True, stderr=False))
    finally:
        container.remove(force=True)
    assert bench["errors"] == [] and bench["tf32_restored"] and bench["nan_is_an_error"]
    assert [m["dtype"] for m in bench["matmul"]] == ["fp32", "tf32", "bf16", "fp8"]  # sm_90 on torch >= 2.5
    for result in bench["matmul"]:
        assert result["error"] is None and result["ok"], result
        assert 0 <= result["max_rel_err"] <= result["tolerance"] and result["tflops"] > 0
        assert result["iters"] >= 10 and result["min_ms"] <= result["median_ms"]
    for name in ("d2d", "h2d", "d2h"):
        assert bench[name]["ok"] and bench[name]["gbps"] > 0 and bench[name]["iters"] >= 10, name


def _ended(proc: subprocess.Popen, signum: int) -> None:
    """Wait for a run sent `signum` to end; a hang fails with every thread's stack (SIGABRT makes faulthandler,
    switched on by PYTHONFAULTHANDLER, print them on its stderr)."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=10)
        pytest.fail(f"no exit within 30 s of signal {signum}; its threads:\n{proc.stderr.read()[-8000:]}")


def _start_hanging_run() -> tuple[subprocess.Popen, str]:
    """An mldoctor run whose probe never finishes, and the name of its container once it exists."""
    before = set(probe_containers())
    proc = subprocess.Popen(
        [sys.executable, "-m", "mldoctor", "gpu-bench", "--image", HANG_IMAGE, "--timeout", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    deadline = time.monotonic() + 30
    while not (mine := the_probe(set(probe_containers()) - before)):
        assert time.monotonic() < deadline and proc.poll() is None, "the probe container never appeared"
        time.sleep(0.1)
    return proc, mine.pop()


def test_the_probe_container_has_pids_and_memory_limits():
    proc, name = _start_hanging_run()
    try:
        host_config = _docker().api.inspect_container(name)["HostConfig"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _ended(proc, signal.SIGTERM)
    assert host_config["PidsLimit"] == 1024
    assert 0 < host_config["Memory"] <= 16 << 30
    assert host_config["NetworkMode"] == "none" and host_config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host_config["SecurityOpt"]


def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next_run():
    """SIGKILL leaves no chance to clean up: the container stays; the next run finds it, removes it, says so."""
    proc, name = _start_hanging_run()
    proc.kill()
    proc.wait(timeout=30)
    assert name in probe_containers(), "a SIGKILLed run cannot remove its own container"
    code, report = mldoctor("gpu-bench", "--image", TORCH_IMAGE, "--duration", "0")
    assert code == 0 and name not in probe_containers()
    notes = report["facts"]["probe"]["run"]["notes"]
    assert any(name in note and "killed" in note for note in notes), notes
    assert any(name in line for line in result(report, "probe.container")["details"])


def test_an_image_declaring_a_volume_leaves_no_volume(tmp_path):
    client = _docker()
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nVOLUME /data\n")
    image, _ = client.images.build(path=str(tmp_path), tag="mldoctor-test-volume:latest", rm=True)
    try:
        before = {v.id for v in client.volumes.list()}
        mldoctor("gpu-bench", "--image", "mldoctor-test-volume:latest", "--duration", "0")
        assert {v.id for v in client.volumes.list()} - before == set()
    finally:
        client.images.remove(image.id, force=True)


def test_an_image_that_floods_stdout_costs_bounded_memory(tmp_path):
    """An image printing 128 MiB before the probe: mldoctor reads at most 1 MiB of it while it streams."""
    client = _docker()
    flood = 'import sys; sys.stdout.write("x" * (128 << 20))'  # no newline: the probe starts its own line
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nRUN echo '{flood}' > /usr/lib/python3/dist-packages/flood.pth\n"
    )
    image, _ = client.images.build(path=str(tmp_path), tag="mldoctor-test-flood:latest", rm=True)
    try:
        measure = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        argv = [
            sys.executable,
            "-m",
            "mldoctor",
            "gpu-bench",
            "--image",
            "mldoctor-test-flood:latest",
            "--duration",
            "0",
        ]
        out = subprocess.run([sys.executable, "-c", measure, *argv], capture_output=True, text=True, timeout=300)
        peak_kib = int(out.stdout.strip().splitlines()[-1])
        print(f"peak RSS of mldoctor with an image printing 128 MiB: {peak_kib / 1024:.0f} MiB")
        assert peak_kib < 160 * 1024, peak_kib  # 1 MiB of output kept; before, the whole 128 MiB and copies of it
        _, report = mldoctor("gpu-bench", "--image", "mldoctor-test-flood:latest", "--duration", "0")
        assert result(report, "probe.container")["status"] == "PASS"  # the document, printed last, was still read
        notes = report["facts"]["probe"]["run"]["notes"]
        assert any(note.startswith("stdout was 134") and "only its last 1048576" in note for note in notes), notes
    finally:
        client.images.remove(image.id, force=True)


def test_progress_names_the_probe_s_steps_as_they_happen():
    """Issue 14: slow work says what it is doing: the probe's own steps (importing torch, the all-reduce, the
    benchmark of each device) reach the --ci progress lines while the container runs; stdout stays the report."""
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--ci", "--only", "probe,bench", "--image", TORCH_IMAGE,
         "--duration", "1", "--format", "json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert json.loads(proc.stdout)["results"]
    marker = f"the probe in {TORCH_IMAGE}: "
    steps = [
        line.partition(marker)[2] for line in proc.stderr.splitlines() if re.search(r"\ds " + re.escape(marker), line)
    ]
    assert steps[:1] == ["importing torch"] and "benchmarking the CPU" in steps, proc.stderr
