"""The dataset registry (`config/datasets.yaml`), validated against its JSON schema."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from come.config.schema import ALL_DATASETS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REGISTRY = REPO / "config" / "datasets.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "datasets.schema.yaml"
EXTRA_DATASETS = ["TN3K", "DDTI_PRE", "DDTI_NEU"]


class RegistryError(ValueError):
    """The registry file is missing, not YAML, or breaks the schema; the message names the file."""


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    organ: str
    project_name: str
    citation: str
    licence: str
    homepage: str
    source: str
    archive_sha256: str | None
    expected_images: int | None
    format: str

    @property
    def manual(self) -> bool:
        return self.source.startswith("manual:")

    @property
    def url(self) -> str | None:
        return None if self.manual else self.source


def _resolve(path: str | Path | None) -> Path:
    path = Path(path) if path else DEFAULT_REGISTRY
    if not path.is_absolute() and not path.exists() and (REPO / path).exists():
        path = REPO / path
    return path


def load_registry(path: str | Path | None = None) -> dict[str, DatasetEntry]:
    """Read and validate the registry; every paper dataset must be present."""
    path = _resolve(path)
    if not path.is_file():
        raise RegistryError(f"{path}: dataset registry not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.path) or "<top>"
        raise RegistryError(f"{path}: {where}: {e.message}")
    entries = {k: DatasetEntry(name=k, **v) for k, v in data["datasets"].items()}
    missing = [d for d in ALL_DATASETS if d not in entries]
    if missing:
        raise RegistryError(f"{path}: datasets {missing} of the paper are missing")
    return entries


def get_entry(name: str, path: str | Path | None = None) -> DatasetEntry:
    entries = load_registry(path)
    if name not in entries:
        raise RegistryError(f"{_resolve(path)}: unknown dataset {name!r} (known: {sorted(entries)})")
    return entries[name]
