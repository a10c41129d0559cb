"""Task features (lists of equal-shape tensor dicts) as datasets the trainer can sample."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


class FeatureDataset(Dataset):
    """Features indexed like MLM blocks, by (epoch, index); the epoch is ignored."""

    def __init__(self, features: list[dict[str, torch.Tensor]], seed: int):
        if not features:
            raise ValueError("no features to train on")
        self.features, self.seed = features, seed

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.features[key[1]]
