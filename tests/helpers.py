"""Hand-set models with planted dead units, and a brute-force reference recorder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def linear(weight: Sequence[Sequence[float]], bias: Sequence[float]) -> nn.Linear:
    """A Linear layer with exactly these weights (out x in) and biases."""
    w = torch.tensor(weight, dtype=torch.float32)
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def conv(cls: type[nn.Module], weight: Sequence[float], bias: Sequence[float]) -> nn.Module:
    """A 1x1 convolution from one input channel with these per-channel weights and biases."""
    out = len(weight)
    layer = cls(1, out, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight).reshape(layer.weight.shape))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


#: The functional forms, by the name deadcheck reports them under.
FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "F.relu": F.relu,
    "F.relu-inplace": lambda x: F.relu(x.clone(), inplace=True),
    "torch.relu": torch.relu,
    "torch.relu_": lambda x: torch.relu_(x.clone()),
    "Tensor.relu": lambda x: x.relu(),
    "Tensor.relu_": lambda x: x.clone().relu_(),
    "F.relu6": F.relu6,
    "F.leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "F.leaky_relu-inplace": lambda x: F.leaky_relu(x.clone(), 0.2, inplace=True),
    "F.prelu": lambda x: F.prelu(x, x.new_tensor([0.25])),
    "F.rrelu": lambda x: F.rrelu(x, training=False),
}


class Functional(nn.Module):
    """Applies one functional activation in its own forward (a functional site)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "ReLU": nn.ReLU,
    "ReLU-inplace": lambda: nn.ReLU(inplace=True),
    "ReLU6": nn.ReLU6,
    "LeakyReLU": lambda: nn.LeakyReLU(0.1),
    "PReLU": nn.PReLU,
    "RReLU": nn.RReLU,
}


class Reference:
    """Stores every input of the watched activation modules and counts on the host.

    Independent of deadcheck's machinery: plain forward pre-hooks, full copies
    of every activation, counting in float64 numpy-free torch on the CPU.
    """

    def __init__(self, model: nn.Module, axes: dict[str, int] | None = None) -> None:
        self.inputs: dict[str, list[torch.Tensor]] = {}
        self.handles = []
        self.axes = axes or {}
        for name, module in model.named_modules():
            if isinstance(
                module, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, Functional)
            ):
                self.handles.append(module.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            self.inputs.setdefault(name, []).append(args[0].detach().clone().cpu())

        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def counts(self, name: str, axis: int) -> tuple[list[int], list[int], int]:
        """(zeros, nan, positions) per unit over every stored call.

        A unit that saw any NaN has all its positions counted as non-finite and
        none as zeros (the recorder does this per window of at most 2**24
        positions, which these small tests never exceed); infinities count by
        their sign.
        """
        units = self.inputs[name][0].shape[axis]
        flat = torch.cat(
            [x.movedim(axis, -1).reshape(-1, units).double() for x in self.inputs[name]]
        )
        zeros, nan = [], []
        for u in range(units):
            column = flat[:, u]
            finite = not bool(torch.isnan(column).any())
            zeros.append(int((column <= 0).sum()) if finite else 0)
            nan.append(0 if finite else column.numel())
        return zeros, nan, flat.shape[0]

    def check(self, site: Any) -> None:
        """Assert that a recorded site's counts equal this reference's, exactly."""
        zeros, nan, positions = self.counts(site.module, site.unit_axis)
        got = (list(site.zeros), list(site.nan), site.positions, site.units)
        assert got == (zeros, nan, positions, len(zeros)), site.name
        if site.saturated is not None:  # ReLU6: inputs at or above 6, NaN or not
            units = len(zeros)
            flat = torch.cat(
                [x.movedim(site.unit_axis, -1).reshape(-1, units) for x in self.inputs[site.module]]
            )
            assert list(site.saturated) == (flat >= 6).sum(0).tolist(), site.name


def value_reference(
    x: torch.Tensor,
    axis: int,
    clip: float = float("inf"),
    weight: float = 0.0,
    weights: torch.Tensor | None = None,
) -> tuple[list[float], list[float]]:
    """Per unit, brute force in float64: the |output| sum the value read gives, and the maximum.

    The sum is min(x, clip) over x > 0 plus |w| |x| over x < 0 (``weights`` per
    unit where given, else ``weight``; no negative part at all with neither).
    Both are NaN for a unit that saw a NaN, as in the kernels and pure torch.
    """
    columns = x.double().movedim(axis, -1).reshape(-1, x.shape[axis])
    nan = torch.isnan(columns).any(0)
    total = columns.clamp(0, clip).sum(0)
    if weights is not None or weight:
        w = weights.double().abs().reshape(-1) if weights is not None else abs(weight)
        total = total + (-columns.clamp(max=0)).sum(0) * w
    top = columns.amax(0)
    total[nan] = float("nan")
    top[nan] = float("nan")
    return total.tolist(), top.tolist()


def close_values(got: Sequence[float], want: Sequence[float], rtol: float = 1e-5) -> bool:
    """Equal NaN and infinities, the rest within ``rtol`` (sums add in another order)."""
    a = torch.tensor(list(got), dtype=torch.float64)
    b = torch.tensor(list(want), dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=1e-30, equal_nan=True))
