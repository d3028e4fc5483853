"""Synthetic inputs shared by the detector tests."""
from __future__ import annotations

import torch


def batch(size: int = 128, seed: int = 0):
    """Two images: the first padded on the right (valid width 3/4) with no box, the second
    with three boxes. -> images [2,3,S,S], pad_mask [2,S,S], source_ids [2], targets."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, size, size, generator=g)
    pad = torch.zeros(2, size, size, dtype=torch.bool)
    pad[0, :, size * 3 // 4:] = True
    images[0, :, pad[0]] = 0
    targets = [
        {"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)},
        {"labels": torch.tensor([0, 0, 0]),
         "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.1, 0.3], [0.5, 0.5, 0.4, 0.4]])},
    ]
    return images, pad, torch.tensor([0, 3]), targets
