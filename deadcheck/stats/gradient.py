"""The gradient that reaches each unit's input through its activation, and units it starves.

The background argument is about gradients: a ReLU unit with a negative
input gets no gradient, and its incoming weights never move. Per unit this
keeps the mean of |dL/dz| that reaches the activation's input ``z`` through
the activation (the signal the unit's incoming weights learn from): the
output's gradient times the activation's slope at ``z``, summed in a
backward hook on the activation's output. A unit whose mean is at most
``thresholds.starved`` of its site's mean is *starved* (the gradient
counterpart of ReDo's dormant score; compare GraMa, Liu et al. 2025).

Opt-in (``record(model, gradients=True)``): it only counts passes that run
backward with gradients enabled, and keeps each activation's output alive
until then (autograd keeps most of them anyway). The slope at ``z`` is read
from the output for ReLU, ReLU6 and LeakyReLU with a positive slope, and from
the input for PReLU; other kinds (RReLU's random slopes, a non-positive fixed
slope) are not recorded. Passes that gradient checkpointing recomputes are
not counted in forward, so their gradients are not seen either. An output
changed in place after the activation (its signs gone by backward) makes the
site's gradient figures null rather than partial; the user's backward itself
is never broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.core.kinds import kind
from deadcheck.core.thresholds import Thresholds
from deadcheck.stats.base import (
    CallFacts,
    Counted,
    Figure,
    Judged,
    Options,
    Scalar,
    Stat,
    State,
    Value,
    share_finding,
    unit_share,
)


def _slope_of(call: CallFacts) -> Any:
    return getattr(call, "slope", None)


def _needs(call: CallFacts, options: Options) -> bool:
    if not options.gradients:
        return False
    row = kind(call.kind)
    if call.kind == "PReLU" or call.kind in ("ReLU", "ReLU6"):
        return True
    slope = _slope_of(call)
    return row.name == "LeakyReLU" and isinstance(slope, (int, float)) and slope > 0


def _broadcast(values: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def _update(
    totals: Mapping[str, torch.Tensor],
    call: CallFacts,
    x: torch.Tensor,
    output: torch.Tensor | None,
    axis: int,
    pre: torch.Tensor | None,
) -> None:
    y = x if output is None else output
    if not (torch.is_grad_enabled() and y.requires_grad):
        return
    grad_sum, grad_positions = totals["grad_abs_sum"], totals["grad_positions"]
    skipped = totals["grad_skipped"]
    slope = _slope_of(call)
    name = call.kind
    cap = call.saturate_at
    source = x if name == "PReLU" else y  # PReLU is counted on its input: the sign of z
    version = source._version
    ndim = y.ndim
    dims = [d for d in range(ndim) if d != axis]
    positions = y.numel() // max(1, y.shape[axis]) if ndim else 1

    def hook(grad: torch.Tensor) -> None:
        if source._version != version:  # changed in place after the call: its signs are gone
            skipped.add_(1)
            return
        try:
            _add(grad)
        except Exception:  # never break the user's backward; the site's figures say so
            skipped.add_(1)

    def _add(grad: torch.Tensor) -> None:
        with torch.no_grad():
            z_positive = source > 0
            if name == "PReLU":
                weight = slope.detach().to(grad.dtype) if isinstance(slope, torch.Tensor) else slope
                if isinstance(weight, torch.Tensor) and weight.numel() > 1:
                    weight = _broadcast(weight, ndim, axis)
                local = torch.where(
                    z_positive, torch.ones_like(grad), weight * torch.ones_like(grad)
                )
            elif name == "LeakyReLU":
                local = torch.where(z_positive, 1.0, float(slope)).to(grad.dtype)
            else:
                on = z_positive if cap is None else z_positive & (source < cap)
                local = on.to(grad.dtype)
            through = (grad * local).abs()
            grad_sum.add_(through.sum(dims, dtype=torch.float32) if dims else through.float())
            grad_positions.add_(positions)

    y.register_hook(hook)


def _host(raw: Mapping[str, tuple[float, ...]], positions: int) -> dict[str, tuple[Any, ...]]:
    if "grad_abs_sum" not in raw:
        return {}
    return {
        "grad_abs_sum": raw["grad_abs_sum"],
        "grad_positions": tuple(int(v) for v in raw["grad_positions"]),
        "grad_skipped": tuple(int(v) for v in raw["grad_skipped"]),
    }


def mean_abs_grad(site: Counted) -> tuple[float, ...] | None:
    """Per unit, the mean |dL/dz| through the activation.

    None when not recorded, when no backward ran, or when a backward could not
    be read (the activation's output was changed in place before backward):
    a partial mean would be wrong, so there is none.
    """
    sums, counts = site.values.get("grad_abs_sum"), site.values.get("grad_positions")
    if sums is None or counts is None or not any(counts) or any(site.values["grad_skipped"]):
        return None
    return tuple(s / n if n else 0.0 for s, n in zip(sums, counts, strict=True))


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    skipped = site.values.get("grad_skipped")
    unread = None if skipped is None else max(skipped, default=0)
    means = mean_abs_grad(site)
    if means is None:
        return {"mean_abs_grad": None, "starved_units": None, "gradient_unread": unread}
    layer = sum(means) / len(means) if means else 0.0
    starved = tuple(
        u for u, m in enumerate(means) if (m / layer if layer > 0 else 0.0) <= t.starved
    )
    return {"mean_abs_grad": means, "starved_units": starved, "gradient_unread": unread}


def starved_fraction(site: Judged) -> float | None:
    """The share of units the gradient starves (None without gradient statistics)."""
    return unit_share(site, "starved_units")


def _findings(site: Judged, t: Thresholds) -> list[Finding]:
    unread = site.figures["gradient_unread"]
    if unread:  # never silent: say why the site has no gradient figures
        return [
            Finding(
                Code.GRADIENT_UNREAD,
                Severity.INFO,
                site.name,
                f"{int(unread)} backward pass(es) could not be read (the activation's output was "
                "changed in place before backward, or its slopes did not fit its units): "
                "no gradient figures for this site",
            )
        ]
    return share_finding(
        Code.STARVED_UNITS,
        site,
        site.figures["starved_units"] or (),
        t,
        f"are starved: the mean |gradient| reaching their input is at most {t.starved:g} of "
        "the site's average",
    )


STAT = Stat(
    name="gradient",
    order=60,
    doc="per unit, the mean |dL/dz| through the activation (opt-in: gradients=True)",
    states=(
        State("grad_abs_sum", dtype="float64"),
        State("grad_positions"),
        State("grad_skipped"),
    ),
    needs=_needs,
    update=_update,
    host=_host,
    values=(Value("grad_abs_sum", "floats"), Value("grad_positions"), Value("grad_skipped")),
    figures=(
        Figure("mean_abs_grad", "floats", optional=True),
        Figure("starved_units", "units", optional=True),
        Figure("gradient_unread", "number", optional=True),
    ),
    judge=_judge,
    findings=_findings,
    scalars=(
        Scalar(
            "starved_fraction",
            "starved share of units, per site",
            starved_fraction,
            diff=True,
            label="starved share",
        ),
    ),
)
