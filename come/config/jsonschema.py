"""Export the dataclass schema as JSON Schema (used by Snakemake's `validate()`)."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from .schema import Config


def _schema(tp: Any) -> dict:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a) for a in get_args(tp)]}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return {"type": "array", "items": _schema(item)}
    if origin is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return {"type": "object", "additionalProperties": False,
                "properties": {f.name: _schema(hints[f.name]) for f in dataclasses.fields(tp)}}
    return {type(None): {"type": "null"}, bool: {"type": "boolean"}, int: {"type": "integer"},
            float: {"type": "number"}, str: {"type": "string"}}.get(tp, {})


def config_json_schema() -> dict:
    schema = _schema(Config)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["description"] = "COME-Repro configuration (generated from come/config/schema.py)"
    schema["properties"]["base"] = {"type": "string"}
    return schema
