"""Which axis of an activation holds its units (channels or features).

The rank alone cannot tell: a rank-3 tensor is (N, C, L) after a Conv1d and
(N, T, F) after a Linear. What produced the activation's input decides, so the
recorder remembers the kind of the last module that ran, and this module turns
that into an axis. Every rule that picks a unit axis lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

__all__ = [
    "Layout",
    "Producer",
    "UnitAxisError",
    "layout_of",
    "pick_layout",
    "resolve_axis",
    "unit_axis",
    "unit_axis_and_source",
]

Layout = Literal["channel", "feature"]


class UnitAxisError(ValueError):
    """A unit axis the user gave does not fit the activation: ``axis`` is it, ``why`` says how."""

    def __init__(self, axis: int, why: str) -> None:
        super().__init__(f"unit_axis {axis} is {why}")
        self.axis = axis
        self.why = why


#: One output of a layout-deciding module in this pass: its shape, layout, and module key.
Producer = tuple[torch.Size, Layout, int]

# Modules whose output carries units on axis 1 (N, C, ...).
_CHANNEL_FIRST: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
)

# Modules whose output carries units on the last axis (..., F).
_FEATURE_LAST: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.LayerNorm,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.MultiheadAttention,
    nn.RNNBase,
)
if hasattr(nn, "RMSNorm"):
    _FEATURE_LAST = (*_FEATURE_LAST, nn.RMSNorm)


def layout_of(module: nn.Module) -> Layout | None:
    """The unit layout a module's output has, or None when it does not decide it."""
    if isinstance(module, _CHANNEL_FIRST):
        return "channel"
    if isinstance(module, _FEATURE_LAST):
        return "feature"
    return None


def pick_layout(
    x: torch.Tensor, produced: Sequence[Producer], describe: Callable[[int], str]
) -> tuple[Layout | None, str]:
    """The layout of the module whose output ``x`` is, and where it came from, in words.

    The newest output of this pass with ``x``'s shape decides: the module that
    made the tensor the activation received, not merely the last one to run (a
    squeeze-excitation block's ``nn.Linear`` runs after the convolution whose
    output it scales; a LayerNorm between two transposes has the other shape).
    With no output of that shape, the rank decides (:func:`resolve_axis`),
    and the words say so.
    """
    shape = x.shape
    for out_shape, layout, key in reversed(produced):
        if out_shape == shape:
            return layout, f"the output of {describe(key)}"
    return None, (
        f"assumed from the rank: no module's output this pass had shape {tuple(shape)}, "
        + ("so axis 1 of (N, C, ...)" if x.ndim >= 4 else "so the last axis (..., F)")
    )


def resolve_axis(ndim: int, layout: Layout | None) -> int:
    """The non-negative unit axis for a tensor of rank ``ndim``.

    Without a producer to go by, rank 4 and 5 are taken as images and volumes
    (N, C, ...) and lower ranks as features on the last axis.
    """
    if ndim <= 1:
        return 0
    if layout == "channel":
        return 1
    if layout == "feature":
        return ndim - 1
    return 1 if ndim >= 4 else ndim - 1


def unit_axis(
    ndim: int,
    layout: Layout | None,
    *,
    override: int | None = None,
    weight_axis: int | None = None,
) -> int:
    """The non-negative unit axis of a rank-``ndim`` activation: every rule in one place.

    In order: the user's ``override`` (ValueError when out of range); the axis a
    per-unit weight acts on (a per-channel PReLU: 1 for ``nn.PReLU``, its own for
    ``AxisPReLU``); else the producer's ``layout`` (:func:`resolve_axis`).
    """
    return unit_axis_and_source(ndim, layout, override=override, weight_axis=weight_axis)[0]


def unit_axis_and_source(
    ndim: int,
    layout: Layout | None,
    *,
    override: int | None = None,
    weight_axis: int | None = None,
    producer: str | None = None,
) -> tuple[int, str | None]:
    """:func:`unit_axis`, and in words which rule decided it (``producer``: the layout's)."""
    rank = max(ndim, 1)
    if override is not None:
        if not -rank <= override < rank:
            raise UnitAxisError(override, f"out of range for a rank-{ndim} activation")
        return override % rank, "given (unit_axis)"
    if ndim <= 1:
        return 0, None  # one unit axis or none: nothing to decide
    if weight_axis is not None:
        return weight_axis % rank, "the axis its per-unit PReLU slope acts on"
    return resolve_axis(rank, layout), producer
