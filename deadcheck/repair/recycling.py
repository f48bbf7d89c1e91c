"""Recycle dormant units: re-initialise what feeds them, zero what reads them (ReDo).

A repair that keeps the architecture, for continual and reinforcement
learning, where units go silent over time and the network loses plasticity
(Sokar et al., ICML 2023; Dohare et al., Nature 2024). For each chosen site:

* the **producer** (the Linear or Conv whose output reaches the activation,
  possibly through a BatchNorm) gets the rows of the dormant units from the
  layer's own default initialisation; the BatchNorm's channels are reset;
* every **consumer** (the Linear or Conv layers that read the activation)
  gets the columns of those units zeroed, so the fresh units start without
  disturbing what the network computes;
* the optimizer state of exactly those entries is reset: momentum and Adam's
  first moment to zero, Adam's second moment to the mean of the tensor's other
  entries. Zeroing the second moment too would make the first update about
  lr * (1 - beta1) / sqrt(1 - beta2), some 3 * lr, large enough to kill the
  fresh unit again (measured in the issue that asked for this: 0.79 accuracy on
  the last tasks of the continual benchmark against 0.93).

Producers and consumers are found by :mod:`deadcheck.repair.chains` (a
torch.fx graph of the model, else of the site's caller, with defaulted flags
fixed). Where the structure is not a producer -> activation -> consumers
chain through ops that keep units apart (a residual add, a LayerNorm, a
consumer that is not a Linear or Conv), the site is skipped with the reason:
recycling wrongly would damage the model, so it never guesses. A BatchNorm
after the activation gets the recycled channels' statistics reset.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn

from deadcheck.core.errors import InputError
from deadcheck.core.jsontext import dumps
from deadcheck.core.kinds import kind
from deadcheck.repair.chains import Chain, Graphs, find_chain, locate
from deadcheck.repair.folder import write_repair
from deadcheck.results.report import Report
from deadcheck.results.stats import Stats

__all__ = ["DEAD_NOTE", "RecycleResult", "recycle", "save_recycle"]


@dataclass(frozen=True)
class RecycleResult:
    """What :func:`recycle` did: units recycled per site, and sites skipped with the reason."""

    recycled: dict[str, tuple[int, ...]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: How units were chosen where it was not the dormant score (dead units, per site).
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def units(self) -> int:
        return sum(len(u) for u in self.recycled.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "deadcheck.recycle/1",
            "recycled": {site: list(units) for site, units in self.recycled.items()},
            "skipped": dict(self.skipped),
            "notes": dict(self.notes),
        }


#: Why a site without dormant statistics is judged by its dead units.
DEAD_NOTE = (
    "no dormant statistics: its dead units were chosen (a dead unit's mean |output| is "
    "exactly 0, so it is dormant at any tau); record with dormant_sums=True for the others"
)


def _dormant_units(
    source: Stats | Report, tau: float
) -> tuple[list[tuple[Any, tuple[int, ...]]], dict[str, str], dict[str, str]]:
    chosen: list[tuple[Any, tuple[int, ...]]] = []
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    for site in source.sites:
        mean_abs = site.mean_abs
        row = kind(site.kind)
        if mean_abs is None and row.family and not row.leaky:
            notes[site.name] = DEAD_NOTE  # ReLU, ReLU6: a dead unit outputs exactly zero
            if site.dead_units:
                chosen.append((site, tuple(site.dead_units)))
            continue
        if mean_abs is None:
            skipped[site.name] = "no dormant statistics: record with dormant_sums=True"
            continue
        layer = sum(mean_abs) / len(mean_abs) if mean_abs else 0.0
        units = tuple(u for u, m in enumerate(mean_abs) if (m / layer if layer > 0 else 0.0) <= tau)
        if units:
            chosen.append((site, units))
    return chosen, skipped, notes


def _reset_optimizer(optimizer: Any, tensor: torch.Tensor, index: Any) -> None:
    """Reset the optimizer state of ``tensor[index]``; other entries stay bit for bit."""
    state = optimizer.state.get(tensor) if optimizer is not None else None
    if not state:
        return
    for key in ("exp_avg", "momentum_buffer"):
        if isinstance(state.get(key), torch.Tensor):
            state[key][index] = 0
    for key in ("exp_avg_sq", "max_exp_avg_sq"):
        second = state.get(key)
        if isinstance(second, torch.Tensor):
            keep = torch.ones_like(second, dtype=torch.bool)
            keep[index] = False
            fill = second[keep].mean() if keep.any() else second.new_zeros(())
            second[index] = fill


def _unit_columns(units: tuple[int, ...], span: int) -> torch.Tensor:
    """The consumer columns that read ``units`` (``span`` per unit after a flatten)."""
    return torch.tensor([u * span + k for u in units for k in range(span)], dtype=torch.long)


@torch.no_grad()
def _reset_norm(norm: nn.Module, rows: torch.Tensor, optimizer: Any) -> None:
    for name, value in (("weight", 1.0), ("bias", 0.0)):
        param = getattr(norm, name, None)
        if isinstance(param, torch.Tensor):
            param[rows] = value
            _reset_optimizer(optimizer, param, rows)
    for name, value in (("running_mean", 0.0), ("running_var", 1.0)):
        buffer = getattr(norm, name, None)
        if isinstance(buffer, torch.Tensor):
            buffer[rows] = value


@torch.no_grad()
def _recycle_units(chain: Chain, units: tuple[int, ...], optimizer: Any) -> None:
    rows = torch.tensor(units, dtype=torch.long)
    fresh = copy.deepcopy(chain.producer)
    fresh.reset_parameters()  # type: ignore[operator]  # the layer's own default initialisation
    for name in ("weight", "bias"):
        param = getattr(chain.producer, name, None)
        if isinstance(param, torch.Tensor):
            param[rows] = getattr(fresh, name)[rows].to(param)
            _reset_optimizer(optimizer, param, rows)
    for norm in (chain.norm, *chain.norms_after):
        if norm is not None:
            _reset_norm(norm, rows, optimizer)
    for consumer in chain.consumers:
        weight = consumer.module.weight
        assert isinstance(weight, torch.Tensor)
        columns = (slice(None), _unit_columns(units, consumer.span))
        weight[columns] = 0
        _reset_optimizer(optimizer, weight, columns)


def recycle(
    model: nn.Module,
    stats_or_report: Stats | Report,
    *,
    tau: float = 0.1,
    optimizer: Any = None,
    sites: Iterable[str] | None = None,
) -> RecycleResult:
    """Recycle the tau-dormant units of ``model`` in place (ReDo); see the module doc.

    ``stats_or_report`` should carry dormant statistics (``record(..., dormant_sums=True)``
    or ``activations="all"``); a ReLU or ReLU6 site without them is judged by its
    dead units, which are dormant at any tau, and ``notes`` says so. Stats with no
    site at all raise InputError. ``sites`` limits recycling to those site names.
    Returns which units were recycled per site, and which sites were skipped and why.
    """
    if not 0.0 <= tau < 1.0:
        raise InputError(f"tau must be in [0, 1), got {tau}", option="tau")
    if not stats_or_report.sites:
        raise InputError(
            "activations: no activation site was recorded, so there is nothing to recycle "
            "(GELU, SiLU and other activations are sites only with activations all)",
            option="activations",
        )
    chosen, skipped, notes = _dormant_units(stats_or_report, tau)
    if len(skipped) == len(stats_or_report.sites):
        names = ", ".join(list(skipped)[:5]) + (", ..." if len(skipped) > 5 else "")
        raise InputError(
            f"dormant_sums: no site has dormant statistics ({names}), so no unit can be "
            "judged dormant: record with dormant_sums=True (the command line: --dormant TAU)",
            option="dormant_sums",
        )
    if sites is not None:
        wanted = set(sites)
        chosen = [(site, units) for site, units in chosen if site.name in wanted]
    if not chosen:
        return RecycleResult({}, skipped, notes)
    graphs = Graphs(model)
    recycled: dict[str, tuple[int, ...]] = {}
    for site, units in chosen:
        located = locate(graphs, site.id)
        if isinstance(located, str):
            skipped[site.name] = located
            continue
        chain = find_chain(
            located, units=site.units, rank=len(site.shape) or 2, unit_axis=site.unit_axis
        )
        if isinstance(chain, str):
            skipped[site.name] = chain
            continue
        _recycle_units(chain, units, optimizer)
        recycled[site.name] = units
    return RecycleResult(recycled, skipped, notes)


def save_recycle(
    model: nn.Module,
    result: RecycleResult,
    folder: str | Path,
    *,
    tau: float,
    target: str | None = None,
    force: bool = False,
) -> Path:
    """Write a recycled model into ``folder``: its state dict and ``recycled.json``.

    ``recycled.json`` is :meth:`RecycleResult.to_dict` with the target and tau.
    """
    record = dumps({**result.to_dict(), "target": target, "tau": tau})
    return write_repair(folder, model, {"recycled.json": record.encode()}, force=force)
