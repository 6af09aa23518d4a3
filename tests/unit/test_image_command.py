"""`mldoctor image check` end to end without a daemon: archives, exit codes, one-line errors, and every renderer
showing the image rows."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from image_archives import config, docker_save, layer, torch_image_layers

from mldoctor import output
from mldoctor.image import report
from mldoctor.image.archive import read_archive
from mldoctor.image.checks import judge
from mldoctor.image.command import check
from mldoctor.image.targets import from_values
from mldoctor.model import AREAS
from mldoctor.policy import Policy

NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock", "GITHUB_ACTIONS": "false"}


@pytest.fixture(autouse=True)
def image_area(monkeypatch):
    """`image` listed in AREAS for the test only (the command adds it at run time until model.py lists it)."""
    monkeypatch.setitem(AREAS, "image", "Image")


def run(*args: str):
    return CliRunner().invoke(check, ["--no-host", *args], env=NO_DAEMON)


@pytest.fixture
def broken(tmp_path):
    cfg = config(env=["PATH=/usr/bin", "CUDA_VISIBLE_DEVICES=all", "NVIDIA_REQUIRE_CUDA=cuda>=13.0"], user="app")
    return str(docker_save(tmp_path / "broken.tar", cfg, torch_image_layers()))


@pytest.fixture
def clean(tmp_path):
    python = layer({"usr/bin/python3": ("link", "python3.11")})
    return str(docker_save(tmp_path / "clean.tar", config(user="app"), [python]))


def test_a_tarball_with_no_daemon_fails_with_every_cause(broken):
    result = run(broken, "--driver", "550.90", "--gpu", "H100", "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    statuses = {r["id"]: r["status"] for r in data["results"]}
    assert statuses["image.cuda"] == statuses["image.driver_libs"] == statuses["image.visible_devices"] == "FAIL"
    assert "580" in next(r["fix"] for r in data["results"] if r["id"] == "image.cuda")
    assert data["facts"]["image"]["source"] == "docker-save" and data["facts"]["targets"]["driver_cuda"] == "12.4"


def test_exit_codes_clean_strict_and_from_tar(clean):
    assert run(clean).exit_code == 0
    assert run("--from-tar", clean, "--strict").exit_code == 1  # no torch: a WARN
    assert "image.torch" in run(clean).stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "give an IMAGE"),
        (("x.tar", "--driver", "banana"), "not an NVIDIA driver version"),
        (("--from-tar", "/nonexistent.tar"), "cannot read /nonexistent.tar"),
        (("--dockerfile", "/nonexistent/Dockerfile"), "cannot read the Dockerfile"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words):
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and words in result.stderr and result.stderr.startswith("mldoctor: error:")


def test_no_daemon_for_an_image_name_is_exit_3_naming_the_way_out():
    result = run("some/image:1", "--timeout", "1")
    assert result.exit_code == 3 and "--from-tar" in result.stderr and result.stderr.count("\n") == 1


def test_a_dockerfile_alone_and_the_ci_files(tmp_path, broken):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM nvidia/cuda:13.0.0-base-ubuntu24.04\nUSER app\n")
    junit, markdown = tmp_path / "r.xml", tmp_path / "r.md"
    result = run("--dockerfile", str(dockerfile), "--driver", "550", "--junit", str(junit), "--markdown", str(markdown))
    assert result.exit_code == 1 and "image.dockerfile.MLD001" in result.stdout
    assert 'name="image.dockerfile.MLD001"' in junit.read_text() and "MLD001" in markdown.read_text()


def test_every_renderer_shows_the_image_rows(broken):
    facts = read_archive(broken)
    targets = from_values("550.90", [], "flags")
    built = report.build(judge(facts, targets), facts, targets, Policy())
    for name in ("table", "json", "junit", "markdown", "github", "prometheus"):
        assert "image.visible_devices" in output.render(name, built), name


def test_the_grouped_renderers_never_drop_rows_of_an_area_they_do_not_list(monkeypatch, broken):
    """Grouping by model.AREAS must not lose a row: an unknown area (a newer report's) comes last, by its name."""
    facts = read_archive(broken)
    targets = from_values("550.90", [], "flags")
    built = report.build(judge(facts, targets), facts, targets, Policy())
    monkeypatch.delitem(AREAS, "image")
    for name in ("table", "junit", "markdown"):
        assert "image.visible_devices" in output.render(name, built), name


def test_in_a_group_run_like_the_cli_the_exit_code_comes_back(broken):
    """cli.py's main runs with standalone_mode=False: the command's ctx.exit code must reach it."""
    import click

    group = click.Group("image")
    group.add_command(check)
    args = ["check", "--no-host", broken, "--driver", "550.90", "-o", "/dev/null"]
    assert group.main(args=args, standalone_mode=False) == 1
    assert group.main(args=["check", "--no-host", "--driver", "x"], standalone_mode=False) == 2


def test_targets_from_the_policy_file(tmp_path, monkeypatch):
    """A CI builder with no GPU and no flags: the fleet's driver floor and GPU models come from mldoctor.toml."""
    policy = tmp_path / "mldoctor.toml"
    policy.write_text('min_driver_version = "550.54"\nrequire_gpu_models = ["RTX 5090"]\n')
    archive = docker_save(tmp_path / "i.tar", config(user="app"), torch_image_layers())
    result = run(str(archive), "--config", str(policy), "--format", "json")
    data = json.loads(result.stdout)
    assert data["facts"]["targets"]["source"] == "policy" and data["facts"]["targets"]["driver_cuda"] == "12.4"
    arch = next(r for r in data["results"] if r["id"] == "image.arch")
    assert arch["status"] == "FAIL" and "sm_120" in arch["summary"]
    bad = tmp_path / "bad.toml"
    bad.write_text("min_driver_versoin = 1\n")
    failed = run(str(archive), "--config", str(bad))
    assert failed.exit_code == 2 and failed.stderr.count("\n") == 1 and "min_driver_versoin" in failed.stderr
