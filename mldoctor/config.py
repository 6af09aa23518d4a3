"""The policy file: thresholds and run settings from `mldoctor.toml`, or `[tool.mldoctor]` in `pyproject.toml`.

Found from the current directory upwards (the nearest directory with either wins; there `mldoctor.toml` wins
over pyproject.toml), or named with `--config FILE`. Precedence: built-in defaults < the file < command-line
flags. Every key is checked before anything runs: an unknown key, a wrong type or an impossible value names the
file, the key, what was given and what is allowed (exit 2).

    # mldoctor.toml
    strict = true
    require_gpus = 8
    disk_fail_gib = 50
    matmul = { passing = 0.9, warning = 0.8 }
    expect_tflops = { bf16 = 700 }
    skip = ["docker.compose"]

    [probe]
    image = "registry.example.com/team/train:latest"
    duration = 20

    [fleet]                       # mldoctor fleet (with min_driver_version and min_cuda_version above)
    straggler_ratio = 0.85
    allreduce_min_busbw = 40
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Any

from mldoctor.policy import Band, Policy
from mldoctor.serde import SchemaError, from_data
from mldoctor.settings import PAIRS, settings

FILE_NAMES = ("mldoctor.toml", "pyproject.toml")
TABLES = ("probe", "fleet")
"""Tables whose keys are settings of their own: [probe] for the probe, [fleet] for `mldoctor fleet`."""


class ConfigError(ValueError):
    """A policy file that cannot be used; the message names the file and the key."""


@dataclass
class Loaded:
    """The policy file as read: its path (None when there is none) and the values it sets, already checked."""

    path: str | None
    values: dict[str, Any]
    """Checked values by key name, only those the file sets."""


def find(start: str) -> tuple[str, str] | None:
    """(path, table) of the nearest policy file above `start`; table is '' or 'tool.mldoctor'."""
    directory = os.path.abspath(start)
    while True:
        for name in FILE_NAMES:
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            if name == "mldoctor.toml":
                return path, ""
            if "[tool.mldoctor" in _read(path):
                return path, "tool.mldoctor"
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None


def _toml(text: str, path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load(path: str | None = None, cwd: str = ".") -> Loaded:
    """The given file, else the nearest one found from `cwd` upwards, else no file (defaults only)."""
    if path is None:
        found = find(cwd)
        if found is None:
            return Loaded(None, {})
        path, table = found
    else:
        table = "tool.mldoctor" if os.path.basename(path) == "pyproject.toml" else ""
    data = _toml(_read(path), path)
    for part in filter(None, table.split(".")):
        data = data.get(part, {})
    return Loaded(path, _checked(_flatten(data), path))


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """{"probe": {"image": x}} -> {"probe.image": x} (and [fleet]); other tables (bands, expect_tflops) stay values."""
    flat = {}
    for name, value in data.items():
        name = name.replace("-", "_")
        if name in TABLES and isinstance(value, dict):
            flat.update({f"{name}.{k.replace('-', '_')}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def _checked(values: dict[str, Any], path: str) -> dict[str, Any]:
    known = settings()
    checked = {}
    for name, value in values.items():
        key = known.get(name)
        if key is None:
            import difflib  # only for the error message

            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"{path}: unknown key {name!r}{hint}")
        try:
            typed = from_data(key.type, value)
        except SchemaError:
            typed = None
        problem = _describe(key.type) if typed is None else key.problem(typed)
        if problem:
            raise ConfigError(f"{path}: {name} = {_toml_value(value)} is not allowed: use {problem}")
        checked[name] = typed
    return checked


def _describe(kind: Any) -> str:
    names = {
        str: "a string",
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        list[str]: "a list of strings",
        Band: "{passing = P, warning = W}",
        dict[str, float]: "a table of DTYPE = TFLOPS",
        dict[str, Band]: "a table of DTYPE = {passing, warning}",
    }
    return names.get(kind, str(kind))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


@dataclass
class Effective:
    """Every setting's value and where it came from: `default`, the policy file's path, or `--flag`."""

    values: dict[str, Any]
    sources: dict[str, str]

    def policy(self) -> Policy:
        fields = {f.name for f in dataclasses.fields(Policy)}
        values = {k: v for k, v in self.values.items() if k in fields}
        for name in PAIRS:
            values[name] = tuple(sorted(dict(values.get(name) or {}).items()))
        values["require_gpu_models"] = tuple(values.get("require_gpu_models") or ())
        return Policy(**values)

    def probe(self, prefix: str = "probe.") -> dict[str, Any]:
        return {k.removeprefix(prefix): v for k, v in self.values.items() if k.startswith(prefix)}


def effective(loaded: Loaded, params: dict[str, Any], given: set[str]) -> Effective:
    """Merge defaults, the file and the command line; `given` names the parameters typed on the command line."""
    values, sources = {}, {}
    for key in settings().values():
        if key.param and key.param in given:
            values[key.name], sources[key.name] = params[key.param], key.flag or key.name
        elif key.name in loaded.values:
            values[key.name], sources[key.name] = loaded.values[key.name], loaded.path or "file"
        else:
            values[key.name], sources[key.name] = key.default, "default"
    return Effective(values, sources)
