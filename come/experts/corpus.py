"""Synthetic pretraining corpora of the shared experts (no benchmark image ever in them).

The paper's experts come pretrained on data that never held the benchmark: USFM (structure)
and BiomedCLIP (semantic). Without those weights, the embedded experts are pretrained on a
separate synthetic corpus: the benchmark's renderer and sources (come.data.synth) with another
seed and size, so no benchmark image (train or test) is in it. Each expert has its own corpus
seed (experts.structure.pretrain_seed, experts.semantic.pretrain_seed), validated to differ
from synth.seed (Config.validate); `corpus_hashes` lets tests check the pixels are disjoint.

    coco = render_corpus(cfg, seed, images_per_source, out)   # writes out/<SOURCE>/..., out/annotations.json
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from come.config.schema import Config
from come.data.coco import load_coco, merge
from come.utils.io import write_json


def corpus_synth_config(cfg: Config, seed: int, images_per_source: int) -> Config:
    """The synth config of a corpus: the benchmark's sources and renderer, another seed and size."""
    cfg.validate()                     # includes: corpus seeds != synth.seed on the synthetic benchmark
    ccfg = copy.deepcopy(cfg)
    ccfg.synth.seed = int(seed)
    ccfg.synth.images_per_source = int(images_per_source)
    ccfg.synth.validate()
    return ccfg


def render_corpus(cfg: Config, seed: int, images_per_source: int, out: str | Path, what: str) -> dict:
    """Render the corpus under `out` (one folder per source + a merged annotations.json) -> COCO dict.

    Its COCO file_names are relative to `out`."""
    from come.data.synth import generate

    out = Path(out)
    ccfg = corpus_synth_config(cfg, seed, images_per_source)
    written = generate(ccfg, out)
    coco = merge([load_coco(written[name]) for name in ccfg.synth.sources],
                 {"description": f"synthetic pretraining corpus of the {what}", "seed": ccfg.synth.seed})
    write_json(out / "annotations.json", coco)
    return coco


def corpus_hashes(coco: dict, root: str | Path) -> set[str]:
    """sha1 of every image file of a COCO dict (paths relative to `root`)."""
    return {hashlib.sha1((Path(root) / im["file_name"]).read_bytes()).hexdigest() for im in coco["images"]}
