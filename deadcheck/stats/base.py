"""What a per-unit statistic is: one declaration that recording, reports and output loop over.

A :class:`Stat` says, in one file of :mod:`deadcheck.stats`:

* on the device: the per-unit tensors (:class:`State`) it keeps, their
  initial value and how ranks merge them (sum, max, min), and how one
  activation call updates them (:meth:`Stat.update`; a state with a ``read``
  is a count summed by the shared one-read counting pass instead, on the
  compiled kernel where it runs);
* on the host: the per-unit values it gives :class:`~deadcheck.results.stats.SiteStats`
  (:meth:`Stat.host`), the figures it gives a report's site (:meth:`Stat.figures`,
  declared as :class:`Figure` so JSON is written and read back from the
  declaration), and its findings;
* for output: its table and Markdown columns, TensorBoard scalars and
  histograms, and whether ``diff`` compares a scalar.

Reset, settle, pack, reduce and unpack (:mod:`deadcheck.recording.counting`),
JSON (:mod:`deadcheck.results`), columns (:mod:`deadcheck.results.display`)
and TensorBoard loop over the declarations; none names a statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

import torch

from deadcheck.core.checks import check, counts, floats, is_number, is_share
from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.core.thresholds import Thresholds
from deadcheck.core.words import percent, units_text

__all__ = [
    "Column",
    "Counted",
    "Figure",
    "Histogram",
    "Judged",
    "Options",
    "Read",
    "Reduce",
    "Scalar",
    "Stat",
    "State",
    "Value",
    "share_finding",
    "unit_share",
]


class Reduce(str, Enum):
    """How a state's per-unit totals merge across calls' windows and ranks."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"


class Read(str, Enum):
    """Which indicator of the one counting read a windowed count sums per unit."""

    #: [x > 0] (NaN where x is NaN, which is how NaN is found in the same read).
    POSITIVE = "positive"
    #: [x >= the site's cap] (ReLU6's 6).
    AT_CAP = "at_cap"
    #: |output|, summed in float64 (from the input where the read reads it).
    ABS_SUM = "abs_sum"
    #: The value read (the input where intact, else the output): a running maximum.
    MAX = "max"
    #: The calls whose value read read the output (the input was overwritten in place,
    #: or the kind is read on its output): counted on the host, added at settling, so
    #: that an in-place activation costs no device operation per call for it.
    OUTPUT_CALLS = "output_calls"

    @property
    def windowed(self) -> bool:
        """A count summed into a float32 window and settled into an int64 total."""
        return self in (Read.POSITIVE, Read.AT_CAP)


_DTYPES = {"int64": torch.int64, "float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class State:
    """One per-unit tensor a statistic keeps on the device.

    A ``read`` state is filled by the shared counting read: a count sums its
    indicator into a float32 window (exact below 2**24 positions), settled
    into this int64 total; a value read (``ABS_SUM``, ``MAX``) goes straight
    into this float64 total; ``OUTPUT_CALLS`` is counted on the host and added
    into this int64 total when the site settles. Others are updated by their statistic's
    :meth:`Stat.update`.
    ``initial`` is what a reset fills in (``-inf`` for a running maximum).
    """

    name: str
    dtype: Literal["int64", "float64", "float32"] = "int64"
    reduce: Reduce = Reduce.SUM
    initial: float = 0.0
    read: Read | None = None

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


class Options(Protocol):
    """What a statistic may ask of the recording options (see ``RecordingOptions``)."""

    @property
    def keeps_sums(self) -> bool: ...

    @property
    def margins(self) -> bool: ...

    @property
    def gradients(self) -> bool: ...


class CallFacts(Protocol):
    """What a statistic may ask of one activation call."""

    @property
    def kind(self) -> str: ...

    @property
    def saturate_at(self) -> float | None: ...


class Counted(Protocol):
    """A site's host-side counts, as :meth:`Stat.figures` reads them (``SiteStats``)."""

    @property
    def kind(self) -> str: ...

    @property
    def units(self) -> int: ...

    @property
    def positions(self) -> int: ...

    @property
    def family(self) -> bool: ...

    @property
    def values(self) -> Mapping[str, Any]: ...

    @property
    def slope(self) -> float | tuple[float, ...] | None: ...


class Judged(Protocol):
    """A report's site, as findings, columns and charts read it (``SiteReport``)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def units(self) -> int: ...

    @property
    def positions(self) -> int: ...

    @property
    def family(self) -> bool: ...

    @property
    def figures(self) -> Mapping[str, Any]: ...


#: How a value or figure is written to JSON and checked when read back.
Form = Literal["counts", "floats", "optional_floats", "units", "share", "number", "slope"]


def _read_form(form: Form, value: Any, where: str) -> Any:
    if form in ("counts", "units"):
        return counts(value, where)
    if form == "floats":
        return floats(value, where)
    if form == "optional_floats":  # per unit: a number, or null where it is not known
        check(isinstance(value, list), f"{where} is not a list")
        return tuple(None if v is None else floats([v], where)[0] for v in value)
    if form == "share":
        check(is_share(value), f"{where} is not a share in [0, 1]")
        return float(value)
    if form == "number":
        check(is_number(value), f"{where} is not a number")
        return float(value)
    if isinstance(value, list):  # slope: one per unit, one shared, or none
        return floats(value, where)
    check(value is None or is_number(value), f"{where} is not a number")
    return None if value is None else float(value)


def _write(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Value:
    """A per-unit value a statistic gives ``SiteStats`` (a key of its ``values`` and JSON)."""

    key: str
    form: Form = "counts"

    def write(self, value: Any) -> Any:
        return _write(value)


@dataclass(frozen=True)
class Figure:
    """A figure a statistic gives a report's site: its JSON key and form.

    ``optional`` figures are ``None`` (JSON ``null``) where the statistic was
    not recorded (dormant figures without dormant sums).
    """

    key: str
    form: Form
    optional: bool = False

    def write(self, value: Any) -> Any:
        return _write(value)

    def read(self, data: Mapping[str, Any], where: str) -> Any:
        value = data.get(self.key)
        if value is None and (self.optional or self.form == "slope"):
            return None
        if value is None and self.form in ("counts", "units"):
            return ()
        return _read_form(self.form, value, f"{where}: {self.key}")


@dataclass(frozen=True)
class Column:
    """A column of the table and the Markdown site list, placed by ``order``.

    ``cell`` gives the text for a site; ``shown`` whether the column appears
    for these sites at all; ``legend`` a line under the table saying what it
    means. ``text`` cells (free text such as a slope range) are escaped in
    Markdown; figures are not. ``cut`` shortens a table cell to that many
    characters.
    """

    header: str
    markdown: str
    width: int
    order: int
    cell: Callable[[Judged], str]
    align: Literal["<", ">"] = ">"
    pad: int = 0
    text: bool = False
    cut: int | None = None
    shown: Callable[[Sequence[Judged]], bool] = lambda sites: True
    legend: Callable[[Thresholds], str] | None = None


@dataclass(frozen=True)
class Scalar:
    """One number per site, charted over time (``deadcheck/<key>/<site>`` in TensorBoard).

    ``title`` names the chart in the dashboard's layout; ``diff`` makes
    ``deadcheck diff`` compare it between two reports, under ``label``.
    """

    key: str
    title: str
    value: Callable[[Judged], float | None]
    diff: bool = False
    label: str = ""


@dataclass(frozen=True)
class Histogram:
    """Per-unit values shown as a TensorBoard histogram (``deadcheck/<key>/<site>``)."""

    key: str
    values: Callable[[Judged], Sequence[float]]
    #: Fixed bin edges (low, high, count), or None for TensorBoard's own.
    bins: tuple[float, float, int] | None = None


#: Per call, for states without a ``read``: (totals, call, x, output, unit axis, pre), where
#: ``pre`` is the activation's input while still intact (None: an in-place call overwrote it).
Update = Callable[
    [
        Mapping[str, torch.Tensor],
        CallFacts,
        torch.Tensor,
        torch.Tensor | None,
        int,
        torch.Tensor | None,
    ],
    None,
]
#: When the count windows settle: (totals, windows, positions in the window).
Settle = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], int], None]
#: Per-unit host values from the states' totals: (totals as tuples, positions) -> values.
Host = Callable[[Mapping[str, tuple[float, ...]], int], dict[str, tuple[Any, ...]]]


def _no_host(raw: Mapping[str, tuple[float, ...]], positions: int) -> dict[str, tuple[Any, ...]]:
    return {}


def unit_share(site: Judged, key: str) -> float | None:
    """The share of the site's units listed under figure ``key`` (None: not recorded)."""
    units = site.figures[key]
    if units is None:
        return None
    return len(units) / site.units if site.units else 0.0


def share_finding(
    code: Code, site: Judged, units: tuple[int, ...], t: Thresholds, says: str
) -> list[Finding]:
    """ "k of n units (p%) ``says`` (units ...)": info, a warning once the share reaches dying."""
    if not units:
        return []
    share = len(units) / site.units
    return [
        Finding(
            code,
            Severity.WARNING if share >= t.dying else Severity.INFO,
            site.name,
            f"{len(units)} of {site.units} units ({percent(share)}) {says} "
            f"(units {units_text(units)})",
            units,
        )
    ]


def _no_findings(site: Judged, thresholds: Thresholds) -> list[Finding]:
    return []


@dataclass(frozen=True)
class Stat:
    """One statistic, declared once (as torchmetrics' ``add_state`` and captum's ``Stat``).

    ``order`` places it among the others (findings, columns and JSON follow
    it). ``needs`` says whether a site keeps it, from the site's first call
    and the recording options. The callables have defaults, so a statistic
    declares only what it has.
    """

    name: str
    order: int
    doc: str
    states: tuple[State, ...] = ()
    needs: Callable[[CallFacts, Options], bool] = lambda call, options: True
    update: Update | None = None
    settle: Settle | None = None
    host: Host = _no_host
    values: tuple[Value, ...] = ()
    figures: tuple[Figure, ...] = ()
    #: The figures of a site from its counts: (counted site, thresholds) -> figures.
    judge: Callable[[Counted, Thresholds], dict[str, Any]] = lambda site, t: {}
    findings: Callable[[Judged, Thresholds], list[Finding]] = _no_findings
    columns: tuple[Column, ...] = ()
    scalars: tuple[Scalar, ...] = ()
    histograms: tuple[Histogram, ...] = field(default=())
