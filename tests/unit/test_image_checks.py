"""The image checks from facts: each status of each image.* check, run under the purity guard, and every WARN and
FAIL with a fix. Facts are built by hand here; tests/integration/test_image_check.py reads them from real images."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from purity import pure

import mldoctor
from mldoctor.image import checks
from mldoctor.image.facts import ImageFacts, Layer, TorchFacts
from mldoctor.image.targets import Targets, cuda_for_driver, from_values
from mldoctor.model import Status

PACKAGE = Path(mldoctor.__file__).parent
NO_TARGETS = Targets()
H100_550 = from_values("550.90", ["H100"], "flags")


def image(**changes) -> ImageFacts:
    """A healthy image: Python 3.11, torch 2.5.1+cu124, a non-root user, nothing baked in."""
    base = ImageFacts(
        ref="train:1",
        user="app",
        env={"PATH": "/usr/local/bin:/usr/bin", "NVIDIA_REQUIRE_CUDA": "cuda>=12.4", "CUDA_VERSION": "12.4.1"},
        files_read=True,
        python=["/usr/bin/python3 -> python3.11"],
        python_version="3.11",
        torch=TorchFacts(path="/usr/local/lib/python3.11/dist-packages/torch/version.py", version="2.5.1+cu124",
                         cuda="12.4"),
        size=5 << 30,
        layers=[Layer("", 100 << 20, tags=["nvidia/cuda:12.4.1-runtime-ubuntu22.04"]), Layer("RUN pip install x", 1)],
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def judged(facts: ImageFacts, targets: Targets = H100_550) -> dict[str, object]:
    """id -> result, judged as the command judges (purely); every WARN/FAIL must carry a fix."""
    with pure():
        results = checks.judge(facts, targets)
    for result in results:
        if result.status in (Status.WARN, Status.FAIL):
            assert result.fix and result.fix.strip(), f"{result.id} {result.status.value} without a fix"
        assert result.status is not Status.ERROR, result.summary
    return {r.id: r for r in results}


def test_a_healthy_image_passes_everything_against_an_h100_fleet_on_550():
    results = judged(image())
    assert {k: r.status for k, r in results.items() if r.status is not Status.PASS} == {}
    assert "CUDA build: 12.4" in results["image.torch"].summary


def test_every_check_has_a_docs_section():
    text = (PACKAGE.parent / "docs" / "checks.md").read_text()
    for check in checks.CHECKS:
        assert f"### `{check.id}`" in text, check.id
    assert "### `image.dockerfile`" in text


def test_the_check_modules_import_nothing_that_reads_the_world():
    """The architecture test's rule for mldoctor/rules, applied to the image's pure modules."""
    from test_architecture import IMPURE_CALLS, IMPURE_MODULES

    for name in ("checks.py", "dockerfile.py", "data.py"):
        tree = ast.parse((PACKAGE / "image" / name).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert imported & IMPURE_MODULES == set(), name
        assert called & IMPURE_CALLS == set(), name


# image.cuda


def test_a_cuda_requirement_above_the_driver_fails_naming_the_branch_needed():
    result = judged(image(env={"NVIDIA_REQUIRE_CUDA": "cuda>=13.0 brand=tesla,driver>=535"}))["image.cuda"]
    assert result.status is Status.FAIL
    assert "CUDA >= 13.0" in result.summary and "12.4" in result.summary
    assert "580" in result.fix


def test_cuda_version_alone_is_the_requirement_and_no_driver_skips():
    assert judged(image(env={"CUDA_VERSION": "12.8.1"}))["image.cuda"].fix.startswith(
        "upgrade the NVIDIA driver to 570"
    )
    result = judged(image(env={"CUDA_VERSION": "12.8.1"}), NO_TARGETS)["image.cuda"]
    assert result.status is Status.SKIP and "--driver" in result.summary
    assert judged(image(env={}))["image.cuda"].status is Status.PASS


def test_driver_branch_to_cuda():
    assert cuda_for_driver("550.90.07") == "12.4"
    assert cuda_for_driver("570") == "12.8"
    assert cuda_for_driver("580.65") == "13.0"
    assert cuda_for_driver("384") == ""


# image.torch


def test_a_cpu_torch_says_cuda_build_none():
    cpu = image(torch=TorchFacts(path="/x/torch/version.py", version="2.13.0+cpu", cuda=None))
    assert judged(cpu, NO_TARGETS)["image.torch"].status is Status.WARN
    result = judged(cpu)["image.torch"]
    assert result.status is Status.FAIL and "CUDA build: none" in result.summary
    assert "whl/cu124" in result.fix


def test_a_torch_built_for_a_newer_cuda_than_the_driver_fails():
    newer = image(torch=TorchFacts(path="/x", version="2.7.1+cu128", cuda="12.8"))
    result = judged(newer)["image.torch"]
    assert result.status is Status.FAIL and "570" in result.fix and "cu124" in result.fix
    assert judged(newer, from_values("570.124", [], "flags"))["image.torch"].status is Status.PASS


def test_no_torch_is_a_warning_and_unread_files_an_error():
    assert judged(image(torch=None))["image.torch"].status is Status.WARN
    with pure():
        unread = {r.id: r for r in checks.judge(image(files_read=False, errors=["files: boom"]), H100_550)}
    assert unread["image.torch"].status is Status.ERROR and "boom" in unread["image.torch"].summary
    errors = {i for i, r in unread.items() if r.status is Status.ERROR}
    assert errors == {"image.torch", "image.arch", "image.driver_libs", "image.compat", "image.python"}
    assert unread["image.cuda"].status is Status.PASS  # judged from the config, which was read


# image.arch


def test_a_cu124_wheel_has_no_kernels_for_blackwell():
    result = judged(image(), from_values("570.1", ["RTX 5090"], "flags"))["image.arch"]
    assert result.status is Status.FAIL and "sm_120" in result.summary
    assert "cu128" in result.fix


def test_torch_2_7_cu128_lacks_volta_and_2_8_has_it():
    t27 = image(torch=TorchFacts(path="/x", version="2.7.1+cu128", cuda="12.8"))
    t28 = image(torch=TorchFacts(path="/x", version="2.8.0+cu128", cuda="12.8"))
    fleet = from_values("570.1", ["V100", "B200"], "flags")
    assert judged(t27, fleet)["image.arch"].status is Status.FAIL
    assert judged(t28, fleet)["image.arch"].status is Status.PASS


def test_a_source_build_uses_torch_cuda_arch_list_from_the_image():
    ngc = image(
        torch=TorchFacts(path="/x", version="2.6.0a0+ecf3bae40a", cuda="12.8"),
        env={"TORCH_CUDA_ARCH_LIST": "7.5 8.0 8.6 9.0+PTX"},
    )
    result = judged(ngc, from_values("570.1", ["H100", "B200"], "flags"))["image.arch"]
    assert result.status is Status.WARN and "PTX" in result.summary
    assert "TORCH_CUDA_ARCH_LIST" in " ".join(result.details)


def test_arch_skips_without_gpus_or_cuda_torch():
    assert judged(image(), from_values("550", [], "flags"))["image.arch"].status is Status.SKIP
    assert judged(image(), from_values("550", ["MysteryGPU"], "flags"))["image.arch"].status is Status.SKIP
    cpu = image(torch=TorchFacts(path="/x", version="2.5.1+cpu", cuda=None))
    assert judged(cpu)["image.arch"].status is Status.SKIP


# image.driver_libs, image.visible_devices, image.compat


def test_baked_driver_files_fail_with_the_toolkits_error():
    baked = image(driver_files=["/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "/usr/bin/nvidia-smi"])
    result = judged(baked)["image.driver_libs"]
    assert result.status is Status.FAIL and "file exists" in result.summary
    assert "rm -f /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 /usr/bin/nvidia-smi" in result.fix


@pytest.mark.parametrize(
    ("value", "status"),
    [("all", Status.FAIL), ("0", Status.FAIL), ("1,2", Status.FAIL), ("", Status.FAIL), ("GPU-3b1c", Status.WARN)],
)
def test_baked_cuda_visible_devices(value, status):
    result = judged(image(env={"CUDA_VISIBLE_DEVICES": value}))["image.visible_devices"]
    assert result.status is status
    assert "NVIDIA_VISIBLE_DEVICES" in result.fix + " ".join(result.details)


def test_cuda_compat_fails_on_geforce_only():
    compat = image(env={"LD_LIBRARY_PATH": "/usr/local/cuda/compat:/usr/lib"}, compat_dirs=["/usr/local/cuda/compat"])
    result = judged(compat, from_values("550", ["H100", "GeForce RTX 4090"], "flags"))["image.compat"]
    assert result.status is Status.FAIL and "804" in result.summary and "RTX 4090" in result.summary
    assert judged(compat)["image.compat"].status is Status.PASS


# image.python, image.user, image.healthcheck, image.base, image.size


def test_python():
    assert judged(image(python=[], python_version=None))["image.python"].status is Status.FAIL
    assert judged(image(python_version="3.6"))["image.python"].status is Status.FAIL
    assert judged(image(python_version=None))["image.python"].status is Status.PASS


@pytest.mark.parametrize("user", ["", "root", "0", "0:0", "root:root"])
def test_root_user_warns_dl3002(user):
    result = judged(image(user=user))["image.user"]
    assert result.status is Status.WARN and "DL3002" in result.summary and "USER app" in result.fix


def test_healthcheck_for_serving_images_only():
    assert judged(image(exposed_ports=["8000/tcp"]))["image.healthcheck"].status is Status.WARN
    assert "localhost:8000" in judged(image(exposed_ports=["8000/tcp"]))["image.healthcheck"].fix
    served = image(exposed_ports=["8000/tcp"], healthcheck=["CMD", "curl", "-f", "http://localhost:8000"])
    assert judged(served)["image.healthcheck"].status is Status.PASS
    assert judged(image(exposed_ports=["80/tcp"], healthcheck=["NONE"]))["image.healthcheck"].status is Status.WARN


def test_base_image_latest_or_untagged_warns_dl3007():
    latest = image(layers=[Layer("", 10, tags=["ubuntu:latest"]), Layer("RUN x", 1)])
    assert judged(latest)["image.base"].status is Status.WARN
    assert "DL3007" in judged(latest)["image.base"].summary
    label = image(labels={"org.opencontainers.image.base.name": "docker.io/library/python"})
    assert judged(label)["image.base"].status is Status.WARN
    assert judged(image(layers=[]))["image.base"].status is Status.SKIP
    assert judged(image())["image.base"].status is Status.PASS


def test_size_names_the_largest_layers_and_the_waste():
    layers = [
        Layer("", 80 << 20),
        Layer("/bin/sh -c apt-get update && apt-get install -y python3", 300 << 20),
        Layer("/bin/sh -c pip install torch", 2 << 30),
        Layer("/bin/sh -c apt-get install -y git && rm -rf /var/lib/apt/lists/*", 50 << 20),
        Layer("/bin/sh -c pip install --no-cache-dir numpy", 40 << 20),
    ]
    result = judged(image(layers=layers, size=3 << 30))["image.size"]
    assert result.status is Status.WARN
    assert "DL3009" in result.summary and "DL3042" in result.summary
    assert result.details[0].startswith("2.0 GiB") and "300 MiB" in result.details[1]
    assert "rm -rf /var/lib/apt/lists/*" in result.fix and "--no-cache-dir" in result.fix
    assert judged(image(layers=layers, env={"PIP_NO_CACHE_DIR": "1"}))["image.size"].summary.count("DL3042") == 0


def test_untrusted_text_is_bounded_in_the_report():
    """An env value of a megabyte shows as at most a few hundred characters."""
    from mldoctor.image.facts import from_config

    facts = image()
    from_config(facts, {"Env": ["CUDA_VISIBLE_DEVICES=" + "9" * 1_000_000], "User": "x" * 10_000})
    result = judged(facts)["image.visible_devices"]
    assert len(result.summary) < 400 and len(facts.user) <= 203


def test_facts_recorded_from_the_torch_cpu_test_image_reload_and_judge():
    """tests/data/image/probe-test-cpu.json: `read_image("mldoctor-probe-test:cpu")` saved with serde."""
    import json

    from mldoctor.serde import from_data

    data = json.loads((PACKAGE.parent / "tests" / "data" / "image" / "probe-test-cpu.json").read_text())
    facts = from_data(ImageFacts, data)
    results = judged(facts, H100_550)
    assert results["image.torch"].status is Status.FAIL and "CUDA build: none" in results["image.torch"].summary
    assert results["image.python"].summary == "Python 3.11" and results["image.user"].status is Status.PASS
    assert results["image.base"].summary.startswith("FROM mldoctor-base:bookworm")


def test_hostile_config_shapes_and_control_characters():
    from mldoctor.image.facts import from_config, history_layers

    facts = ImageFacts(ref="x")
    from_config(facts, {"Env": "PATH=/bin", "Labels": ["a"], "ExposedPorts": ["80"], "User": "\x1b[2Jroot\nx"})
    assert facts.env == {} and facts.labels == {} and facts.exposed_ports == []
    assert facts.user == "?[2Jroot x"
    assert history_layers({"not": "a list"}, oldest_first=True) == []  # type: ignore[arg-type]
    assert [layer.tags for layer in history_layers([{"Tags": "ubuntu:latest", "Size": -5}], False)] == [[]]


def test_targets_come_from_flags_then_the_policy():
    from mldoctor.image.targets import check_driver, resolve
    from mldoctor.policy import Policy

    policy = Policy(min_driver_version="535.104", require_gpu_models=("A100", "L4"))
    assert resolve("550.90", [], policy, use_host=False).source == "flags"
    from_policy = resolve(None, [], policy, use_host=False)
    assert from_policy.source == "policy" and from_policy.driver_cuda == "12.2"
    assert [(g.name, g.compute_capability) for g in from_policy.gpus] == [("A100", "8.0"), ("L4", "8.9")]
    assert resolve(None, [], Policy(), use_host=False) == Targets()
    for bad in ("banana", "5", "550.90.07.1", "550; rm -rf /"):
        with pytest.raises(ValueError):
            check_driver(bad)
