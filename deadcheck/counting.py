"""Device-side counters for one activation site, and their one-shot move to the host.

Per call, a site maps the activation to an indicator, ``ceil(clamp(x, 0, 1))``:
1 for every positive value (however tiny), 0 for zero and below, NaN for NaN
(``sign`` would not do: torch gives ``sign(nan) == 0``). Summed per unit, it
counts each unit's positive positions exactly and turns NaN exactly when the
unit saw a NaN, so one read of the activation does both. The sums add
into float32 window accumulators (exact for counts below 2**24); a window is
settled into int64 counters before it could lose precision and whenever
results are read. Nothing waits for the device: positions and calls are
known from shapes and kept as Python ints, and zeros are worked out on the
host as positions minus the rest.

A unit that saw a NaN in a window has all its positions of that window
counted as non-finite, never as zeros. Infinities are counted by their sign:
``+inf`` is a positive (active) position, ``-inf`` an off one.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

import torch

from deadcheck.activations import ActivationCall
from deadcheck.statistics import SiteStats, Slope
from deadcheck.units import Layout, resolve_axis

__all__ = ["SiteCounter", "collect", "count_units"]

# float32 holds every integer below 2**24 exactly: the most positions one window may add up.
WINDOW = 1 << 24


# On the CPU, indicators are written chunk by chunk into one reused buffer small enough to
# stay in cache: measured 40% faster than a fresh activation-sized tensor per call.
# One buffer per thread, so models recorded in two threads at once never share it.
CHUNK = 1 << 20
_local = threading.local()


def _scratch_for(x: torch.Tensor) -> torch.Tensor:
    """A view of this thread's buffer shaped like ``x`` (``x.numel() <= CHUNK``).

    Views are kept per shape: slicing and viewing cost more than a small
    activation's whole count.
    """
    views: dict[tuple[torch.dtype, torch.Size], torch.Tensor] | None = getattr(
        _local, "views", None
    )
    if views is None:
        views = _local.views = {}
    key = (x.dtype, x.shape)
    view = views.get(key)
    if view is None:
        buffers: dict[torch.dtype, torch.Tensor] = _local.__dict__.setdefault("buffers", {})
        if len(views) >= 256:  # shapes that keep changing (sequence lengths) stay bounded
            views.clear()
        # Ordinary tensors even when first made under inference_mode, or later
        # training-mode calls could not write into them.
        with torch.inference_mode(False):
            buffer = buffers.get(x.dtype)
            if buffer is None or buffer.numel() < CHUNK:
                buffer = buffers[x.dtype] = torch.empty(CHUNK, dtype=x.dtype)
            view = views[key] = buffer[: x.numel()].view(x.shape)
    return view


def _in_scratch(x: torch.Tensor) -> bool:
    """Whether ``x`` is counted through this thread's chunk buffer (floating CPU tensors).

    Elsewhere (CUDA) a fresh indicator tensor is cheap: the caching allocator
    reuses memory, and the kernels are asynchronous.
    """
    return x.device.type == "cpu" and x.is_floating_point()


def _indicator_sums(
    x: torch.Tensor, dims: list[int], cap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per unit, float32 sums of [x > 0] (NaN where x had a NaN) and, with ``cap``, [x >= cap]."""
    x = x.detach()
    if not _in_scratch(x):
        on = x.clamp(0, 1)
        on = on.ceil_() if on.is_floating_point() else on.to(torch.float32)
        high = None if cap is None else (x >= cap).sum(dims, dtype=torch.float32)
        return on.sum(dims, dtype=torch.float32), high
    numel = x.numel()
    pieces = 1
    if numel > CHUNK:
        split = max(dims, key=lambda d: (x.shape[d] > 1, -d))  # the first splittable axis
        pieces = min(x.shape[split], -(-numel // CHUNK))
    if pieces > 1:
        total: torch.Tensor | None = None
        total_high: torch.Tensor | None = None
        for part in x.chunk(pieces, split):
            count, high = _indicator_sums(part, dims, cap)
            total = count if total is None else total.add_(count)
            if high is not None:
                total_high = high if total_high is None else total_high.add_(high)
        assert total is not None
        return total, total_high
    # A piece that no reduction axis can split further gets a buffer of its own.
    scratch = _scratch_for(x) if numel <= CHUNK else torch.empty_like(x)
    count = torch.clamp(x, 0, 1, out=scratch).ceil_().sum(dims, dtype=torch.float32)
    if cap is None:
        return count, None
    return count, torch.ge(x, cap, out=scratch).sum(dims, dtype=torch.float32)


def count_units(
    x: torch.Tensor,
    axis: int,
    *,
    cap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per unit along ``axis``: the number of positions with x > 0, and with x >= ``cap``.

    Both are float32, exact below 2**24 positions per unit; the first is NaN
    for a unit that saw a NaN.
    """
    if x.is_quantized:
        raise TypeError("quantized activations are not supported; record the float model")
    if x.ndim == 0:
        x = x.reshape(1)
    axis %= x.ndim
    dims = [d for d in range(x.ndim) if d != axis]
    if not dims:
        x = x.unsqueeze(0)
        dims = [0]
    return _indicator_sums(x, dims, cap)


def _window_parts(x: torch.Tensor, axis: int, positions: int) -> list[torch.Tensor]:
    """``x`` itself, or slices of it along a non-unit axis that each fit a float32 window."""
    if positions < WINDOW // 2:
        return [x]
    dims = [d for d in range(x.ndim) if d != axis and x.shape[d] > 1]
    if not dims:
        return [x]
    dim = max(dims, key=lambda d: x.shape[d])
    pieces = min(x.shape[dim], -(-positions // (WINDOW // 4)))
    parts: list[torch.Tensor] = []
    for piece in x.chunk(pieces, dim):
        parts += _window_parts(piece, axis, piece.numel() // max(1, x.shape[axis]))
    return parts


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
    positive: torch.Tensor
    nonfinite: torch.Tensor
    window_positive: torch.Tensor
    saturated: torch.Tensor | None
    window_saturated: torch.Tensor | None
    saturate_at: float | None
    slope: float | torch.Tensor | None
    shape: tuple[int, ...]
    caller: str | None = None
    positions: int = 0
    calls: int = 0
    window_positions: int = 0

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
            # torch applies a per-channel PReLU weight along axis 1, whatever the layout;
            # an AxisPReLU along its own axis.
            axis = call.axis if call.axis is not None else 1
        if axis is None:
            axis = resolve_axis(ndim, layout)
        elif not -ndim <= axis < ndim:
            raise ValueError(f"unit_axis {axis} is out of range for a rank-{x.ndim} activation")
        axis %= ndim
        units = int(x.shape[axis]) if x.ndim else 1
        # Counters must be ordinary tensors even when the first call runs under
        # inference_mode, or later training-mode updates would be refused.
        with torch.inference_mode(False):
            positive = torch.zeros(units, dtype=torch.int64, device=x.device)
            nonfinite = torch.zeros(units, dtype=torch.int64, device=x.device)
            window_positive = torch.zeros(units, dtype=torch.float32, device=x.device)
            saturated = window_saturated = None
            if call.saturate_at is not None:
                saturated = torch.zeros(units, dtype=torch.int64, device=x.device)
                window_saturated = torch.zeros(units, dtype=torch.float32, device=x.device)
        counter = cls(
            kind=call.kind,
            module=module,
            function=None if family else call.function,
            axis=axis,
            units=units,
            positive=positive,
            nonfinite=nonfinite,
            window_positive=window_positive,
            saturated=saturated,
            window_saturated=window_saturated,
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
        positions = x.numel() // units if units else 0
        for part in _window_parts(x, self.axis, positions):
            n = part.numel() // units if units else 0
            if self.window_positions + n >= WINDOW:
                self.settle()
            positives, high = count_units(part, self.axis, cap=self.saturate_at)
            self.window_positive += positives
            if high is not None and self.window_saturated is not None:
                self.window_saturated += high
            self.window_positions += n
        self.positions += positions
        self.calls += 1
        self.slope = call.slope.detach() if isinstance(call.slope, torch.Tensor) else call.slope
        self.shape = tuple(x.shape)

    def settle(self) -> None:
        """Move the window into the int64 counters (device work only, no sync)."""
        if not self.window_positions:
            return
        bad = torch.isnan(self.window_positive)
        self.positive += self.window_positive.masked_fill(bad, 0).to(torch.int64)
        self.nonfinite += bad.to(torch.int64) * self.window_positions
        self.window_positive.zero_()
        if self.saturated is not None and self.window_saturated is not None:
            self.saturated += self.window_saturated.to(torch.int64)
            self.window_saturated.zero_()
        self.window_positions = 0

    def reset(self) -> None:
        """Zero the counts, keep the site."""
        self.window_positive.zero_()
        self.window_positions = 0
        self.positive.zero_()
        self.nonfinite.zero_()
        if self.saturated is not None and self.window_saturated is not None:
            self.saturated.zero_()
            self.window_saturated.zero_()
        self.positions = 0
        self.calls = 0

    def int_parts(self) -> list[torch.Tensor]:
        """The integer counters, in the order :meth:`site_stats` reads them back."""
        parts = [self.positive, self.nonfinite]
        if self.saturated is not None:
            parts.append(self.saturated)
        return parts

    def site_stats(self, name: str, ints: list[int], slope_values: list[float] | None) -> SiteStats:
        """Frozen stats from host values: ``ints`` is positions, calls, then :meth:`int_parts`."""
        positions, calls, rest = ints[0], ints[1], ints[2:]
        u = self.units
        positive, nonfinite = rest[:u], tuple(rest[u : 2 * u])
        zeros = tuple(positions - p - n for p, n in zip(positive, nonfinite, strict=True))
        saturated = tuple(rest[2 * u : 3 * u]) if self.saturated is not None else None
        slope: Slope
        if slope_values is not None:
            slope = slope_values[0] if len(slope_values) == 1 else tuple(slope_values)
        else:
            slope = self.slope if not isinstance(self.slope, torch.Tensor) else None
        return SiteStats(
            name=name,
            kind=self.kind,
            module=self.module,
            function=self.function,
            unit_axis=self.axis,
            units=self.units,
            calls=calls,
            positions=positions,
            zeros=zeros,
            nonfinite=nonfinite,
            saturated=saturated,
            slope=slope,
            shape=self.shape,
            caller=self.caller,
        )


def _layout_checksum(named: list[tuple[str, SiteCounter]]) -> int:
    text = ";".join(f"{name}/{c.units}/{c.saturated is not None}" for name, c in named)
    return zlib.crc32(text.encode()) % (1 << 20)


def collect(
    named: list[tuple[str, SiteCounter]], samples: int, *, reduce: bool = False
) -> tuple[list[SiteStats], int]:
    """Move every counter to the host in one transfer; with ``reduce``, sum over all ranks first.

    The integer counters of all sites, with positions, calls and the sample
    count, are packed into one flat int64 tensor, so a distributed reduction
    is a single ``all_reduce``. A checksum of the site layout travels with it
    (as c and c squared: their sums agree only when every rank has the same
    sites), so ranks that saw different sites fail loudly instead of adding
    unrelated counts.
    """
    device = named[0][1].positive.device if named else torch.device("cpu")
    for _, counter in named:
        counter.settle()
    checksum = _layout_checksum(named)
    parts = [torch.tensor([samples, checksum, checksum * checksum], dtype=torch.int64)]
    for _, counter in named:
        parts.append(torch.tensor([counter.positions, counter.calls], dtype=torch.int64))
        parts.extend(counter.int_parts())
    flat = torch.cat([p.to(device) for p in parts])
    if reduce:
        from deadcheck.distributed import all_reduce_sum

        flat = all_reduce_sum(flat)
    values = flat.cpu().tolist()
    if reduce:
        total, squares = values[1], values[2]
        import torch.distributed as dist

        world = dist.get_world_size()
        if world * squares != total * total:
            raise ValueError(
                "ranks recorded different sites (different models or control flow): "
                "their counts cannot be merged"
            )
    slopes = [c.slope.reshape(-1) for _, c in named if isinstance(c.slope, torch.Tensor)]
    slope_host: list[float] = (
        torch.cat([t.to(device=device, dtype=torch.float64) for t in slopes]).cpu().tolist()
        if slopes
        else []
    )
    sites: list[SiteStats] = []
    offset, slope_offset = 3, 0
    for name, counter in named:
        n = 2 + sum(p.numel() for p in counter.int_parts())
        slope_values = None
        if isinstance(counter.slope, torch.Tensor):
            k = counter.slope.numel()
            slope_values = slope_host[slope_offset : slope_offset + k]
            slope_offset += k
        sites.append(counter.site_stats(name, values[offset : offset + n], slope_values))
        offset += n
    return sites, values[0]
