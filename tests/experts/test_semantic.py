"""Semantic expert: losses, open_clip model sources, fine-tuning CLI, encoder export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from come.cli import main
from come.config.schema import SemanticExpertConfig
from come.experts import semantic
from come.experts.losses import contrastive_loss, dhn_nce, infonce
from come.utils.io import read_json

torch.set_num_threads(1)


def _emb(b: int = 6, c: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(b, c, generator=g), dim=-1), F.normalize(torch.randn(b, c, generator=g), dim=-1))


def test_infonce_matches_clip_when_texts_distinct():
    img, txt = _emb()
    ids, scale = torch.arange(6), torch.tensor(10.0)
    logits = scale * img @ txt.t()
    ref = (F.cross_entropy(logits, ids) + F.cross_entropy(logits.t(), ids)) / 2
    assert torch.allclose(infonce(img, txt, ids, scale), ref, atol=1e-6)


def test_dhn_nce_beta0_is_decoupled_nce():
    img, txt = _emb()
    ids, scale = torch.arange(6), torch.tensor(10.0)
    s = scale * img @ txt.t()
    off = ~torch.eye(6, dtype=torch.bool)

    def one(m):
        return (-m.diagonal() + torch.logsumexp(m.masked_fill(~off, -1e9), dim=1)).mean()
    ref = (one(s) + one(s.t())) / 2
    assert torch.allclose(dhn_nce(img, txt, ids, scale, beta=0.0), ref, atol=1e-5)


def test_dhn_nce_upweights_hard_negatives_and_drops_positives():
    img, txt = _emb()
    ids, scale = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor(10.0)
    assert dhn_nce(img, txt, ids, scale, beta=0.5) > dhn_nce(img, txt, ids, scale, beta=0.0)
    s = scale * img @ txt.t()
    neg = ids.view(1, -1) != ids.view(-1, 1)         # same-text pairs are not negatives

    def one(m):
        return (-m.diagonal() + torch.logsumexp(m.masked_fill(~neg, -1e9), dim=1)).mean()
    ref = (one(s) + one(s.t())) / 2
    assert torch.allclose(dhn_nce(img, txt, ids, scale, beta=0.0), ref, atol=1e-5)
    # a same-text partner made identical to the anchor changes nothing in the anchor's denominator
    txt2 = txt.clone()
    txt2[1] = img[0]
    s2 = scale * img @ txt2.t()
    assert torch.allclose(dhn_nce(img, txt2, ids, scale, beta=0.0), (one(s2) + one(s2.t())) / 2, atol=1e-5)
    same = torch.zeros(6, dtype=torch.long)          # no negatives at all: zero loss, no NaN
    assert dhn_nce(img, txt, same, scale).item() == 0.0
    with pytest.raises(ValueError, match="unknown loss"):
        contrastive_loss("triplet", img, txt, ids, scale)


def test_local_dir_model_loads_offline(tmp_path: Path):
    cfg = SemanticExpertConfig()
    model, tok, info = semantic.build_clip(cfg)
    d = tmp_path / "clip"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": info["model_cfg"],
                                                         "preprocess_cfg": {"mean": info["mean"], "std": info["std"]}}))
    torch.save(model.state_dict(), d / "open_clip_pytorch_model.bin")
    m2, tok2, info2 = semantic.build_clip(SemanticExpertConfig(local_dir=str(d)))
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(model.eval().encode_image(x), m2.eval().encode_image(x), atol=1e-6)
    assert torch.equal(tok(["Diagnosis for Ultrasound Image"]), tok2(["Diagnosis for Ultrasound Image"]))
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        semantic.build_clip(SemanticExpertConfig(local_dir=str(tmp_path / "empty")))


def test_finetune_cli_exports_encoder_and_eval(tiny_data: Path, tmp_path: Path, repo: Path):
    cfgf = str(repo / "config" / "config.yaml")
    root = f"data.root={tiny_data.parent}"
    prompts = tmp_path / "prompts.jsonl"
    assert main(["prompts", "--config", cfgf, "--set", root, "--train", str(tiny_data), "--out", str(prompts)]) == 0
    out = tmp_path / "experts" / "semantic"
    argv = ["finetune-semantic", "--config", cfgf, "--set", root, "--set", "experts.semantic.epochs=2",
            "--set", "experts.semantic.batch_size=8", "--set", "experts.semantic.loss=dhn_nce",
            "--prompts", str(prompts), "--test", str(tiny_data), "--out", str(out)]
    assert main(argv) == 0
    ev = read_json(tmp_path / "experts" / "semantic_eval.json")
    assert 0.0 <= ev["zero_shot_accuracy"] <= 1.0 and 0.5 <= ev["chance_level"] <= 1.0
    assert ev["n_images"] == 16 and len(ev["loss_curve"]["epoch"]) == 2
    payload = torch.load(out / "encoder.pt", weights_only=True)
    assert payload["prompt_embeddings"].shape == (len(payload["prompt_texts"]), 64)
    enc = semantic.load_encoder(out / "encoder.pt")
    e = enc(torch.randn(3, 3, 64, 64))
    assert e.shape == (3, 64) and torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    bad = out / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        semantic.load_encoder(bad)


def test_finetune_is_deterministic(tiny_data: Path):
    from come.config import load_config
    from come.data.coco import load_coco
    from come.experts import semantic_train as st
    from come.experts.prompts import build_prompt_records

    cfg = load_config(None, ["experts.semantic.epochs=1", "experts.semantic.batch_size=8",
                             "experts.semantic.image_size=32"])
    recs = build_prompt_records(load_coco(tiny_data), tiny_data.parent)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model, tok, info = semantic.build_clip(cfg.experts.semantic, 0.07)
        pairs = st.prepare_pairs(recs, info["image_size"], 2.5, seed=0)
        runs.append(st.finetune(model, tok, info, pairs, cfg, log=lambda m: None)["step_losses"])
    assert runs[0] == runs[1] and len(runs[0]) == 3


@pytest.mark.slow
def test_zero_shot_beats_chance_on_toy_lesions(tmp_path: Path, repo: Path):
    """~20 s: 160 toy images; malignant lesions are irregular, dark and shadowed."""
    from come.data.coco import load_coco, subset
    from come.utils.io import write_json
    from .conftest import make_dataset

    pool = make_dataset(tmp_path / "data", n_per_source=80, seed=1)
    coco = load_coco(pool)
    ids = [im["id"] for im in coco["images"]]
    train = write_json(tmp_path / "train.json", subset(coco, [i for i in ids if i % 5]))
    test = write_json(tmp_path / "test.json", subset(coco, [i for i in ids if i % 5 == 0]))
    cfgf, root = str(repo / "config" / "config.yaml"), f"data.root={pool.parent}"
    prompts = tmp_path / "p.jsonl"
    assert main(["prompts", "--config", cfgf, "--set", root, "--train", str(train), "--out", str(prompts)]) == 0
    assert main(["finetune-semantic", "--config", cfgf, "--set", root, "--set", "experts.semantic.epochs=6",
                 "--set", "experts.semantic.pretrain_images_per_source=0", "--set", "experts.semantic.lr=5e-4",
                 "--prompts", str(prompts), "--test", str(test), "--out", str(tmp_path / "e" / "semantic")]) == 0
    ev = read_json(tmp_path / "e" / "semantic_eval.json")
    assert ev["zero_shot_accuracy"] > ev["chance_level"] + 0.1


@pytest.mark.slow
def test_timm_vision_tower_roundtrip(tmp_path: Path):
    """BiomedCLIP-like open_clip config (timm ViT image tower) through local_dir -> encoder.pt."""
    mc = {"embed_dim": 32, "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
                                          "timm_pool": "", "timm_proj": "linear", "image_size": 224},
          "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    import open_clip
    d = tmp_path / "clip"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": mc, "preprocess_cfg": {"mean": [0.5] * 3,
                                                                                              "std": [0.5] * 3}}))
    torch.save(open_clip.CLIP(**mc).state_dict(), d / "open_clip_pytorch_model.bin")
    model, tok, info = semantic.build_clip(SemanticExpertConfig(local_dir=str(d)), 0.07)
    assert info["image_size"] == 224 and info["mean"] == [0.5] * 3
    path = semantic.export_encoder(model, info, tmp_path / "semantic" / "encoder.pt", ["x"], torch.zeros(1, 32))
    enc = semantic.load_encoder(path)
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(enc(x), F.normalize(model.eval().encode_image(x), dim=-1), atol=1e-5)


def test_augment_is_seeded_bounded_and_identity_when_off():
    from come.experts.semantic_train import augment

    x = torch.rand(4, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.allclose(a, x)
    same = augment(x, torch.Generator().manual_seed(3), zoom=(1.0, 1.0), gain=0.0, contrast=0.0)
    assert torch.allclose(same, x, atol=1e-5)
