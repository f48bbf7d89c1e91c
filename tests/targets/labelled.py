"""A DataLoader-style batches() that yields (inputs, labels): a common slip."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())


def batches():
    yield torch.ones(4, 2), torch.zeros(4, dtype=torch.long)
