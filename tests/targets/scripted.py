"""A TorchScript model: hooks do not run inside scripted code, so it cannot be recorded."""

import warnings

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
example_input = torch.randn(2, 4)
