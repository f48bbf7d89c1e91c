"""A multi-layer perceptron that a too-high learning rate on unnormalised data has half killed.

Scan it with ``deadcheck scan examples/dying_mlp.py``: the second ReLU layer
comes out dying. The file follows the model-file convention of
``deadcheck scan``: ``model`` builds the network, ``batches()`` yields inputs.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

SEED = 0
SAMPLES, FEATURES, CLASSES = 512, 16, 4


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, 64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised inputs (mean 2, standard deviation 10) and linear-teacher labels."""
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(SAMPLES, FEATURES, generator=generator) * 10 + 2
    teacher = torch.randn(FEATURES, CLASSES, generator=generator)
    return x, (x @ teacher).argmax(1)


def model(lr: float = 1.0, steps: int = 30) -> MLP:
    """The MLP after ``steps`` of plain SGD at learning rate ``lr`` (too high for this data)."""
    torch.manual_seed(SEED)
    net = MLP()
    x, y = data()
    generator = torch.Generator().manual_seed(SEED + 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, SAMPLES, (64,), generator=generator)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


def batches() -> Iterator[torch.Tensor]:
    """The training inputs in four batches of 128."""
    x, _ = data()
    yield from x.split(128)


if __name__ == "__main__":
    import deadcheck

    net = model().eval()
    with torch.no_grad(), deadcheck.record(net) as recorder:
        for batch in batches():
            net(batch)
    print(deadcheck.render(recorder.report()))
