from torch import nn


class Broken(nn.Module):
    def forward(self, x):
        return helper(x)


def helper(x):
    raise ValueError("shapes do not line up in my model")


model = Broken()
example_input = None


def batches():
    import torch

    yield torch.zeros(1, 1)
