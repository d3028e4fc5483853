"""Open-GroundingDINO on our DINO: offline text encoder, per-token contrastive logits, training."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from come.baselines.grounding.fusion import class_logits
from come.baselines.grounding.model import GroundingDINO
from come.baselines.grounding.text import (default_prompt, encode_prompt, load_text_encoder,
                                           packaged_encoder_dir, positive_map)
from come.engine.evaluate import evaluate_run
from come.engine.parts import default_parts
from come.engine.train import train
from tests.engine.conftest import make_benchmark, tiny_config


@pytest.fixture()
def no_network(monkeypatch):
    """Every socket connection and DNS lookup fails (and is recorded)."""
    calls: list[str] = []

    def refuse(*args, **kwargs):
        calls.append(repr(args[:2]))
        raise OSError("network disabled by the test")
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return calls


def grounding_cfg(tmp_path: Path, **extra):
    data_root, splits_root = make_benchmark(tmp_path / "bench")
    base = {"results": str(tmp_path / "results"), "model__arch": "grounding-dino",
            "run__train_datasets": "[BUSI]", "data__image_size": 96,
            "data__min_size": 96, "model__num_queries": 20, "train__epochs": 1,
            "train__max_steps_per_epoch": 2, "eval__qualitative_per_dataset": 0}
    return tiny_config(data_root, splits_root, **{**base, **extra})


def test_text_encoder_loads_from_a_local_folder_without_network(no_network):
    """BertModel.from_pretrained on the packaged MiniLM folder: 6 layers, 384-d, no connection."""
    folder = packaged_encoder_dir()
    model, tokenizer = load_text_encoder(str(folder))
    assert type(model).__name__ == "BertModel"
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    text = encode_prompt(model, tokenizer, "lesion .", ["lesion"], 16)
    assert text.feats.shape == (16, 384) and int(text.mask.sum()) == 5     # [CLS] les ##ion . [SEP]
    assert no_network == []


def test_positive_map_covers_each_class_name_word_pieces():
    _, tokenizer = load_text_encoder("")
    prompt = default_prompt(["benign", "malignant"])
    assert prompt == "benign . malignant ."
    pm = positive_map(tokenizer, prompt, ["benign", "malignant"], 16)
    assert pm.shape == (2, 16) and torch.allclose(pm.sum(1), torch.ones(2))
    assert (pm[0] > 0).nonzero().flatten().tolist() == [1]                  # [CLS] benign . ...
    assert int((pm[1] > 0).sum()) >= 1 and (pm[0] * pm[1]).sum() == 0
    with pytest.raises(ValueError, match="does not contain"):
        positive_map(tokenizer, "lesion .", ["benign"], 16)


def test_contrastive_head_gives_per_token_logits(tmp_path, no_network):
    """pred_token_logits [B, Q, T]: finite on real tokens, -inf on padding; pred_logits are
    their positive-map mean; changing the text features changes the logits (the text is used).
    Mutation: a Linear class head (DINO's) leaves the logits unchanged by the text."""
    cfg = grounding_cfg(tmp_path)
    torch.manual_seed(0)
    model = default_parts(cfg).build_model(cfg).eval()
    assert isinstance(model, GroundingDINO) and not hasattr(model, "class_embed")
    images = torch.randn(2, 3, 96, 96)
    pad = torch.zeros(2, 96, 96, dtype=torch.bool)
    out = model(images, pad, torch.zeros(2, dtype=torch.long))
    tok = out["pred_token_logits"]
    real = model.text_mask
    assert tok.shape == (2, 20, 16)
    assert torch.isfinite(tok[..., real]).all() and torch.isinf(tok[..., ~real]).all()
    assert torch.allclose(out["pred_logits"], class_logits(tok, model.positive_map))
    assert out["pred_logits"].shape == (2, 20, 1)
    with torch.no_grad():
        model.text_raw.add_(torch.randn_like(model.text_raw))
    assert not torch.allclose(model(images, pad, torch.zeros(2, dtype=torch.long))["pred_logits"],
                              out["pred_logits"])
    assert no_network == []


def test_prompt_features_are_cached_for_later_jobs(tmp_path, monkeypatch):
    """The second model of the same prompt and encoder reads <results>/cache/text/ and never
    loads the text encoder. Mutation: no cache -> the patched loader raises."""
    cfg = grounding_cfg(tmp_path)
    first = default_parts(cfg).build_model(cfg)
    assert len(list((tmp_path / "results" / "cache" / "text").glob("*.pt"))) == 1

    def refuse(name):
        raise AssertionError("text encoder loaded although its prompt features are cached")
    monkeypatch.setattr("come.baselines.grounding.text.load_text_encoder", refuse)
    second = default_parts(cfg).build_model(cfg)
    assert torch.equal(first.text_raw, second.text_raw) and torch.equal(first.positive_map, second.positive_map)


def test_grounding_dino_trains_and_evaluates_through_the_engine(tmp_path):
    """`model.arch: grounding-dino` runs through the regular train / evaluate engine; the frozen
    text encoder stays out of the checkpoint (its prompt features are a small buffer)."""
    cfg = grounding_cfg(tmp_path)
    ckpt = train(cfg, tmp_path / "run")
    state = torch.load(ckpt, weights_only=True)["model"]
    assert "text_raw" in state and not any(k.startswith("text_encoder.") for k in state)
    assert any("enhancer" in k for k in state) and any("text_attn" in k for k in state)
    metrics = evaluate_run(cfg, tmp_path / "run")
    assert set(metrics["datasets"]) == {"BUSI"} and metrics["mean"]["AP"] is not None


def test_tables_record_the_text_encoder_substitution():
    """Table 2's notes name the MiniLM in the embedded default and bert-base-uncased in
    paper.yaml. Mutation: a fixed note (not read from the config) fails one of the two."""
    from come.baselines import table_notes
    from come.config import load_config
    from come.reports.paper import paper_layouts
    from come.reports.render import to_markdown
    from come.reports.tables import build_table

    embedded = table_notes(load_config("config/config.yaml"))["Open-GroundingDINO"]
    assert "MiniLM" in embedded and "instead of bert-base-uncased" in embedded
    assert "bert-base-uncased" == table_notes(load_config("config/paper.yaml"))["Open-GroundingDINO"][-17:]
    table = build_table(paper_layouts("config/paper_tables.csv")["table2_main"], [])
    table.notes = [f"Open-GroundingDINO (ours): {embedded}"]
    assert embedded in to_markdown(table)
