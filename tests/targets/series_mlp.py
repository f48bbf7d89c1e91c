"""A small MLP and fixed batches, for checkpoint series (tests write the checkpoints)."""

import torch
from torch import nn


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def batches():
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        yield torch.randn(16, 4, generator=generator)
