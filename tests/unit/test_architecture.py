"""The architecture, enforced: no import circles in the package, and rules (with the fix builders they call) that
touch neither the environment, files, processes nor the clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from factories import facts
from purity import ImpureRule, pure

import mldoctor
from mldoctor import runner
from mldoctor.model import Finding
from mldoctor.policy import Policy
from mldoctor.rules.registry import Check

PACKAGE = Path(mldoctor.__file__).parent
PURE = ["rules", "fixes"]
"""Packages whose modules must be pure: the rules, and the fix builders they call."""
IMPURE_MODULES = {"os", "sys", "time", "datetime", "pathlib", "subprocess", "socket", "platform", "shutil", "glob",
                  "tempfile", "io", "random", "uuid", "getpass", "pwd", "grp", "psutil", "docker", "pynvml", "torch",
                  "requests", "ctypes", "threading", "signal", "resource"}  # fmt: skip
IMPURE_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str) -> set[str]:
    """The package modules `name` imports, anywhere in it (lazy imports in functions too), except imports made
    for type checking only."""
    tree = ast.parse(MODULES[name].read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def test_the_package_has_no_import_circles():
    graph = {name: imports_of(name) for name in MODULES}
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_the_circle_finder_finds_a_circle(monkeypatch):
    """The test above can fail: a made-up pair importing each other is a circle."""
    import tests.unit.test_architecture as me

    monkeypatch.setattr(me, "imports_of", lambda name: {"b"} if name == "a" else {"a"} if name == "b" else set())
    monkeypatch.setattr(me, "MODULES", {"a": None, "b": None})
    with pytest.raises(AssertionError):
        me.test_the_package_has_no_import_circles()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[1:2] and n.split(".")[1] in PURE))
def test_rule_and_fix_modules_import_nothing_that_reads_the_world(name):
    tree = ast.parse(MODULES[name].read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert imported & IMPURE_MODULES == set()
    assert called & IMPURE_CALLS == set()
    gatherers = [
        f"{n.module}.{a.name}"
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mldoctor.facts")
        for a in n.names
        if a.name[0].islower() and a.name not in {"facts"}
    ]
    assert gatherers == [], "rules read facts; they never call the functions that gather them"


@pytest.mark.parametrize(
    "body",
    [
        lambda: __import__("os").environ.get("HOME"),
        lambda: open("/etc/os-release").close(),
        lambda: __import__("time").time(),
        lambda: __import__("os").listdir("/proc"),
    ],
    ids=["environment", "file", "clock", "directory"],
)
def test_the_purity_guard_catches_a_rule_that_reads_the_world(body):
    """The guard every rule test runs under really refuses; crash isolation does not hide it."""

    def impure_rule(facts, policy):
        body()
        return Finding.ok("read the world")

    with pytest.raises(ImpureRule):
        runner._evaluate_one(Check("host.impure", "impure", impure_rule), facts(), Policy())


def test_package_data_is_allowed_under_the_guard():
    from mldoctor.data import gpus

    gpus._table.cache_clear()
    with pure():
        assert gpus.min_driver_for_cuda("12.4") == 550


def test_a_module_imported_where_it_is_needed_is_allowed_but_reading_its_file_is_not():
    """A rule may import `statistics` lazily (the import system reads it: that is the program); it may not open it."""
    sys.modules.pop("colorsys", None)
    with pure():
        import colorsys

        assert colorsys.rgb_to_hsv(1, 0, 0) == (0, 1, 1)
        with pytest.raises(ImpureRule):
            open(colorsys.__file__).close()
