from __future__ import annotations

import pytest

from mldoctor import config
from mldoctor.config import ConfigError
from mldoctor.policy import Band


def write(path, text):
    path.write_text(text)
    return str(path)


def test_no_file_means_defaults(tmp_path):
    loaded = config.load(cwd=str(tmp_path))
    assert (loaded.path, loaded.values) == (None, {})


def test_valid_file(tmp_path):
    path = write(
        tmp_path / "mldoctor.toml",
        """
strict = true
timeout = 10
require_gpus = 8
disk-fail-gib = 50
matmul = { passing = 0.9, warning = 0.8 }
expect_tflops = { bf16 = 700 }
skip = ["docker.compose"]

[probe]
image = "registry.example.com/team/train:latest"
duration = 20
gpus = "0,1"
""",
    )
    loaded = config.load(path)
    assert loaded.path == path
    assert loaded.values == {
        "strict": True,
        "timeout": 10.0,
        "require_gpus": 8,
        "disk_fail_gib": 50.0,
        "matmul": Band(0.9, 0.8),
        "expect_tflops": {"bf16": 700.0},
        "skip": ["docker.compose"],
        "probe.image": "registry.example.com/team/train:latest",
        "probe.duration": 20.0,
        "probe.gpus": "0,1",
    }


def test_found_from_a_subdirectory_and_pyproject_table(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.mldoctor]\nrequire_gpus = 2\n')
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    loaded = config.load(cwd=str(sub))
    assert loaded.path == str(tmp_path / "pyproject.toml") and loaded.values == {"require_gpus": 2}


def test_pyproject_without_our_table_is_passed_over(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    write(inner / "pyproject.toml", '[project]\nname = "y"\n')
    assert config.find(str(inner)) is None


def test_mldoctor_toml_wins_in_the_same_directory(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.mldoctor]\nrequire_gpus = 2\n")
    write(tmp_path / "mldoctor.toml", "require_gpus = 4\n")
    assert config.load(cwd=str(tmp_path)).values == {"require_gpus": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requre_gpus = 2\n", "unknown key 'requre_gpus'; did you mean 'require_gpus'?"),
        ("frobnicate = 2\n", "unknown key 'frobnicate'; known keys: "),
        ('require_gpus = "two"\n', 'require_gpus = "two" is not allowed: use a whole number'),
        ("require_gpus = -1\n", "require_gpus = -1 is not allowed: use a number >= 0"),
        ("timeout = 0\n", "timeout = 0 is not allowed: use a number >= 0.1"),
        ("strict = 1\n", "strict = 1 is not allowed: use true or false"),
        ("matmul = { passing = 0.5, warning = 0.8 }\n", "0 <= W <= P"),
        ("expect_tflops = { bf17 = 700 }\n", "DTYPE one of"),
        ('[probe]\ngpus = "some"\n', 'probe.gpus = "some" is not allowed: use auto, all, none'),
        ('skip = "docker"\n', "use a list of strings"),
        ("strict = \n", "not valid TOML"),
    ],
)
def test_each_invalid_file_names_file_key_value_and_what_is_allowed(tmp_path, text, message):
    path = write(tmp_path / "mldoctor.toml", text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_issue5_keys(tmp_path):
    path = write(
        tmp_path / "mldoctor.toml",
        """
require_gpu_models = ["H100", "H200"]
min_driver_version = "550.54"
min_cuda_version = "12.4"
matmul_by_dtype = { bf16 = { passing = 0.95, warning = 0.85 } }

[probe]
dtypes = ["bf16", "fp8"]
""",
    )
    loaded = config.load(path)
    policy = config.effective(loaded, {}, set()).policy()
    assert policy.require_gpu_models == ("H100", "H200")
    assert (policy.min_driver_version, policy.min_cuda_version) == ("550.54", "12.4")
    assert policy.matmul_band("bf16") == Band(0.95, 0.85) and policy.matmul_band("fp32") == policy.matmul_fp32
    assert loaded.values["probe.dtypes"] == ["bf16", "fp8"]
    for bad, message in [
        ('min_cuda_version = "twelve"', "a version such as"),
        ("matmul_by_dtype = { bf17 = { passing = 0.9, warning = 0.8 } }", "DTYPE one of"),
        ('[probe]\ndtypes = ["int4"]', "a list of some of"),
    ]:
        (tmp_path / "mldoctor.toml").write_text(bad + "\n")
        with pytest.raises(ConfigError, match=message):
            config.load(path)


def test_host_disk_floors_are_checked_too(tmp_path, monkeypatch, capsys):
    from helpers import call

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "mldoctor.toml", "host_disk_fail_gib = 50\nhost_disk_warn_gib = 10\n")
    code, _, err = call(capsys, "config", "show")
    assert code == 2 and "host_disk_warn_gib 10 is below host_disk_fail_gib 50" in err
