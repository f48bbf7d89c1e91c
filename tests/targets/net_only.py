"""Defines its model as `net`, not `model`: the scan should suggest the name."""

import torch
from torch import nn

net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
example_input = torch.randn(2, 4)
