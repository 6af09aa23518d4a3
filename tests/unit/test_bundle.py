"""`mldoctor report` end to end on planted facts: what lands in the zip, the manifest, atomicity, re-diagnosis.

`gpu_report()` is an 8-GPU HGX host whose probe ran and benchmarked (GPU 5 slow at bf16), with secrets planted
where real ones hide: the environment, daemon.json, the probe's stderr, a URL with a password, a host name and
user that --redact-hosts must replace everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from factories import daemon, docker, facts, host
from helpers import call
from test_nvidia_rules import nvidia_facts

from mldoctor import interrupts
from mldoctor.bundle import archive, collect
from mldoctor.bundle.collect import Collected, Source, Unavailable
from mldoctor.bundle.command import write_bundle
from mldoctor.bundle.redact import Redactor, for_facts
from mldoctor.cli import main
from mldoctor.facts.docker import DaemonConfig, Endpoint
from mldoctor.facts.host import UserFacts
from mldoctor.facts.probe import ProbeFacts, ProbeRun
from mldoctor.facts.probe_document import (
    BenchResults,
    CopyResult,
    GpuBench,
    MatmulResult,
    PcieLink,
    ProbeCuda,
    ProbeDevice,
    ProbeDocument,
    ProbePython,
    ProbeSystem,
    ProbeTorch,
    Warmup,
)
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select

GIB = 1 << 30
EXPECTED = {"fp32": 52.0, "tf32": 402.2, "bf16": 790.0, "fp16": 759.0, "fp8": 1402.6}
SECRETS = {
    "github": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "hf": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "url_password": "s3cr3t-P4ss",
    "daemon_json": "registry-p4ssw0rd-value",
    "env_only": "wandb-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
}
HOSTNAME, USER, HOST_IP = "gpu-node-07.corp.example.com", "alice", "10.20.30.40"


def probe_facts(gpus: int = 8, slow: int | None = 5) -> ProbeFacts:
    devices = [
        ProbeDevice(
            index=i,
            name="NVIDIA H100 80GB HBM3",
            major=9,
            minor=0,
            sm_count=132,
            memory_bytes=85520809984,
            uuid=f"GPU-5a7c1f3e-9b2d-4e61-8c0a-{i:012x}",
            pci_bus_id=f"00000000:{0x18 + i:02X}:00.0",
            pcie=PcieLink(max_gen=5, max_width=16, cur_gen=5, cur_width=16),
        )
        for i in range(gpus)
    ]
    benches = []
    for i in range(gpus):
        factor = 0.68 if i == slow else 0.97 + 0.005 * i
        matmul = [
            MatmulResult(
                dtype=d,
                shape=[8192, 8192, 8192],
                tflops=e * (factor if d == "bf16" else 0.98),
                iters=50,
                max_rel_err=1e-3,
                tolerance=2e-2,
                ok=True,
            )
            for d, e in EXPECTED.items()
        ]
        benches.append(
            GpuBench(
                index=i,
                warmup=Warmup(seconds=2.0, settled=True),
                matmul=matmul,
                d2d=CopyResult(bytes=1 << 30, gbps=2900.0, iters=20),
                h2d=CopyResult(bytes=1 << 28, gbps=52.0, iters=20),
                d2h=CopyResult(bytes=1 << 28, gbps=49.5, iters=20),
            )
        )
    document = ProbeDocument(
        python=ProbePython(version="3.10.12", implementation="CPython", executable="/usr/bin/python3"),
        system=ProbeSystem(uid=1000, gid=1000, user="mldoctor", machine="x86_64", cpu_count=224, in_container=True),
        env={"NVIDIA_VISIBLE_DEVICES": "all", "CUDA_VERSION": "12.4.1"},
        torch=ProbeTorch(found=True, version="2.4.1+cu124", cuda="12.4", cudnn=90100, nccl="2.20.5", threads=112),
        cuda=ProbeCuda(available=True, device_count=gpus, arch_list=["sm_80", "sm_86", "sm_90"], driver=12040),
        devices=devices,
        bench=BenchResults(duration_s=10.0, elapsed_s=95.0, gpus=benches),
        packages=[
            ("torch", "2.4.1+cu124"),
            ("numpy", "1.26.4"),
            ("nvidia-nccl-cu12", "2.20.5"),
            ("Jinja2", "3.1.4"),
            ("google-auth", "2.35.0"),
            ("api-key-tool", "1.0"),
        ],
    )
    run = ProbeRun(
        image="mldoctor-probe:0.1.0",
        default_image=True,
        gpus="all",
        gpus_reason=f"this host has {gpus} NVIDIA GPUs",
        deadline_s=200.0,
        elapsed_s=101.3,
        exit_code=0,
        stderr_tail=f"warning: HF_TOKEN={SECRETS['hf']} is set\nfetching https://bot:{SECRETS['url_password']}@"
        f"git.example.com/repo.git from {HOST_IP}",
    )
    return ProbeFacts(run=run, document=document)


def gpu_facts():
    nv = nvidia_facts(gpus=8, switches=4)
    nv = replace(nv, fabric_manager=replace(nv.fabric_manager, running=True))
    return facts(
        host=host(
            hostname=HOSTNAME,
            user=UserFacts(uid=1000, name=USER, active_groups=[USER, "docker"], member_of=[USER, "docker"]),
        ),
        docker=docker(
            daemon=daemon(
                name=HOSTNAME,
                runtimes=["io.containerd.runc.v2", "nvidia", "runc"],
                warnings=[f"WARNING: API is accessible on http://{HOST_IP}:2375 without encryption."],
            ),
            config=DaemonConfig(
                path="/etc/docker/daemon.json",
                found=True,
                settings={"log-opts": {"max-size": "100m", "max-file": "3"}, "runtimes": {"nvidia": {"path": "x"}}},
            ),
        ),
        nvidia=nv,
        probe=probe_facts(),
    )


def gpu_report():
    return build_report(select(), gpu_facts(), Policy())


def raw_files() -> list[Collected]:
    daemon_json = json.dumps(
        {
            "registry-mirrors": [f"https://mirror:{SECRETS['url_password']}@mirror.example.com"],
            "proxies": {"http-proxy": "http://proxy:3128"},
            "registry-password": SECRETS["daemon_json"],
        }
    )
    return [
        Collected("raw/daemon.json", daemon_json, "collected"),
        Collected(
            "raw/environment.txt",
            f"GITHUB_TOKEN={SECRETS['github']}\nAWS_ACCESS_KEY_ID={SECRETS['aws']}\n"
            f"PATH=/home/{USER}/.local/bin:/usr/bin\n",
            "collected",
        ),
        Collected("raw/uname.txt", f"Linux {HOSTNAME.split('.')[0]} 6.1.0-18-amd64 #1 SMP x86_64\n", "collected"),
        Collected("raw/probe-stderr.txt", probe_facts().run.stderr_tail, "collected"),
        Collected(
            "raw/pip-freeze.txt",
            f"torch==2.4.1\nmypkg @ git+https://{USER}:{SECRETS['url_password']}@"
            "github.com/acme/mypkg.git\n" + f"wandb-key-in-a-log {SECRETS['env_only']}\n",
            "collected",
        ),
        Collected("raw/nvidia-smi-q.txt", None, "not collected: nvidia-smi is not installed"),
    ]


def unpack(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


@pytest.fixture
def bundle(tmp_path):
    """A bundle of gpu_report() with hosts and GPU ids redacted, and the report it was made from."""
    report = gpu_report()
    redactor = for_facts(report.facts, {"WANDB_API_KEY": SECRETS["env_only"]}, hosts=True, gpu_ids=True)
    path = tmp_path / "bundle.zip"
    manifest = write_bundle(str(path), report, raw_files(), redactor)
    return path, manifest, report


def test_no_planted_secret_survives_in_any_file(bundle):
    path, _, _ = bundle
    for name, data in unpack(path).items():
        text = data.decode()
        for kind, secret in SECRETS.items():
            assert secret not in text, f"{kind} secret in {name}"


def test_hosts_users_and_addresses_are_replaced_everywhere_by_the_same_pseudonyms(bundle):
    path, manifest, _ = bundle
    files = {name: data.decode() for name, data in unpack(path).items()}
    for name, text in files.items():
        for identifying in (HOSTNAME, "gpu-node-07", USER, HOST_IP, "5a7c1f3e-9b2d"):
            assert identifying not in text, f"{identifying} in {name}"
    data = json.loads(files["report.json"])
    assert data["host"] == "host1" and data["facts"]["docker"]["daemon"]["name"] == "host1"
    assert data["facts"]["host"]["user"]["name"] == "user1"
    assert "Linux host1 " in files["raw/uname.txt"]
    assert "/home/user1/.local/bin" in files["raw/environment.txt"]
    assert "192.0.2.1" in files["raw/probe-stderr.txt"] and "http://192.0.2.1:2375" in files["report.html"]
    uuids = [g["uuid"] for g in data["facts"]["nvidia"]["nvml"]["gpus"]]
    probe_uuids = [d["uuid"] for d in data["facts"]["probe"]["document"]["devices"]]
    assert uuids == probe_uuids == [f"GPU-00000000-0000-0000-0000-{i + 1:012x}" for i in range(8)]
    assert manifest["redaction"]["pseudonyms"] == {"gpu-uuid": 8, "host": 1, "ipv4": 1, "user": 1}


def test_the_manifest_lists_every_file_with_its_size_and_hash(bundle):
    path, _, _ = bundle
    files = unpack(path)
    manifest = json.loads(files.pop("manifest.json"))
    assert {f["name"] for f in manifest["files"]} == set(files)
    for entry in manifest["files"]:
        data = files[entry["name"]]
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["bundle_format"] == archive.BUNDLE_FORMAT and manifest["mldoctor_version"] == "0.1.0"
    assert manifest["raw"]["raw/nvidia-smi-q.txt"] == "not collected: nvidia-smi is not installed"


def test_the_manifest_counts_what_was_redacted_by_class(bundle):
    _, manifest, _ = bundle
    replaced = manifest["redaction"]["replaced"]
    assert replaced["github-token"] == 1 and replaced["aws-access-key"] == 1
    assert replaced["environment-secret"] == 1  # the W&B key, known only from the environment
    assert replaced["url-password"] == 4  # the probe's stderr in the facts and in raw/, pip freeze, daemon.json
    assert replaced["huggingface-token"] == 2  # the report's facts and the raw copy of the probe's stderr
    assert replaced["secret-value"] == 1  # daemon.json's registry-password
    assert manifest["redaction"]["enabled"] and manifest["redaction"]["hosts"]


def test_rediagnosing_the_bundle_gives_the_statuses_of_the_run_that_made_it(bundle, capsys):
    path, _, report = bundle
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--facts", str(path), "--format", "json"])
    again = json.loads(capsys.readouterr().out)
    judged = [(r["id"], r["status"]) for r in again["results"] if r["area"] != "report"]  # + report.integrity
    assert judged == [(r.id, r.status.value) for r in report.results]
    assert exit_info.value.code == report.exit_code()
    statuses = {r.id: r.status.value for r in report.results}
    assert statuses["bench.matmul.bf16"] == "FAIL" and statuses["docker.daemon"] == "PASS"


def test_without_redaction_everything_is_as_collected(tmp_path):
    report = gpu_report()
    path = tmp_path / "plain.zip"
    manifest = write_bundle(str(path), report, raw_files(), Redactor.off())
    files = unpack(path)
    assert SECRETS["github"] in files["raw/environment.txt"].decode()
    assert HOSTNAME in files["report.json"].decode()
    assert manifest["redaction"] == {"enabled": False}


def test_default_name_carries_host_and_utc_time():
    assert archive.default_name("gpu-01", "2026-11-27T17:10:48Z") == "mldoctor-report-gpu-01-20261127T171048Z.zip"
    assert archive.default_name("we/ird name", "2026-11-27T17:10:48Z").startswith("mldoctor-report-we_ird_name-")


def test_a_failure_while_writing_leaves_no_archive(tmp_path, monkeypatch):
    """Atomic: the zip is assembled under a temp name; a failure mid-way removes it and leaves no target."""
    report = gpu_report()
    written = []

    def explode(self, entry, data, *args, **kwargs):
        written.append(entry.filename)
        if len(written) == 3:
            raise KeyboardInterrupt
        return original(self, entry, data, *args, **kwargs)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", explode)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(str(tmp_path / "b.zip"), report, raw_files(), Redactor())
    assert written[:2] == ["report.json", "report.md"]
    assert os.listdir(tmp_path) == []


def test_ctrl_c_while_collecting_leaves_no_archive(tmp_path, monkeypatch, capsys):
    def interrupted(facts, timeout):
        raise KeyboardInterrupt

    slow = (*collect.SOURCES[:3], Source("raw/slow.txt", interrupted))
    monkeypatch.setattr(collect, "SOURCES", slow)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--no-probe", "-o", str(tmp_path / "r.zip")])
    assert exit_info.value.code == 130 and "interrupted" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_broken_source_is_a_note_not_a_failure():
    def broken(facts, timeout):
        raise ValueError("boom")

    def absent(facts, timeout):
        raise Unavailable("no such thing here")

    sources = (Source("raw/a.txt", broken), Source("raw/b.txt", absent), Source("raw/c.txt", lambda f, t: "ok\n"))
    assert collect.collect(facts(), 1.0, sources) == [
        Collected("raw/a.txt", None, "not collected: ValueError: boom"),
        Collected("raw/b.txt", None, "not collected: no such thing here"),
        Collected("raw/c.txt", "ok\n", "collected"),
    ]


def test_a_huge_source_keeps_its_tail():
    text = "old\n" + "x" * collect.MAX_CHARS + "\nnewest line\n"
    (got,) = collect.collect(facts(), 1.0, (Source("raw/big.txt", lambda f, t: text),))
    assert len(got.text) == collect.MAX_CHARS and got.text.endswith("newest line\n") and "cut" in got.note


def test_commands_keep_their_failure_output(tmp_path, monkeypatch):
    """nvidia-smi's own error text is what support needs, so a failing command's output is kept."""
    tool = tmp_path / "nvidia-smi"
    tool.write_text(
        '#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn\'t communicate with the driver"\nexit 9\n'
    )
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    text = collect.command("nvidia-smi", "-q")(facts(), 5.0)
    assert "couldn't communicate" in text and "exited with code 9" in text
    with pytest.raises(Unavailable, match="not installed"):
        collect.command("no-such-tool-here")(facts(), 5.0)


def test_daemon_json_is_the_one_the_facts_located(tmp_path):
    config = tmp_path / "daemon.json"
    config.write_text('{"data-root": "/data/docker"}')
    located = facts(docker=docker(config=DaemonConfig(path=str(config), found=True)))
    assert collect.daemon_json(located, 1.0) == '{"data-root": "/data/docker"}'
    with pytest.raises(Unavailable, match="does not exist"):
        collect.daemon_json(facts(docker=docker(config=DaemonConfig(path="/x", found=False))), 1.0)
    with pytest.raises(Unavailable, match="no daemon on this host"):
        collect.daemon_json(facts(docker=docker(config=None, endpoint=Endpoint(url="tcp://h:2376"))), 1.0)


def test_environment_is_allowlisted(monkeypatch):
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "all")
    monkeypatch.setenv("MY_APP_DB_URL", "postgres://u:p@db/x")
    text = collect.environment(facts(), 1.0)
    assert "NVIDIA_VISIBLE_DEVICES=all" in text and "MY_APP_DB_URL" not in text
    assert "other variables left out" in text


def rewrite(path: Path, target: Path, drop: str = "", **manifest_changes) -> Path:
    """A copy of the bundle at `path` without member `drop`, its manifest changed."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
        for name in source.namelist():
            if name == drop:
                continue
            data = source.read(name)
            if name == "manifest.json":
                data = json.dumps(json.loads(data) | manifest_changes).encode()
            copy.writestr(name, data)
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "report.json"}, "is a zip but not an mldoctor bundle (no report.json in it)"),
        (
            {"bundle_format": 99, "mldoctor_version": "9.0"},
            "is a bundle of format 99 (mldoctor 9.0); this mldoctor reads",
        ),
    ],
)
def test_bundles_it_cannot_read_are_refused_in_one_line(bundle, tmp_path, capsys, change, message):
    path, _, _ = bundle
    other = rewrite(path, tmp_path / "other.zip", **change)
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--facts", str(other)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_truncated_bundle_is_refused_in_one_line(bundle, tmp_path, capsys):
    path, _, _ = bundle
    broken = tmp_path / "broken.zip"
    broken.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--facts", str(broken)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--facts" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "-o", "/nonexistent/dir/b.zip"], "directory /nonexistent/dir does not exist"),
        (["report", "--no-redact", "--redact-hosts"], "--no-redact turns redaction off"),
    ],
)
def test_bad_report_options_are_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


ATTACK = {
    "mirror_token": "m1rr0r" + "T0k3nValue",
    "tcp_password": "tcp-" + "Pa55word",
    "info_proxy": "pr0xy-" + "Secret",
    "pip_token": "0123456789abcdef" + "fedcba9876543210abcd",
    "stderr_flag": "cli-" + "flagSecret",
    "docker_pass": "d0cker-" + "PassValue",
    "yaml": "correct horse " + "battery staple",
    "endpoint": "endp0int-" + "Pa55",
}


def attack_raw_files() -> list[Collected]:
    """Secrets where careless users and real tools put them, one per raw source."""
    return [
        Collected(
            "raw/daemon.json",
            json.dumps(
                {
                    "registry-mirrors": [f"https://{ATTACK['mirror_token']}@mirror.example.com"],
                    "hosts": ["unix:///var/run/docker.sock", f"tcp://admin:{ATTACK['tcp_password']}@0.0.0.0:2376"],
                }
            ),
            "collected",
        ),
        Collected(
            "raw/docker-info.json",
            json.dumps(
                {
                    "Name": HOSTNAME,
                    "HTTPProxy": f"http://{USER}:{ATTACK['info_proxy']}@proxy.example.com:3128",
                    "RegistryConfig": {"Mirrors": [f"https://{ATTACK['mirror_token']}@mirror.example.com/"]},
                    "ServerVersion": "24.0.7",
                    "ID": "a1b2c3d4-9b2d-4e61-8c0a-000000000009",
                }
            ),
            "collected",
        ),
        Collected("raw/pip-freeze.txt", f"x @ git+https://{ATTACK['pip_token']}@github.com/acme/x.git\n", "collected"),
        Collected(
            "raw/probe-stderr.txt",
            f"$ huggingface-cli login --token {ATTACK['stderr_flag']}\n{{'password': '{ATTACK['yaml']}'}}\n",
            "collected",
        ),
        Collected("raw/environment.txt", f"DOCKER_PASS={ATTACK['docker_pass']}\n", "collected"),
        Collected("raw/cdi-specs.yaml", f"--- # /etc/cdi/x.yaml\npassword: {ATTACK['yaml']}\n", "collected"),
    ]


def test_no_secret_of_the_attack_paths_reaches_any_file_or_name(tmp_path):
    """Every unpacked file, every member name and the zip's own name are grepped for every planted secret."""
    gathered = gpu_facts()
    gathered = replace(
        gathered,
        docker=replace(gathered.docker, endpoint=Endpoint(url=f"tcp://ops:{ATTACK['endpoint']}@10.1.2.3:2376")),
        probe=replace(
            gathered.probe,
            run=replace(gathered.probe.run, error=f"docker login -p {ATTACK['docker_pass']} failed"),
        ),
    )
    report = build_report(select(), gathered, Policy())
    redactor = for_facts(report.facts, {}, hosts=True, gpu_ids=True)
    path = tmp_path / archive.default_name(redactor.scrub(report.host), report.created)
    write_bundle(str(path), report, attack_raw_files(), redactor)
    assert os.listdir(tmp_path) == [path.name] and "host1" in path.name
    for name, data in unpack(path).items():
        text = data.decode()
        for kind, secret in ATTACK.items():
            assert secret not in text and secret not in name and secret not in path.name, f"{kind} in {name}"
        for identifying in (HOSTNAME, "gpu-node-07", "10.1.2.3", HOST_IP):
            assert identifying not in text, f"{identifying} in {name}"
    files = {name: data.decode() for name, data in unpack(path).items()}
    info = json.loads(files["raw/docker-info.json"])
    assert info["ServerVersion"] == "24.0.7" and info["ID"] == "a1b2c3d4-9b2d-4e61-8c0a-000000000009"
    assert info["Name"] == "host1" and info["HTTPProxy"].startswith("http://user1:[REDACTED:url-password]@")


def test_the_file_name_carries_the_pseudonym_and_the_bundle_still_rediagnoses(tmp_path, capsys):
    from mldoctor.bundle.command import _target

    report = gpu_report()
    redactor = for_facts(report.facts, {}, hosts=True, gpu_ids=True)
    path = _target(str(tmp_path), report, redactor)
    assert os.path.basename(path).startswith("mldoctor-report-host1-") and "gpu-node" not in path
    write_bundle(path, report, raw_files(), redactor)
    with pytest.raises(SystemExit):
        main(["check", "--facts", path, "--format", "json"])
    again = json.loads(capsys.readouterr().out)
    judged = [(r["id"], r["status"]) for r in again["results"] if r["area"] != "report"]  # + report.integrity
    assert judged == [(r.id, r.status.value) for r in report.results]


def test_sigterm_while_writing_leaves_no_archive_and_no_temp_file(tmp_path, monkeypatch):
    original = zipfile.ZipFile.writestr

    def terminated(self, entry, data, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(self, entry, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", terminated)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(interrupts.Terminated):
        write_bundle(str(tmp_path / "b.zip"), gpu_report(), raw_files(), Redactor())
    assert os.listdir(tmp_path) == [] and signal.getsignal(signal.SIGTERM) is previous


def test_the_archive_and_its_members_are_private(bundle):
    path, _, _ = bundle
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with zipfile.ZipFile(path) as archive_file:
        assert {info.external_attr >> 16 for info in archive_file.infolist()} == {0o600}


def test_a_fifo_where_a_file_should_be_does_not_hang_collection(tmp_path):
    fifo = tmp_path / "nvidia.yaml"
    os.mkfifo(fifo)
    assert collect.read_tail(str(fifo)) is None
    with pytest.raises(Unavailable, match="not readable"):
        collect.file(str(fifo))(facts(), 1.0)


def test_a_command_that_floods_is_capped_and_one_that_hangs_is_killed_with_its_children(tmp_path):
    flood = collect.run_keeping_tail(["sh", "-c", "yes line | head -c 5000000; echo; echo last"], 10.0, limit=1000)
    assert flood.ok and len(flood.stdout) <= 1000 and flood.stdout.endswith("last")
    marker = tmp_path / "child-alive"
    started = time.monotonic()
    hung = collect.run_keeping_tail(["sh", "-c", f"(sleep 3; touch {marker}) & sleep 30"], 0.5)
    assert hung.error and "no answer within 0.5 s" in hung.error and time.monotonic() - started < 5
    time.sleep(3.5)
    assert not marker.exists()  # the grandchild holding the pipe went with it


IMAGE_SECRETS = {
    "ngc": "nvapi-" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz0_Ab3dEf6hIj9lMn2pQr5tUv8xYz0Ab3d",
    "anthropic": "sk-ant-api03-" + "Zy9xWv8uTs7rQp6oNm5lKj4iHg3fEd2cBa1",
    "wandb": "9f8e7d6c5b4a" + "39281706f5e4d3c2b1a0" + "1a2b3c4d",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "gcp_key_id": "1b2c3d4e5f60718293a4" + "b5c6d7e8f90a1b2c3d4e",
}


def test_secrets_an_image_prints_or_declares_reach_no_member(tmp_path, monkeypatch):
    """An image's environment, the probe's stdout and stderr and mldoctor's own allowlisted environment, collected
    by the real sources: NGC, Anthropic, W&B, Stripe and service-account keys reach no file of the bundle."""
    gathered = gpu_facts()
    probe = gathered.probe
    run = replace(
        probe.run,
        image_env={"NVIDIA_BUILD_ID": "1234", "NVIDIA_PRODUCT_NAME": f"PyTorch {IMAGE_SECRETS['ngc']}"},
        stderr_tail=f"ngc: using {IMAGE_SECRETS['ngc']}\nanthropic client {IMAGE_SECRETS['anthropic']}\n"
        f"$ wandb login {IMAGE_SECRETS['wandb']}\n",
        stdout_head=f'banner {{"private_key_id": "{IMAGE_SECRETS["gcp_key_id"]}"}} stripe {IMAGE_SECRETS["stripe"]}',
    )
    document = replace(
        probe.document,
        env={**probe.document.env, "LD_LIBRARY_PATH": f"/opt/{IMAGE_SECRETS['stripe']}/lib"},
        errors=[f"torch: wandb login {IMAGE_SECRETS['wandb']} failed"],
    )
    gathered = replace(gathered, probe=replace(probe, run=run, document=document))
    monkeypatch.setenv("NVIDIA_NGC_CLI_ORG", f"org {IMAGE_SECRETS['ngc']}")
    sources = tuple(s for s in collect.SOURCES if s.name in ("raw/probe-stdout.json", "raw/probe-stderr.txt"))
    sources += tuple(s for s in collect.SOURCES if s.name == "raw/environment.txt")
    collected = collect.collect(gathered, 5.0, sources)
    assert [c.note for c in collected] == ["collected"] * 3
    report = build_report(select(), gathered, Policy())
    path = tmp_path / "bundle.zip"
    write_bundle(str(path), report, collected, for_facts(report.facts, {}))
    files = unpack(path)
    assert {"raw/probe-stdout.json", "raw/probe-stderr.txt", "raw/environment.txt"} <= set(files)
    for name, data in files.items():
        for kind, secret in IMAGE_SECRETS.items():
            assert secret.encode() not in data, f"{kind} in {name}"
    assert b"[REDACTED:ngc-api-key]" in files["raw/probe-stderr.txt"]
    assert b"[REDACTED:ngc-api-key]" in files["raw/environment.txt"]


def test_a_variable_that_is_not_utf8_costs_one_character_not_the_bundle(tmp_path, monkeypatch, capsys):
    """`LD_LIBRARY_PATH=$'\\xff'` made `report` crash with UnicodeEncodeError and write nothing; a long value
    stays whole."""
    long_value = "/opt/\udcff/lib:" + ":".join(f"/opt/pkg{i}/lib" for i in range(20_000))
    monkeypatch.setenv("LD_LIBRARY_PATH", long_value)
    monkeypatch.setenv("CUDA_\udcfeHOME", "/usr/local/cuda")
    monkeypatch.setattr(collect, "SOURCES", tuple(s for s in collect.SOURCES if s.name == "raw/environment.txt"))
    target = tmp_path / "r.zip"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--no-probe", "-o", str(target)])
    err = capsys.readouterr().err
    files = unpack(target)
    statuses = {r["status"] for r in json.loads(files["report.json"])["results"]}
    assert exit_info.value.code == (1 if "FAIL" in statuses else 0), err
    environment = files["raw/environment.txt"].decode("utf-8")
    assert "LD_LIBRARY_PATH=" + long_value.replace("\udcff", "\ufffd") + "\n" in environment
    assert "CUDA_\ufffdHOME=/usr/local/cuda\n" in environment


def test_a_lone_surrogate_from_any_collector_is_written_as_a_replacement_character(tmp_path):
    path = tmp_path / "b.zip"
    write_bundle(str(path), gpu_report(), [Collected("raw/odd.txt", "a\ud800b\udcffc\n", "collected")], Redactor())
    assert unpack(path)["raw/odd.txt"].decode("utf-8") == "a\ufffdb\ufffdc\n"


def no_checks(monkeypatch) -> list[str]:
    """Make running the checks record that it happened (and fail): output paths are judged before any check."""
    from mldoctor import runner

    ran: list[str] = []

    def run(*args, **kwargs):
        ran.append("run")
        raise AssertionError("the checks ran before -o was judged")

    monkeypatch.setattr(runner, "run", run)
    return ran


@pytest.mark.parametrize("suffix", ["newdir/", "a/b/"])
def test_an_output_directory_that_does_not_exist_is_refused_before_any_check(tmp_path, monkeypatch, capsys, suffix):
    ran = no_checks(monkeypatch)
    target = f"{tmp_path}/{suffix}"
    code, _, err = call(capsys, "report", "--no-probe", "-o", target)
    assert code == 2 and f"directory {target} does not exist" in err and len(err.strip().splitlines()) == 1, err
    assert ran == [] and os.listdir(tmp_path) == []


def test_an_output_that_is_not_a_regular_file_is_refused_before_any_check(tmp_path, monkeypatch, capsys):
    ran = no_checks(monkeypatch)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = call(capsys, "report", "--no-probe", "-o", str(fifo))
    assert code == 2 and "is not a regular file" in err and len(err.strip().splitlines()) == 1, err
    assert ran == [] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_the_archive_writer_never_replaces_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="not a regular file"):
        write_bundle(str(fifo), gpu_report(), raw_files(), Redactor())
    assert stat.S_ISFIFO(fifo.stat().st_mode) and os.listdir(tmp_path) == ["pipe"]


def test_runs_started_in_the_same_second_get_their_own_names(tmp_path):
    from mldoctor.bundle.command import _target

    report = gpu_report()
    redactor = for_facts(report.facts, {}, hosts=True)
    names = {os.path.basename(_target(str(tmp_path), report, redactor)) for _ in range(50)}
    stamp = archive.default_name("host1", report.created).removesuffix(".zip")
    assert len(names) == 50 and all(re.fullmatch(re.escape(stamp) + r"-[0-9a-f]{8}\.zip", n) for n in names), names


def test_a_bundle_is_private_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        write_bundle(str(tmp_path / "b.zip"), gpu_report(), raw_files(), Redactor())
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "b.zip").stat().st_mode) == 0o600


def image_packages(gathered):
    (source,) = (s for s in collect.SOURCES if s.name == "raw/image-packages.txt")
    return collect.collect(gathered, 5.0, (source,))[0]


def test_the_images_packages_are_their_own_member_beside_mldoctors(tmp_path):
    """raw/pip-freeze.txt is mldoctor's environment; the image that trains has its own list, from the probe."""
    gathered = gpu_facts()
    collected = image_packages(gathered)
    assert collected.note == "collected"
    assert collected.text == (
        "# Python distributions in the image mldoctor-probe:0.1.0: python 3.10.12 at /usr/bin/python3\n"
        "api-key-tool==1.0\ngoogle-auth==2.35.0\nJinja2==3.1.4\nnumpy==1.26.4\nnvidia-nccl-cu12==2.20.5\n"
        "torch==2.4.1+cu124\n"
    )
    report = build_report(select(), gathered, Policy())
    path = tmp_path / "bundle.zip"
    manifest = write_bundle(str(path), report, [collected, *raw_files()], for_facts(report.facts, {}))
    files = unpack(path)
    assert files["raw/image-packages.txt"].decode() == collected.text
    assert manifest["raw"]["raw/image-packages.txt"] == "collected"
    assert files["raw/pip-freeze.txt"].decode().startswith("torch==2.4.1")  # raw_files()'s stand-in, unchanged
    packages = json.loads(files["report.json"])["facts"]["probe"]["document"]["packages"]
    assert ["google-auth", "2.35.0"] in packages and ["api-key-tool", "1.0"] in packages  # a name, not a secret's
    assert manifest["redaction"]["replaced"]["secret-value"] == 1  # daemon.json's registry-password, nothing more


def test_image_packages_from_the_host_and_past_the_bound():
    gathered = gpu_facts()
    probe = gathered.probe
    document = replace(probe.document, packages=[("torch", "2.13.0+cpu")], packages_omitted=12)
    gathered.probe = replace(probe, run=replace(probe.run, mode="host", image=None), document=document)
    assert image_packages(gathered).text == (
        "# Python distributions in the host (--no-container): python 3.10.12 at /usr/bin/python3\n"
        "# 12 more not listed (past the probe's bound, or unreadable metadata)\n"
        "torch==2.13.0+cpu\n"
    )


def test_image_package_names_are_one_printable_line_each():
    gathered = gpu_facts()
    hostile = [("evil\nroot==0", "1.0\r\x1b[31mred"), ("nul\x00", "2")]
    gathered.probe.document = replace(gathered.probe.document, packages=hostile)
    lines = image_packages(gathered).text.splitlines()
    assert lines[1:] == ["evil\\nroot==0==1.0\\rred", "nul\\x00==2"]


@pytest.mark.parametrize(
    ("change", "note"),
    [
        (lambda f: replace(f, probe=None), "not collected: the probe did not run (--no-probe)"),
        (
            lambda f: replace(f, probe=replace(f.probe, document=None, run=replace(f.probe.run, stage="wait"))),
            "not collected: the probe printed no document (stopped at wait: None)",
        ),
        (
            lambda f: replace(f, probe=replace(f.probe, document=replace(f.probe.document, packages=None))),
            "not collected: the probe did not list the packages (an older probe, or listing failed: see its errors)",
        ),
    ],
)
def test_image_packages_say_why_they_are_missing(change, note):
    collected = image_packages(change(gpu_facts()))
    assert (collected.text, collected.note) == (None, note)


def test_report_md_carries_the_environment_block_redacted(bundle):
    path, _, _ = bundle
    text = unpack(path)["report.md"].decode()
    block = text.split("### Environment\n\n```text\n", 1)[1]
    assert (
        "PyTorch:                    2.4.1+cu124\n" in block and "GPU models:                 8 x NVIDIA H100" in block
    )
    assert "cuDNN:                      9.1.0\n" in block and "NVIDIA driver:              550.90.07\n" in block
    assert HOSTNAME not in text and "on `host1`" in text
