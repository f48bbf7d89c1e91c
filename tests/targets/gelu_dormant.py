"""A GELU MLP whose hidden units 2 and 3 are dormant (planted): recycle finds them unasked."""

import torch
from torch import nn


class GeluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(2, 4)
        self.act = nn.GELU()
        self.down = nn.Linear(4, 2)
        with torch.no_grad():
            self.up.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
            self.up.bias.copy_(torch.tensor([3.0, 3.0, -10.0, -10.0]))  # GELU(-10) ~ -8e-23

    def forward(self, x):
        return self.down(self.act(self.up(x)))


model = GeluNet


def batches():
    yield torch.linspace(-1, 1, 16).reshape(8, 2)
