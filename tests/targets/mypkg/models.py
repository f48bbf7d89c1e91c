"""A package module target: `deadcheck scan mypkg.models:model` from tests/targets."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
example_input = torch.randn(2, 4)
