"""Batches as tuples and dicts, a model returning a dict."""

import torch
from torch import nn


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.act = nn.ReLU()

    def forward(self, x, shift=0.0):
        return {"out": self.act(self.a(x) + shift)}


def model():
    torch.manual_seed(0)
    return TwoInputs()


def batches():
    yield (torch.ones(2, 2), -100.0)
    yield {"x": torch.ones(3, 2), "shift": -100.0}
