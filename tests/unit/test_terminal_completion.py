"""Shell completion through click's real protocol, as bash, zsh and fish call it: `_MLDOCTOR_COMPLETE` and the
words typed so far in the environment, the candidates on stdout (see docs/completion.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mldoctor.model import AREAS
from mldoctor.rules import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "pynvml", "torch", "requests", "psutil")


def complete(line: str, shell: str = "bash", *program: str) -> subprocess.CompletedProcess[str]:
    """What the shell gets for `line` (a trailing space means: a new word is being started). bash and zsh pass
    the index of the word being completed, fish passes that word itself."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    if shell == "fish":
        cword = "" if line.endswith(" ") else words[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("_MLDOCTOR")}
    env.update(_MLDOCTOR_COMPLETE=f"{shell}_complete", COMP_WORDS=line, COMP_CWORD=str(cword), PYTHONPATH=str(ROOT))
    argv = list(program) or ["-m", "mldoctor"]
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60)


def bash(line: str) -> list[str]:
    proc = complete(line)
    assert proc.returncode == 0, proc.stderr
    kinds_values = [row.split(",", 1) for row in proc.stdout.splitlines() if row]  # none: one empty line
    assert {kind for kind, _ in kinds_values} <= {"plain"}
    return [value for _, value in kinds_values]


def test_only_completes_areas_and_check_ids():
    expected = [name for name in [*AREAS, *REGISTRY] if name.startswith("doc")]
    assert bash("mldoctor check --only doc") == expected
    assert "docker.daemon" in expected and "docker" in expected


def test_skip_completes_the_last_item_of_a_comma_list_and_leaves_out_those_given():
    assert bash("mldoctor check --skip docker.disk,n") == [
        f"docker.disk,{name}" for name in [*AREAS, *REGISTRY] if name.startswith("n")
    ]
    assert bash("mldoctor check --skip docker.disk,docker.di") == []


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("mldoctor check --gpus ", ["auto", "all", "none"]),
        ("mldoctor gpu-bench --gpus a", ["auto", "all"]),
        ("mldoctor check --format ", ["table", "json"]),
        ("mldoctor check -f j", ["json"]),
        ("mldoctor gpu-bench --format t", ["table"]),
    ],
)
def test_values_of_gpus_and_format(line, values):
    assert bash(line) == values


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_get_each_check_with_its_title(shell):
    proc = complete("mldoctor check --only docker.dae", shell)
    assert proc.returncode == 0, proc.stderr
    assert "docker.daemon" in proc.stdout and REGISTRY["docker.daemon"].title in proc.stdout
    assert not [check_id for check_id in REGISTRY if check_id != "docker.daemon" and check_id in proc.stdout]


def test_completion_imports_neither_docker_nor_pynvml_nor_torch():
    report_modules = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(' '.join(sorted(sys.modules)), file=sys.stderr))\n"
        "from mldoctor.cli import main\n"
        "main()\n"
    )
    proc = complete("mldoctor check --only ", "bash", "-c", report_modules)
    assert proc.returncode == 0 and "plain,nvidia.gpu" in proc.stdout.splitlines()
    imported = set(proc.stderr.split())
    assert {"mldoctor.rules.docker", "mldoctor.rules.bench"} <= imported  # the registry was loaded: not vacuous
    assert not [name for name in imported if name.split(".")[0] in HEAVY]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_scripts_in_docs_completion_are_what_click_generates(shell):
    env = {**os.environ, "_MLDOCTOR_COMPLETE": f"{shell}_source", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mldoctor"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "_MLDOCTOR_COMPLETE" in proc.stdout
    docs = (ROOT / "docs" / "completion.md").read_text()
    assert f"_MLDOCTOR_COMPLETE={shell}_source mldoctor" in docs
