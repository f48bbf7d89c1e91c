"""Judge recorded counts: which units are dead, which layers are dying, which slopes are off.

:func:`analyze` is pure: :class:`~deadcheck.statistics.Stats` in, :class:`Report`
out. Thresholds are explicit keyword arguments with documented defaults, so a
report can always be re-derived from the same stats with other thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from deadcheck.errors import InputError
from deadcheck.escaping import md_code, md_text
from deadcheck.kinds import KINDS, kind
from deadcheck.statistics import SiteId, SiteStats, Slope, Stats

__all__ = [
    "SCHEMA",
    "SEVERITIES",
    "Finding",
    "Report",
    "SiteReport",
    "Thresholds",
    "analyze",
    "findings_markdown",
    "percent",
    "worst",
]

SCHEMA = "deadcheck.report/1"

Severity = Literal["info", "warning", "error"]
#: Severities from mildest to worst.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(f"not a deadcheck report: {message}")


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (a 5,000-digit integer is not one either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def is_share(value: Any) -> bool:
    """A :func:`is_number` in [0, 1]."""
    return is_number(value) and 0.0 <= value <= 1.0


def _int(value: Any, where: str) -> int:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63,
        f"{where} is not a count",
    )
    return int(value)


def _ints(values: Any) -> tuple[int, ...]:
    _check(isinstance(values, list), "a list of unit numbers is not a list")
    return tuple(_int(v, "a unit number") for v in values)


def _floats(values: Any, where: str) -> tuple[float, ...]:
    _check(isinstance(values, list), f"{where} is not a list")
    _check(all(is_number(v) for v in values), f"{where} holds a value that is not a number")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Thresholds:
    """When a count becomes a finding. Every default has a reason:

    * ``dying=0.5``: once half a layer's units are dead, the layer has lost
      most of its width; below that, dead units are reported as information.
    * ``near_linear=0.3``: a slope within 0.3 of 1 (0.7 to 1.3) passes at
      least 70% of a negative input, so the unit is close to the identity and
      the layer folds into its neighbours as one linear map.
    * ``tiny_slope=0.005``: below half of LeakyReLU's customary 0.01, the
      leak is too small to revive a unit in any realistic number of steps.
    * ``dormant=0.1``: a unit whose mean |output| is at most a tenth of its
      site's average (ReDo's score, Sokar et al. 2023) contributes little to
      the next layer; ReDo found 0.1 to separate such units well on its
      benchmarks, and recycling at 0.1 repairs loss of plasticity in
      ``examples/continual_digits.py``. Used only where dormant statistics
      were recorded.
    """

    dying: float = 0.5
    near_linear: float = 0.3
    tiny_slope: float = 0.005
    dormant: float = 0.1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not is_number(value):
                raise InputError(f"{name} must be a finite number, got {value!r}", option=name)
        if not 0.0 < self.dying <= 1.0:
            raise InputError(f"dying must be in (0, 1], got {self.dying}", option="dying")
        if self.near_linear < 0:
            raise InputError(
                f"near_linear must be >= 0, got {self.near_linear}", option="near_linear"
            )
        if not 0.0 <= self.dormant < 1.0:
            raise InputError(f"dormant must be in [0, 1), got {self.dormant}", option="dormant")
        if self.tiny_slope < 0:
            raise InputError(f"tiny_slope must be >= 0, got {self.tiny_slope}", option="tiny_slope")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) at one site."""

    code: str
    severity: Severity
    site: str
    message: str
    units: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "site": self.site,
            "message": self.message,
            "units": list(self.units),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Finding:
        """A finding from its JSON form; InputError names the first field that is wrong."""
        _check(isinstance(data, dict), "a finding is not an object")
        for key in ("code", "site", "message"):
            _check(isinstance(data.get(key), str), f"a finding's {key} is not text")
        severity = data.get("severity")
        _check(severity in SEVERITIES, f"a finding's severity is {str(severity)[:20]!r}")
        return cls(
            data["code"], severity, data["site"], data["message"], _ints(data.get("units", []))
        )


@dataclass(frozen=True)
class SiteReport:
    """One site's figures as a report shows them."""

    id: SiteId
    kind: str
    units: int
    unit_axis: int
    positions: int
    zero_fraction: tuple[float, ...]
    dead_units: tuple[int, ...]
    dead_fraction: float
    slope: Slope
    nan_units: tuple[int, ...] = ()
    saturated_units: tuple[int, ...] = ()
    calls: int = 0
    #: The activation's shape at its last call (its rank tells a swap where the units are).
    shape: tuple[int, ...] = ()
    #: Per unit, the mean |output|, and the units whose dormant score is at most the
    #: report's ``thresholds.dormant`` (None: no dormant statistics were recorded).
    mean_abs: tuple[float, ...] | None = None
    dormant_units: tuple[int, ...] | None = None
    #: What decided the unit axis, in words (see :attr:`SiteStats.axis_source`).
    axis_source: str | None = None

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def axis_assumed(self) -> bool:
        """Whether the unit axis was assumed from the rank (no producer's output matched)."""
        return (self.axis_source or "").startswith("assumed")

    @property
    def family(self) -> bool:
        """A ReLU-family site ("dead" and the zero fraction apply)."""
        return kind(self.kind).family

    @property
    def dormant_fraction(self) -> float | None:
        """The share of units that are dormant (None without dormant statistics)."""
        if self.dormant_units is None:
            return None
        return len(self.dormant_units) / self.units if self.units else 0.0

    @property
    def module(self) -> str:
        return self.id.module

    @property
    def function(self) -> str | None:
        return self.id.function

    @property
    def caller(self) -> str | None:
        return self.id.caller

    @property
    def slopes(self) -> tuple[float, ...]:
        """The slope as a tuple: one per unit, one shared, or none (ReLU, ReLU6)."""
        if self.slope is None:
            return ()
        return self.slope if isinstance(self.slope, tuple) else (self.slope,)

    @property
    def mean_zero_fraction(self) -> float:
        zf = self.zero_fraction
        return sum(zf) / len(zf) if zf else 0.0

    @classmethod
    def from_stats(cls, site: SiteStats, dormant: float = Thresholds.dormant) -> SiteReport:
        return cls(
            id=site.id,
            kind=site.kind,
            units=site.units,
            unit_axis=site.unit_axis,
            positions=site.positions,
            zero_fraction=site.zero_fraction,
            dead_units=site.dead_units,
            dead_fraction=site.dead_fraction,
            slope=site.slope,
            nan_units=site.nan_units,
            saturated_units=site.saturated_units,
            calls=site.calls,
            shape=site.shape,
            mean_abs=site.mean_abs,
            dormant_units=site.dormant_units(dormant) if site.abs_sum is not None else None,
            axis_source=site.axis_source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "module": self.module,
            "function": self.function,
            "caller": self.caller,
            "index": self.id.index,
            "occurrences": self.id.occurrences,
            "units": self.units,
            "unit_axis": self.unit_axis,
            "unit_axis_source": self.axis_source,
            "calls": self.calls,
            "positions": self.positions,
            "zero_fraction": list(self.zero_fraction),
            "dead_units": list(self.dead_units),
            "dead_fraction": self.dead_fraction,
            "slope": list(self.slope) if isinstance(self.slope, tuple) else self.slope,
            "nan_units": list(self.nan_units),
            "saturated_units": list(self.saturated_units),
            "mean_abs": None if self.mean_abs is None else list(self.mean_abs),
            "dormant_units": None if self.dormant_units is None else list(self.dormant_units),
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SiteReport:
        """A site from its JSON form (``to_dict``); InputError names the first wrong field."""
        _check(isinstance(data, dict), "a site is not an object")
        name = data.get("name")
        _check(isinstance(name, str), "a site has no name")
        where = f"site {name[:60]!r}"
        for key in ("kind", "module"):
            _check(isinstance(data.get(key), str), f"{where}: {key} is not text")
        _check(data["kind"] in KINDS, f"{where}: kind {data['kind'][:20]!r} is unknown")
        for key in ("function", "caller", "unit_axis_source"):
            value = data.get(key)
            _check(value is None or isinstance(value, str), f"{where}: {key} is not text")
        counts = {
            key: _int(data.get(key, default), f"{where}: {key}")
            for key, default in (
                ("index", 0),
                ("occurrences", 1),
                ("units", None),
                ("unit_axis", None),
                ("calls", 0),
                ("positions", None),
            )
        }
        zero_fraction = _floats(data.get("zero_fraction"), f"{where}: zero_fraction")
        dead_fraction = data.get("dead_fraction")
        _check(is_share(dead_fraction), f"{where}: dead_fraction is not a share in [0, 1]")
        slope = data.get("slope")
        if isinstance(slope, list):
            slope = _floats(slope, f"{where}: slope")
        else:
            _check(slope is None or is_number(slope), f"{where}: slope is not a number")
            slope = None if slope is None else float(slope)
        mean_abs = data.get("mean_abs")
        dormant = data.get("dormant_units")
        return cls(
            id=SiteId(
                module=data["module"],
                function=data.get("function"),
                index=counts["index"],
                occurrences=counts["occurrences"],
                caller=data.get("caller"),
            ),
            kind=data["kind"],
            units=counts["units"],
            unit_axis=counts["unit_axis"],
            positions=counts["positions"],
            zero_fraction=zero_fraction,
            dead_units=_ints(data.get("dead_units", [])),
            dead_fraction=float(dead_fraction),
            slope=slope,
            nan_units=_ints(data.get("nan_units", [])),
            saturated_units=_ints(data.get("saturated_units", [])),
            calls=counts["calls"],
            shape=_ints(data.get("shape", [])),
            mean_abs=None if mean_abs is None else _floats(mean_abs, f"{where}: mean_abs"),
            dormant_units=None if dormant is None else _ints(dormant),
            axis_source=data.get("unit_axis_source"),
        )


@dataclass(frozen=True)
class Report:
    """Sites in forward order and the findings about them."""

    sites: tuple[SiteReport, ...]
    findings: tuple[Finding, ...]
    samples: int
    thresholds: Thresholds = Thresholds()
    target: str | None = None
    partial: bool = False
    problems: tuple[str, ...] = ()

    @property
    def incomplete(self) -> bool:
        """True when a site could not be counted (an ``uncounted-site`` finding says which)."""
        return any(f.code == "uncounted-site" for f in self.findings)

    def site(self, name: str) -> SiteReport:
        """The site called ``name``; KeyError names the sites there are."""
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site {name!r}; sites: {', '.join(s.name for s in self.sites)}")

    def findings_for(self, site: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.site == site)

    @property
    def flagged_sites(self) -> tuple[str, ...]:
        """Sites with a finding of severity warning or error, in forward order."""
        flagged = {f.site for f in self.findings if f.severity in ("warning", "error")}
        return tuple(layer.name for layer in self.sites if layer.name in flagged)

    @property
    def worst_severity(self) -> Severity | None:
        """The worst severity of any finding, or None."""
        return worst(f.severity for f in self.findings)

    def severity_of(self, site: str) -> Severity | None:
        """The worst severity of the findings about ``site``, or None."""
        return worst(f.severity for f in self.findings_for(site))

    def fails(self, fail_on: Severity) -> bool:
        """True when a finding is at or above ``fail_on``."""
        bar = SEVERITIES.index(fail_on)
        return any(SEVERITIES.index(f.severity) >= bar for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report, schema ``deadcheck.report/1``."""
        return {
            "schema": SCHEMA,
            "target": self.target,
            "samples": self.samples,
            "partial": self.partial,
            "thresholds": self.thresholds.to_dict(),
            "sites": [layer.to_dict() for layer in self.sites],
            "findings": [f.to_dict() for f in self.findings],
            "incomplete": self.incomplete,
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        """A report from its JSON form: ``Report.from_dict(report.to_dict()) == report``.

        Every field is checked (types, ranges, known kinds and severities);
        InputError names the first that is wrong. Figures a report wrote as
        ``null`` (non-finite) cannot come back, so such a report is refused.
        """
        _check(isinstance(data, dict), "a report is not a JSON object")
        schema = data.get("schema")
        _check(schema == SCHEMA, f"schema {str(schema)[:40]!r} is not {SCHEMA}")
        _check(isinstance(data.get("sites", []), list), "'sites' is not a list")
        _check(isinstance(data.get("findings", []), list), "'findings' is not a list")
        target = data.get("target")
        _check(target is None or isinstance(target, str), "'target' is not text")
        problems = data.get("problems", [])
        _check(
            isinstance(problems, list) and all(isinstance(p, str) for p in problems),
            "'problems' is not a list of text",
        )
        given = data.get("thresholds", {})
        _check(isinstance(given, dict), "'thresholds' is not an object")
        known = set(Thresholds.__dataclass_fields__)
        _check(set(given) <= known, f"'thresholds' has unknown keys {sorted(set(given) - known)}")
        partial = data.get("partial", False)
        _check(isinstance(partial, bool), "'partial' is not true or false")
        return cls(
            sites=tuple(SiteReport.from_dict(site) for site in data.get("sites", [])),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", [])),
            samples=_int(data.get("samples"), "samples"),
            thresholds=Thresholds(**given),
            target=target,
            partial=partial,
            problems=tuple(problems),
        )


def worst(severities: Iterable[Severity]) -> Severity | None:
    """The worst of ``severities`` (None for none): the one ordering of :data:`SEVERITIES`."""
    ranks = [SEVERITIES.index(s) for s in severities]
    return SEVERITIES[max(ranks)] if ranks else None


def findings_markdown(findings: Iterable[Finding]) -> str:
    """Findings as a Markdown table, worst first (pull requests, CI summaries, TensorBoard)."""

    rows = ["| severity | code | site | message |", "|---|---|---|---|"]
    for f in sorted(findings, key=lambda f: -SEVERITIES.index(f.severity)):
        rows.append(
            f"| {md_text(f.severity)} | {md_code(f.code)} | {md_code(f.site)} | "
            f"{md_text(f.message)} |"
        )
    return "\n".join(rows)


def percent(x: float) -> str:
    """A whole percentage that never rounds a partial share to 0% or 100%: "<1%", ">99%"."""
    if 0 < x < 0.005:
        return "<1%"
    if 0.995 <= x < 1:
        return ">99%"
    return f"{100 * x:.0f}%"


def _units_text(units: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(str(u) for u in units[:limit])
    return shown + (f", ... ({len(units)} in all)" if len(units) > limit else "")


def _site_findings(site: SiteReport, t: Thresholds) -> list[Finding]:
    found: list[Finding] = []
    name = site.name
    if site.nan_units:
        found.append(
            Finding(
                "nan-activations",
                "error",
                name,
                f"{len(site.nan_units)} of {site.units} units saw NaN "
                f"(units {_units_text(site.nan_units)})",
                site.nan_units,
            )
        )
    leaky = kind(site.kind).leaky
    regime = "stayed in the negative regime" if leaky else "never fired"
    dead = site.dead_units
    if dead and len(dead) == site.units:
        found.append(
            Finding(
                "dead-layer",
                "error",
                name,
                f"all {site.units} units {regime} on {site.positions} positions each",
                dead,
            )
        )
    elif dead and site.dead_fraction >= t.dying:
        found.append(
            Finding(
                "dying-layer",
                "warning",
                name,
                f"{len(dead)} of {site.units} units ({percent(site.dead_fraction)}) {regime}; "
                f"threshold {percent(t.dying)}",
                dead,
            )
        )
    elif dead:
        found.append(
            Finding(
                "dead-units",
                "info",
                name,
                f"{len(dead)} of {site.units} units {regime} (units {_units_text(dead)})",
                dead,
            )
        )
    dormant = site.dormant_units or ()
    if set(dormant) - set(dead):  # a dead ReLU unit is dormant too: say what is new
        share = len(dormant) / site.units
        found.append(
            Finding(
                "dormant-units",
                "warning" if share >= t.dying else "info",
                name,
                f"{len(dormant)} of {site.units} units ({percent(share)}) are dormant: mean "
                f"|output| at most {t.dormant:g} of the site's average"
                + (
                    f", {len(set(dead) & set(dormant))} of them dead"
                    if set(dead) & set(dormant)
                    else ""
                )
                + f" (units {_units_text(dormant)})",
                dormant,
            )
        )
    if site.saturated_units:
        found.append(
            Finding(
                "saturated-units",
                "info",
                name,
                f"{len(site.saturated_units)} of {site.units} units stayed at the ReLU6 cap "
                "(no gradient there either)",
                site.saturated_units,
            )
        )
    slopes = site.slopes
    per_unit = len(slopes) > 1

    def units_where(pred: Any) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(slopes) if pred(s)) if per_unit else ()

    # A small tolerance keeps the band's edges (0.7 and 1.3 by default) inside it.
    def near_linear(s: float) -> bool:
        return abs(1.0 - s) <= t.near_linear + 1e-9

    near = [s for s in slopes if near_linear(s)]
    if near:
        which = units_where(near_linear)
        scope = (
            f"{len(which)} of {len(slopes)} slopes are" if per_unit else f"slope {near[0]:.3g} is"
        )
        found.append(
            Finding(
                "near-linear-slope",
                "warning",
                name,
                f"{scope} within {t.near_linear:g} of 1: the unit is almost linear",
                which,
            )
        )
    tiny = [s for s in slopes if abs(s) < t.tiny_slope]
    if tiny:
        which = units_where(lambda s: abs(s) < t.tiny_slope)
        scope = (
            f"{len(which)} of {len(slopes)} slopes are" if per_unit else f"slope {tiny[0]:.3g} is"
        )
        found.append(
            Finding(
                "tiny-slope",
                "info",
                name,
                f"{scope} below {t.tiny_slope:g}: leaky in name only",
                which,
            )
        )
    return found


def analyze(stats: Stats, thresholds: Thresholds | None = None, **overrides: float) -> Report:
    """Turn counts into a :class:`Report`.

    ``thresholds`` (default :class:`Thresholds`, whose docstring gives each
    default's reason), with any of its fields overridden by keyword:
    ``analyze(stats, dying=0.75)``.
    """
    thresholds = replace(thresholds or Thresholds(), **overrides)
    sites = tuple(SiteReport.from_stats(site, thresholds.dormant) for site in stats.sites)
    uncounted = tuple(
        Finding(
            "uncounted-site",
            "error",
            name,
            f"could not be counted ({why}); the report is incomplete",
        )
        for name, why in ((u.site.name, u.why) for u in stats.uncounted)
    )
    findings = uncounted + tuple(f for site in sites for f in _site_findings(site, thresholds))
    return Report(
        sites=sites,
        findings=findings,
        samples=stats.samples,
        thresholds=thresholds,
        target=stats.target,
        partial=stats.partial,
        problems=stats.problems,
    )
