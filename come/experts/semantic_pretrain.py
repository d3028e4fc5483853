"""Pretraining of the embedded semantic expert on a synthetic image-text corpus.

The paper's semantic expert starts from BiomedCLIP, which was pretrained on millions of
biomedical image-text pairs before COME fine-tunes it on the training sets' diagnosis prompts.
Without BiomedCLIP (no download), the embedded CLIP would have to learn benign/malignant
appearance from the few hundred benchmark training images alone, and it does not (zero-shot
accuracy at or below chance, see benchmarks/bench_experts.py). The stand-in for that
pretraining: a separate synthetic corpus (`experts.semantic.pretrain_images_per_source` images
per source, rendered with `pretrain_seed`, which must differ from `synth.seed` so no benchmark
image, and so no test image, is in it), captioned with the same diagnosis prompts.

Files (come pretrain-semantic --out D):
  D/corpus/<SOURCE>/...       the corpus images, masks and COCO files (come.data.synth layout)
  D/corpus_prompts.jsonl      one prompt record per corpus image
  D/clip.pt                   the whole pretrained CLIP (format come-semantic-clip/1)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import open_clip
from torch import nn

from come.config.schema import Config, ConfigError, SemanticExpertConfig
from come.experts.corpus import corpus_synth_config, render_corpus
from come.experts.prompts import build_prompt_records, write_jsonl
from come.experts.semantic import build_clip, embedded_model_cfg
from come.utils.torchio import load_payload, save_payload

FORMAT = "come-semantic-clip/1"


def corpus_config(cfg: Config) -> Config:
    """The synth config of the corpus: the benchmark's sources and renderer, another seed and size."""
    sc = cfg.experts.semantic
    if not sc.uses_corpus():
        raise ConfigError("experts.semantic: no pretraining corpus is used (model_name/local_dir is set, "
                          "or pretrain_images_per_source is 0)")
    return corpus_synth_config(cfg, sc.pretrain_seed, sc.pretrain_images_per_source)


def build_corpus(cfg: Config, out: str | Path) -> list[dict]:
    """Render the corpus under `out`/corpus and write `out`/corpus_prompts.jsonl; return the records."""
    out = Path(out)
    ccfg = corpus_config(cfg)
    coco = render_corpus(cfg, ccfg.synth.seed, ccfg.synth.images_per_source, out / "corpus", "semantic expert")
    records = build_prompt_records(coco, out / "corpus", where=str(out / "corpus" / "annotations.json"))
    write_jsonl(records, out / "corpus_prompts.jsonl")
    return records


def save_clip(model: nn.Module, info: dict, path: str | Path, extra: dict | None = None) -> Path:
    """Save the whole CLIP (both towers) with its open_clip model config."""
    payload = {"format": FORMAT, "model_cfg": info["model_cfg"], "image_size": int(info["image_size"]),
               "mean": list(info["mean"]), "std": list(info["std"]),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "extra": extra or {}}
    return save_payload(payload, path)


def load_clip(path: str | Path, cfg: SemanticExpertConfig) -> tuple[nn.Module, Callable, dict]:
    """(model, tokenizer, info) from `clip.pt`; its model config must be the one `cfg` builds.
    info["pretrain_epoch_losses"]: the per-epoch pretraining losses stored with it (loss figure)."""
    path = Path(path)
    payload = load_payload(path, "pretrained semantic CLIP", FORMAT,
                           f"come pretrain-semantic --config C --out {path.parent}")
    want = embedded_model_cfg(cfg)
    if payload["model_cfg"] != want:
        raise ValueError(f"{path}: pretrained with another model config than experts.semantic now builds "
                         f"(stored {payload['model_cfg']}, expected {want}); rerun come pretrain-semantic")
    model = open_clip.CLIP(**want)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the stored model config: {exc}") from None
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=want["text_cfg"]["context_length"])
    info = {"model_cfg": want, "image_size": payload["image_size"], "mean": payload["mean"],
            "std": payload["std"], "source": f"embedded, pretrained: {path}",
            "pretrain_epoch_losses": [float(v) for v in payload["extra"].get("epoch_losses", [])]}
    return model.eval(), tokenizer, info


def init_clip(cfg: SemanticExpertConfig, init: str | Path | None) -> tuple[nn.Module, Callable, dict]:
    """The model to fine-tune: `init` (a clip.pt) when given, else `semantic.build_clip`."""
    if init:
        if cfg.model_name or cfg.local_dir:
            raise ConfigError(f"--init {init}: a corpus-pretrained checkpoint replaces only the embedded model; "
                              "experts.semantic.model_name / local_dir are set")
        return load_clip(init, cfg)
    return build_clip(cfg, cfg.temperature)
