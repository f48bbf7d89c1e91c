from torch import nn

model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())


def batches():
    return iter(())
