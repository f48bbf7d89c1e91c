"""A model with planted problems and exactly known counts, for the CLI's golden files."""

import torch
from torch import nn


def _linear(weight, bias):
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        # x -> (x, -x, -1, -1): units 2 and 3 are dead, half the layer: dying.
        self.encoder = _linear([[1.0], [-1.0], [0.0], [0.0]], [0.0, 0.0, -1.0, -1.0])
        self.act1 = nn.ReLU()
        # every unit -100: a dead layer.
        self.hidden = _linear([[0.0] * 4] * 2, [-100.0, -100.0])
        self.act2 = nn.ReLU()
        self.head = _linear([[1.0, 1.0]], [0.5])
        self.act3 = nn.LeakyReLU(0.9)  # near-linear slope

    def forward(self, x):
        return self.act3(self.head(self.act2(self.hidden(self.act1(self.encoder(x))))))


model = Planted


def batches():
    values = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    yield values
    yield values * 3
