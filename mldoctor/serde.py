"""Dataclasses <-> JSON-ready data, driven by type hints.

Facts are typed dataclasses in memory and plain JSON on disk (reports, support bundles). Loading is lenient in
one direction only: keys this version does not know are ignored, so a report written by a newer mldoctor with
extra facts still re-diagnoses; missing keys take the field's default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


class SchemaError(ValueError):
    """The data does not have the shape the dataclass expects."""


def to_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    return value


@cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved field types; a class whose annotations name lazily imported types provides them through a
    `type_namespace()` static method."""
    namespace = getattr(cls, "type_namespace", None)
    return typing.get_type_hints(cls, localns=namespace() if callable(namespace) else None)


def from_data(cls: Any, data: Any, where: str = "$") -> Any:
    """Build `cls` from JSON-ready `data`; raise SchemaError naming the JSON path on a mismatch."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(cls)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return from_data(option, data, where)
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError("; ".join(errors))
    if origin is list or origin is tuple:
        if not isinstance(data, list):
            raise SchemaError(f"{where}: expected a list, got {type(data).__name__}")
        args = typing.get_args(cls)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):  # tuple[str, float]: one type each
            if len(data) != len(args):
                raise SchemaError(f"{where}: expected {len(args)} items, got {len(data)}")
            return tuple(from_data(arg, v, f"{where}[{i}]") for i, (arg, v) in enumerate(zip(args, data, strict=True)))
        items = [from_data(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: expected an object, got {type(data).__name__}")
        _, value_type = typing.get_args(cls)
        return {k: from_data(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: expected an object, got {type(data).__name__}")
        hints = type_hints(cls)
        kwargs = {
            f.name: from_data(hints[f.name], data[f.name], f"{where}.{f.name}")
            for f in dataclasses.fields(cls)
            if f.init and f.name in data
        }
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise SchemaError(f"{where}: {exc}") from None
    if isinstance(cls, type) and issubclass(cls, Enum):
        try:
            return cls(data)
        except ValueError:
            raise SchemaError(f"{where}: {data!r} is not a valid {cls.__name__}") from None
    if cls is Any:
        return data
    if cls is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if isinstance(cls, type) and isinstance(data, cls) and not (cls is int and isinstance(data, bool)):
        return data
    raise SchemaError(f"{where}: expected {getattr(cls, '__name__', cls)}, got {type(data).__name__}")
