import torch
from torch import nn

model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
example_input = torch.ones(2, 3)
