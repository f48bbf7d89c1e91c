"""Activation modules a swap puts into a model, where torch's own do not fit.

``nn.PReLU`` applies its per-channel slopes along axis 1, which is right for
convolutions (N, C, ...) and wrong for every Linear output of rank 3 or more
(N, T, F): a transformer's FFN has its units on the last axis. :class:`AxisPReLU`
takes the axis. It subclasses ``nn.PReLU``, so its state dict (one ``weight``)
and everything that recognises a PReLU stay the same.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AxisPReLU"]


class AxisPReLU(nn.PReLU):
    """PReLU with one learned slope per unit along ``axis``: ``where(x > 0, x, slope[u] * x)``.

    ``axis`` may be negative (``-1``: the last axis, whatever the rank).
    With one shared slope, or where ``axis`` is 1, it is exactly ``nn.PReLU``.
    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        axis: int = 1,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_parameters, init, device=device, dtype=dtype)
        self.axis = axis

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.num_parameters == 1 or input.ndim < 2 or self.axis % input.ndim == 1:
            return F.prelu(input, self.weight)
        return F.prelu(input.movedim(self.axis, 1), self.weight).movedim(1, self.axis)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}, axis={self.axis}"
