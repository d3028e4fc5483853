"""`zero_shot` on a stub CLIP with hand-set embeddings: exactly k of N right, so accuracy,
chance level and the one-sided binomial p-value are known numbers (not just "in [0, 1]")."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binomtest
from torch import nn

from come.experts.prompts import TEST_PROMPT
from come.experts.semantic_train import zero_shot

# Text embeddings (5-D): breast prompts on axes 0/1, thyroid prompts on axes 2/3, the generic
# prompt on axis 4 (+ benign, - malignant).
TEXT = {("breast", "Benign"): [1, 0, 0, 0, 0], ("breast", "Malignant"): [0, 1, 0, 0, 0],
        ("thyroid", "Benign"): [0, 0, 1, 0, 0], ("thyroid", "Malignant"): [0, 0, 0, 1, 0],
        (None, "Benign"): [0, 0, 0, 0, 1], (None, "Malignant"): [0, 0, 0, 0, -1]}
# 10 images: (organ, label 1 = malignant, organ-prompt guess, generic guess). 3 malignant and
# 7 benign (chance = majority = 0.7); the organ prompts get 8 right (images 2 and 9 wrong),
# the generic prompt 4 right.
IMAGES = [("breast", 1, 1, 1), ("breast", 1, 1, 0), ("thyroid", 1, 0, 0), ("breast", 0, 0, 0),
          ("breast", 0, 0, 1), ("thyroid", 0, 0, 0), ("thyroid", 0, 0, 1), ("thyroid", 0, 0, 0),
          ("breast", 0, 0, 1), ("thyroid", 0, 1, 1)]


class StubClip(nn.Module):
    """encode_image: image i (its pixels all equal i) -> a vector that prefers IMAGES[i]'s
    guesses; encode_text: a prompt -> TEXT[(organ or None, label)]."""

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for i in x[:, 0, 0, 0].round().long().tolist():
            organ, _, guess, generic = IMAGES[i]
            v = torch.zeros(5)
            axis = 0 if organ == "breast" else 2
            v[axis + guess] = 1.0
            v[axis + 1 - guess] = 0.2
            v[4] = -0.5 if generic else 0.5
            out.append(v)
        return torch.stack(out)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            label = "Malignant" if t.endswith("Malignant") else "Benign"
            organ = None if t.startswith(TEST_PROMPT) else ("breast" if "breast" in t.lower() else "thyroid")
            rows.append(TEXT[(organ, label)])
        return torch.tensor(rows, dtype=torch.float32)


def test_zero_shot_counts_exactly_k_of_n():
    """Mutations caught: chance = n_malignant / n (0.3, not the majority 0.7); accuracy from the
    generic prompt (0.4) instead of the organ prompts (0.8); a two-sided p-value; one organ's
    prompts used for every image."""
    ev = {"images": torch.arange(len(IMAGES), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 2, 2),
          "labels": torch.tensor([lab for _, lab, _, _ in IMAGES]),
          "organs": [organ for organ, _, _, _ in IMAGES]}
    out = zero_shot(StubClip(), lambda texts: list(texts), ev, mean=(0, 0, 0), std=(1, 1, 1))
    assert out["n_images"] == 10 and out["n_malignant"] == 3 and out["n_benign"] == 7
    assert out["zero_shot_accuracy"] == pytest.approx(0.8)
    assert out["zero_shot_accuracy_generic_prompt"] == pytest.approx(0.4)
    assert out["chance_level"] == pytest.approx(0.7)
    by_hand = sum(math.comb(10, j) * 0.7 ** j * 0.3 ** (10 - j) for j in range(8, 11))   # P(X >= 8)
    assert out["p_value_vs_chance"] == pytest.approx(by_hand, rel=1e-9)
    assert out["p_value_vs_chance"] == pytest.approx(binomtest(8, 10, 0.7, alternative="greater").pvalue)
