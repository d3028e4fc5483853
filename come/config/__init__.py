"""Typed configuration (see `schema.py` for every key and its default)."""
from .loader import deep_merge, dump_config, load_config, parse_overrides, to_dict
from .schema import ALL_DATASETS, BREAST, ORGAN_OF, THYROID, Config, ConfigError

__all__ = ["ALL_DATASETS", "BREAST", "ORGAN_OF", "THYROID", "Config", "ConfigError",
           "deep_merge", "dump_config", "load_config", "parse_overrides", "to_dict"]
