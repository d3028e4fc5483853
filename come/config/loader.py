"""Strict YAML -> dataclass loading, overrides and the resolved-config dump.

Errors name the file, the dotted key and the problem, e.g.
``config/x.yaml: model.ffn.top_k: expected int, got str ('three')`` or
``config/x.yaml: model.ffn.topk: unknown key (did you mean 'top_k'?)``.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from .schema import Config, ConfigError

_SCI_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it (ints accepted for floats)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        (item_tp,) = get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, val_tp = get_args(tp) or (Any, Any)
        return {k: _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} ({value!r})")
        return build(tp, value, where)
    if tp is float:
        if isinstance(value, str) and _SCI_FLOAT.fullmatch(value.strip()):
            return float(value)       # YAML 1.1 reads "2e-4" (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {type(value).__name__} ({value!r})")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {type(value).__name__} ({value!r})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected bool (true/false), got {type(value).__name__} ({value!r})")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected str, got {type(value).__name__} ({value!r})")
        return value
    raise ConfigError(f"{where}: unsupported annotation {_type_name(tp)}")


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[dict, list[str]]:
    """(type hints, field names) of a dataclass, computed once per class."""
    return typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]


def build(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types."""
    hints, names = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(names)})"
            raise ConfigError(f"{path}: unknown key{hint}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge `override` into a copy of `base` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: list[str] | None) -> dict:
    """`["model.ffn.top_k=3", "train.epochs=2"]` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


_YAML_CACHE: dict[tuple, dict] = {}


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping (a fresh copy; parsed once per file version: the workflow resolves every
    run of the grid from the same files)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _YAML_CACHE:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
        _YAML_CACHE[key] = data
    return copy.deepcopy(_YAML_CACHE[key])


def resolve_dict(path: str | Path | None, overrides: dict | None = None) -> dict:
    """Read a config file, following `base:` (a path relative to the file) recursively."""
    data: dict = {}
    if path is not None:
        data = read_yaml(path)
        base = data.pop("base", None)
        if base is not None:
            data = deep_merge(resolve_dict(Path(path).parent / base), data)
    return deep_merge(data, overrides or {})


def load_config(path: str | Path | None = None, overrides: dict | list[str] | None = None) -> Config:
    """Load, merge overrides, build and validate a `Config`; errors name the file and key."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    label = str(path) if path is not None else "<defaults>"
    try:
        cfg = build(Config, resolve_dict(path, overrides))
        cfg.validate()
    except ConfigError as exc:
        msg = str(exc)
        if overrides and _valid_alone(path):         # the overrides (--set, grid row) are at fault
            raise ConfigError(f"override {msg} (on top of {label}, which is valid by itself)") from None
        raise ConfigError(msg if msg.startswith(label) else f"{label}: {msg}") from None
    return cfg


def _valid_alone(path: str | Path | None) -> bool:
    """True when the config file without overrides builds and validates."""
    try:
        build(Config, resolve_dict(path)).validate()
    except ConfigError:
        return False
    return True


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config (every key, defaults included) as YAML beside an output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path
