"""Registry: schema validation, paper names, no invented checksums."""
from __future__ import annotations

import pytest
import yaml

from come.config.schema import ALL_DATASETS
from come.data.registry import DEFAULT_REGISTRY, RegistryError, get_entry, load_registry


def test_registry_has_paper_and_extra_datasets():
    reg = load_registry()
    assert set(ALL_DATASETS) | {"TN3K", "DDTI_PRE", "DDTI_NEU"} == set(reg)
    assert {reg[d].organ for d in ["BUSI", "BUV", "BUSBRA", "BUSC"]} == {"breast"}
    assert {reg[d].organ for d in ["DDTI", "TUD", "TUS", "TNSCUI", "TN3K", "DDTI_PRE"]} == {"thyroid"}
    assert reg["BUSBRA"].expected_images == 1875
    assert reg["DDTI_PRE"].project_name == "DDTI"
    for e in reg.values():
        assert e.manual or e.url.startswith("http")
        assert e.archive_sha256 is None or len(e.archive_sha256) == 64


def _write(tmp_path, mutate):
    data = yaml.safe_load(DEFAULT_REGISTRY.read_text())
    mutate(data["datasets"])
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["BUSI"].update(archive_sha256="abc"), "BUSI.archive_sha256"),
    (lambda d: d["BUSI"].pop("citation"), "citation"),
    (lambda d: d["TUS"].update(source="ftp://x"), "TUS.source"),
    (lambda d: d["TUD"].update(organ="liver"), "TUD.organ"),
    (lambda d: d.pop("BUV"), "BUV"),
])
def test_registry_rejects_bad_entries(tmp_path, mutate, fragment):
    path = _write(tmp_path, mutate)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_unknown_name_is_named():
    with pytest.raises(RegistryError, match="unknown dataset 'NOPE'"):
        get_entry("NOPE")
