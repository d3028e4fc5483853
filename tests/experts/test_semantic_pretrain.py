"""Corpus pretraining of the embedded semantic expert: seed separation, corpus prompts,
clip.pt round trip and errors, the pretrain -> fine-tune CLI chain."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from come.cli import main
from come.config import ConfigError, load_config
from come.config.schema import SemanticExpertConfig
from come.experts import semantic, semantic_pretrain as sp
from come.utils.io import read_json

torch.set_num_threads(1)
TINY = ["synth.image_size=64", "experts.semantic.pretrain_images_per_source=3", "experts.semantic.image_size=32",
        "experts.semantic.pretrain_epochs=1", "experts.semantic.batch_size=8"]


def test_corpus_seed_must_differ_from_the_benchmark_seed():
    with pytest.raises(ConfigError, match="pretrain_seed.*synth.seed"):
        load_config(None, ["synth.seed=7", "experts.semantic.pretrain_seed=7"])
    # no corpus -> no clash to report; a BiomedCLIP-style model skips the corpus altogether
    load_config(None, ["synth.seed=7", "experts.semantic.pretrain_seed=7",
                       "experts.semantic.pretrain_images_per_source=0"])
    cfg = load_config(None, ["experts.semantic.model_name=ViT-B-32"])
    assert not cfg.experts.semantic.uses_corpus()
    with pytest.raises(ConfigError, match="no pretraining corpus"):
        sp.corpus_config(cfg)


def test_corpus_has_one_prompt_per_image_and_no_benchmark_image(tmp_path: Path):
    from come.data.synth import generate

    cfg = load_config(None, TINY + ["synth.images_per_source=3"])
    records = sp.build_corpus(cfg, tmp_path / "pre")
    assert len(records) == 3 * len(cfg.synth.sources)
    assert len({r["image"] for r in records}) == len(records)
    lines = (tmp_path / "pre" / "corpus_prompts.jsonl").read_text().splitlines()
    assert len(lines) == len(records)
    assert {r["text"].split(": ")[1] for r in records} <= {"Benign", "Malignant", "Omit"}
    bench = generate(cfg, tmp_path / "bench")           # the benchmark: same sources, synth.seed
    bench_pixels = {np.asarray(Image.open(p)).tobytes()
                    for d in bench.values() for p in sorted((d.parent / "images").glob("*.png"))}
    corpus_pixels = {np.asarray(Image.open(r["image"])).tobytes() for r in records}
    assert len(bench_pixels) == len(records) and not bench_pixels & corpus_pixels


def test_clip_checkpoint_roundtrip_and_errors(tmp_path: Path):
    sc = SemanticExpertConfig(image_size=32, embed_dim=16)
    torch.manual_seed(0)
    model, tok, info = semantic.build_clip(sc, 0.07)
    path = sp.save_clip(model, info, tmp_path / "clip.pt", extra={"epoch_losses": [2.0, 1.5]})
    m2, tok2, info2 = sp.load_clip(path, sc)
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model.encode_image(x), m2.encode_image(x))
    assert torch.equal(model.encode_text(tok(["a b"])), m2.encode_text(tok2(["a b"])))
    assert info2["pretrain_epoch_losses"] == [2.0, 1.5]
    with pytest.raises(ValueError, match=r"clip.pt: pretrained with another model config"):
        sp.load_clip(path, SemanticExpertConfig(image_size=32, embed_dim=32))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.pt: not a readable"):
        sp.load_clip(bad, sc)
    with pytest.raises(FileNotFoundError, match="come pretrain-semantic"):
        sp.load_clip(tmp_path / "missing.pt", sc)
    with pytest.raises(ConfigError, match="--init"):
        sp.init_clip(SemanticExpertConfig(model_name="ViT-B-32"), path)


def test_embedded_vision_choices():
    vit = semantic.embedded_model_cfg(SemanticExpertConfig(embedded_vision="vit", image_size=64))
    assert vit["vision_cfg"]["layers"] == 4 and vit["vision_cfg"]["patch_size"] == 8
    cnn = semantic.embedded_model_cfg(SemanticExpertConfig(image_size=64))
    assert cnn["vision_cfg"]["timm_model_name"] == "resnet10t" and not cnn["vision_cfg"]["timm_model_pretrained"]
    with pytest.raises(ValueError, match="embedded_vision.*no_such_net"):
        semantic.embedded_model_cfg(SemanticExpertConfig(embedded_vision="no_such_net"))
    with pytest.raises(ValueError, match="multiple of 8"):
        semantic.embedded_model_cfg(SemanticExpertConfig(embedded_vision="vit", image_size=60))


def test_pretrain_then_finetune_cli(tiny_data: Path, tmp_path: Path, repo: Path):
    cfgf = str(repo / "config" / "config.yaml")
    sets = [a for kv in TINY + [f"data.root={tiny_data.parent}", "experts.semantic.epochs=1"]
            for a in ("--set", kv)]
    pre = tmp_path / "experts" / "semantic_pretrain"
    assert main(["pretrain-semantic", "--config", cfgf, *sets, "--out", str(pre)]) == 0
    log = read_json(pre / "pretrain_log.json")
    assert log["n_images"] == 24 and len(log["loss_curve"]["epoch"]) == 1
    assert (pre / "config.yaml").is_file() and (pre / "corpus" / "annotations.json").is_file()
    prompts = tmp_path / "p.jsonl"
    assert main(["prompts", "--config", cfgf, *sets, "--train", str(tiny_data), "--out", str(prompts)]) == 0
    out = tmp_path / "experts" / "semantic"
    assert main(["finetune-semantic", "--config", cfgf, *sets, "--init", str(pre / "clip.pt"),
                 "--prompts", str(prompts), "--test", str(tiny_data), "--out", str(out)]) == 0
    ev = read_json(tmp_path / "experts" / "semantic_eval.json")
    assert ev["init"] == str(pre / "clip.pt") and 0.0 <= ev["zero_shot_accuracy"] <= 1.0
    assert (tmp_path / "experts" / "semantic_loss.png").stat().st_size > 1000
    enc = semantic.load_encoder(out / "encoder.pt")
    assert enc(torch.rand(2, 3, 32, 32)).shape == (2, 64)
    # a clash of seeds is a config error (exit 2) before anything is generated
    assert main(["pretrain-semantic", "--config", cfgf, *sets, "--set", "experts.semantic.pretrain_seed=0",
                 "--out", str(tmp_path / "clash")]) == 2
    assert not (tmp_path / "clash").exists()


@pytest.mark.slow
def test_embedded_semantic_expert_beats_chance(tmp_path: Path, repo: Path):
    """~5 min, the embedded default end to end (as `make demo` runs it): synthetic benchmark ->
    per-dataset 8:2 split -> inter-organ merge -> prompts -> corpus pretraining -> fine-tuning ->
    zero-shot benign/malignant accuracy on the held-out lesion images beats the majority-class rate
    (one-sided binomial p < 0.05). Deterministic on CPU (1 thread)."""
    cfgf = str(repo / "config" / "config.yaml")
    data, splits, experts = tmp_path / "data", tmp_path / "splits", tmp_path / "experts"
    sets = ["--set", f"data.root={data}", "--set", f"experts.root={experts}"]
    assert main(["synth", "--config", cfgf, *sets, "--out", str(data)]) == 0
    cfg = load_config(cfgf)
    for ds in cfg.data.datasets:
        assert main(["split", "--coco", str(data / ds / "annotations.json"), "--out", str(splits / ds),
                     "--seed", str(cfg.data.split_seed), "--test-fraction", str(cfg.data.test_fraction)]) == 0
    merged = splits / "merged" / "all"
    assert main(["merge", "--splits-root", str(splits), "--datasets", *cfg.data.datasets, "--out", str(merged)]) == 0
    prompts = tmp_path / "prompts.jsonl"
    assert main(["prompts", "--config", cfgf, *sets, "--train", str(merged / "train.json"), "--out", str(prompts)]) == 0
    pre = experts / "semantic_pretrain"
    assert main(["pretrain-semantic", "--config", cfgf, *sets, "--out", str(pre)]) == 0
    assert main(["finetune-semantic", "--config", cfgf, *sets, "--init", str(pre / "clip.pt"), "--prompts",
                 str(prompts), "--test", str(merged / "test.json"), "--out", str(experts / "semantic")]) == 0
    ev = read_json(experts / "semantic_eval.json")
    assert ev["n_images"] >= 40
    assert ev["zero_shot_accuracy"] > ev["chance_level"] and ev["p_value_vs_chance"] < 0.05, ev
