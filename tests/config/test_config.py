"""Typed config: strict validation with errors that name the file, the key and the problem."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from come.cli import COMMANDS
from come.config import ConfigError, dump_config, load_config
from come.config.jsonschema import config_json_schema


def write(tmp_path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_shipped_configs_load(repo):
    emb = load_config(repo / "config/config.yaml")
    paper = load_config(repo / "config/paper.yaml")
    assert emb.data.source == "synth" and paper.data.source == "real"
    assert (paper.model.backbone.name, paper.model.enc_layers, paper.model.dec_layers) == ("resnet50", 6, 6)
    assert paper.model.num_queries == 900 and paper.model.hidden_dim == 256
    assert paper.train.lr == pytest.approx(1.4e-4)
    assert paper.model.ffn.capacity_factor == 1.25 and paper.model.ffn.balance_weight == 0.1


@pytest.mark.parametrize("text, needle", [
    ("model:\n  ffn:\n    topk: 3\n", "model.ffn.topk: unknown key (did you mean 'top_k'?)"),
    ("model:\n  ffn:\n    top_k: three\n", "model.ffn.top_k: expected int, got str"),
    ("train:\n  lr: fast\n", "train.lr: expected float"),
    ("data:\n  datasets: [BUSI, NOPE]\n", "unknown dataset 'NOPE'"),
    ("model:\n  ffn:\n    type: come\n    num_experts: 4\n    top_k: 5\n", "model.ffn.top_k: 5 must be in [1, num_experts=4]"),
    ("model:\n  ffn:\n    clustering: kmeans\n", "model.ffn.clustering: 'kmeans' is not one of"),
    ("data: [1, 2]\n", "data: expected a mapping"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("model: {hidden_dim: 65, nheads: 4}\n", "not divisible"),
])
def test_malformed_config_names_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 3\n  lr: 0.5\n")
    child = write(tmp_path, "base: base.yaml\ntrain:\n  epochs: 7\n")
    cfg = load_config(child, ["train.batch_size=2", "model.ffn.type=come"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (7, 0.5, 2)
    assert cfg.model.ffn.type == "come"
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(child, ["train.epochs"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_roundtrip(tmp_path, repo):
    cfg = load_config(repo / "config/config.yaml", ["model.ffn.top_k=2"])
    out = dump_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(out)
    assert again == cfg
    assert yaml.safe_load(out.read_text())["model"]["ffn"]["top_k"] == 2


def test_json_schema_rejects_what_loader_rejects(repo):
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_json_schema()
    jsonschema.validate(yaml.safe_load((repo / "config/config.yaml").read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": {"ffn": {"topk": 3}}}, schema)


def test_cli_help_lists_every_subcommand_and_each_has_help(capsys):
    """One subprocess for the `python -m come` entry point; each subcommand's --help in-process
    (18 subprocesses fewer in the default tier)."""
    from come.cli import main

    out = subprocess.run([sys.executable, "-m", "come", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out
    for name in COMMANDS:
        with pytest.raises(SystemExit) as stop:
            main([name, "--help"])
        assert stop.value.code == 0, f"come {name} --help failed"
        assert "usage: come " + name in capsys.readouterr().out


def test_cli_config_error_exits_2_with_message(tmp_path):
    path = write(tmp_path, "train:\n  epochz: 1\n")
    res = subprocess.run([sys.executable, "-m", "come", "config", "--config", str(path)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "train.epochz: unknown key" in res.stderr


def test_scientific_floats_without_dot_are_floats(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  lr: 2e-4\n"), ["model.backbone.lr=1e-5"])
    assert cfg.train.lr == pytest.approx(2e-4) and cfg.model.backbone.lr == pytest.approx(1e-5)
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        load_config(write(tmp_path, "train:\n  epochs: 1e3\n"))


def test_cli_bad_input_file_exits_1_naming_the_file(tmp_path, monkeypatch, capsys):
    from come.cli import main

    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert main(["split", "--coco", str(bad), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("come split: error: ") and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "s" / "train.json").exists()
    monkeypatch.setenv("COME_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["split", "--coco", str(bad), "--out", str(tmp_path / "s")])
