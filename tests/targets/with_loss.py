"""A scan target that brings its own loss, so `scan --gradients` can run backward."""

import torch
from torch import nn


def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].bias[1] = -100.0  # unit 1 never fires: its gradient is cut
    return net


def batches():
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        yield torch.randn(8, 4, generator=generator)


def loss(output, batch):
    return output.pow(2).sum()
