"""Device-side counters for one activation site, and their one-shot move to the host.

Per call, a site adds (per unit) the positions whose input is <= 0, the ones
that are NaN or infinite, and for ReLU6 the ones at or above 6. Everything
stays an integer tensor on the activation's device; positions and calls are
known from shapes and kept as Python ints, so counting never waits for the
device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deadcheck.activations import ActivationCall
from deadcheck.statistics import SiteStats, Slope
from deadcheck.units import Layout, resolve_axis

__all__ = ["SiteCounter", "count_units"]


def count_units(
    x: torch.Tensor, axis: int, saturate_at: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per unit along ``axis``: positions <= 0, positions not finite, positions >= saturate_at."""
    if x.ndim == 0:
        x = x.reshape(1)
    dims = [d for d in range(x.ndim) if d != axis]
    zeros = (x <= 0).sum(dims, dtype=torch.int64) if dims else (x <= 0).long()
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        nonfinite = bad.sum(dims, dtype=torch.int64) if dims else bad.long()
    else:
        nonfinite = torch.zeros_like(zeros)
    saturated = None
    if saturate_at is not None:
        high = x >= saturate_at
        saturated = high.sum(dims, dtype=torch.int64) if dims else high.long()
    return zeros, nonfinite, saturated


def _per_channel_prelu(call: ActivationCall) -> bool:
    return isinstance(call.slope, torch.Tensor) and call.slope.numel() > 1


@dataclass
class SiteCounter:
    """Running counts for one site (module path + occurrence in the forward pass)."""

    kind: str
    module: str
    function: str | None
    axis: int
    units: int
    zeros: torch.Tensor
    nonfinite: torch.Tensor
    saturated: torch.Tensor | None
    saturate_at: float | None
    slope: float | torch.Tensor | None
    shape: tuple[int, ...]
    caller: str | None = None
    positions: int = 0
    calls: int = 0

    @classmethod
    def create(
        cls,
        call: ActivationCall,
        x: torch.Tensor,
        *,
        layout: Layout | None,
        axis: int | None,
        module: str,
        family: bool,
        caller: str | None = None,
    ) -> SiteCounter:
        """A counter shaped for ``x``, already holding the counts of ``x``."""
        if x.is_quantized:
            raise TypeError("quantized activations are not supported; record the float model")
        ndim = max(x.ndim, 1)
        if axis is None and _per_channel_prelu(call) and ndim >= 2:
            axis = 1  # torch applies a per-channel PReLU weight along axis 1, whatever the layout
        if axis is None:
            axis = resolve_axis(ndim, layout)
        elif not -ndim <= axis < ndim:
            raise ValueError(f"unit_axis {axis} is out of range for a rank-{x.ndim} activation")
        axis %= ndim
        units = int(x.shape[axis]) if x.ndim else 1
        # Counters must be ordinary tensors even when the first call runs under
        # inference_mode, or later training-mode updates would be refused.
        with torch.inference_mode(False):
            zeros = torch.zeros(units, dtype=torch.int64, device=x.device)
            nonfinite = torch.zeros(units, dtype=torch.int64, device=x.device)
            saturated = (
                torch.zeros(units, dtype=torch.int64, device=x.device)
                if call.saturate_at is not None
                else None
            )
        counter = cls(
            kind=call.kind,
            module=module,
            function=None if family else call.function,
            axis=axis,
            units=units,
            zeros=zeros,
            nonfinite=nonfinite,
            saturated=saturated,
            saturate_at=call.saturate_at,
            slope=None,
            shape=tuple(x.shape),
            caller=caller,
        )
        counter.add(call, x)
        return counter

    def add(self, call: ActivationCall, x: torch.Tensor) -> None:
        """Add the counts of one more call."""
        units = int(x.shape[self.axis]) if x.ndim else 1
        if (x.ndim and self.axis >= x.ndim) or units != self.units:
            raise ValueError(
                f"this site had {self.units} units on axis {self.axis} and now sees shape "
                f"{tuple(x.shape)}; pass unit_axis= for it"
            )
        zeros, nonfinite, saturated = count_units(x, self.axis, self.saturate_at)
        self.zeros += zeros
        self.nonfinite += nonfinite
        if saturated is not None and self.saturated is not None:
            self.saturated += saturated
        self.positions += x.numel() // units if units else 0
        self.calls += 1
        self.slope = call.slope.detach() if isinstance(call.slope, torch.Tensor) else call.slope
        self.shape = tuple(x.shape)

    def reset(self) -> None:
        """Zero the counts, keep the site."""
        self.zeros.zero_()
        self.nonfinite.zero_()
        if self.saturated is not None:
            self.saturated.zero_()
        self.positions = 0
        self.calls = 0

    def flat(self) -> list[torch.Tensor]:
        """The tensors to move to the host, in a fixed order (see :meth:`site_stats`)."""
        parts = [self.zeros, self.nonfinite]
        if self.saturated is not None:
            parts.append(self.saturated)
        if isinstance(self.slope, torch.Tensor):
            parts.append(self.slope.reshape(-1).to(torch.float64))
        return parts

    @staticmethod
    def to_host(counters: list[SiteCounter]) -> list[list[list[float]]]:
        """Each counter's :meth:`flat` tensors as lists, with one transfer per device."""
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for counter in counters:
            for part in counter.flat():
                by_device.setdefault(part.device, []).append(part.to(torch.float64))
        host: dict[torch.device, list[float]] = {
            device: torch.cat(parts).cpu().tolist() if parts else []
            for device, parts in by_device.items()
        }
        offsets = dict.fromkeys(host, 0)
        out: list[list[list[float]]] = []
        for counter in counters:
            pieces = []
            for part in counter.flat():
                start = offsets[part.device]
                n = part.numel()
                pieces.append(host[part.device][start : start + n])
                offsets[part.device] = start + n
            out.append(pieces)
        return out

    def site_stats(self, name: str, host: list[list[float]]) -> SiteStats:
        """Frozen stats from this counter's host copy."""
        zeros = tuple(int(v) for v in host[0])
        nonfinite = tuple(int(v) for v in host[1])
        rest = host[2:]
        saturated = None
        if self.saturated is not None:
            saturated = tuple(int(v) for v in rest[0])
            rest = rest[1:]
        slope: Slope
        if isinstance(self.slope, torch.Tensor):
            values = tuple(float(v) for v in rest[0])
            slope = values[0] if len(values) == 1 else values
        else:
            slope = self.slope
        return SiteStats(
            name=name,
            kind=self.kind,
            module=self.module,
            function=self.function,
            unit_axis=self.axis,
            units=self.units,
            calls=self.calls,
            positions=self.positions,
            zeros=zeros,
            nonfinite=nonfinite,
            saturated=saturated,
            slope=slope,
            shape=self.shape,
            caller=self.caller,
        )
