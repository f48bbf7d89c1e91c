"""A report: each site's figures and the findings about them, as frozen data that round-trips.

``Report.from_dict(report.to_dict()) == report``: a JSON report read back is
the report that was written, checked field by field, so ``diff`` and
checkpoint series work on :class:`Report` objects. A site's figures are kept
by statistic (:mod:`deadcheck.stats`), written and read through what each
statistic declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deadcheck.core.checks import check, count, text_or_none
from deadcheck.core.findings import Code, Finding, Severity, at_or_above, worst
from deadcheck.core.kinds import KINDS, kind
from deadcheck.core.sites import SiteFacts, SiteId
from deadcheck.core.thresholds import Thresholds
from deadcheck.results import display
from deadcheck.stats import STATS
from deadcheck.stats.dormant import dormant_fraction
from deadcheck.stats.slope import slopes
from deadcheck.stats.zeros import mean_zero_fraction

__all__ = ["SCHEMA", "Report", "SiteReport"]

SCHEMA = "deadcheck.report/1"

Slope = float | tuple[float, ...] | None

#: A site's facts in its JSON form, in order: what it is, not what was measured.
_COUNTS = ("index", "occurrences", "units", "unit_axis", "calls", "positions")


@dataclass(frozen=True)
class SiteReport(SiteFacts):
    """One site as a report shows it: what the site is, and its figures by statistic.

    ``figures`` holds every figure the statistics give (``zero_fraction``,
    ``dead_units``, ``dormant_units``, ``slope``, ...); the properties below
    read the common ones.
    """

    id: SiteId
    kind: str
    units: int
    unit_axis: int
    positions: int
    calls: int
    figures: Mapping[str, Any]
    #: The activation's shape at its last call (its rank tells a swap where the units are).
    shape: tuple[int, ...] = ()
    #: What decided the unit axis, in words (see :attr:`SiteStats.axis_source`).
    axis_source: str | None = None

    @property
    def zero_fraction(self) -> tuple[float, ...]:
        return tuple(self.figures["zero_fraction"])

    @property
    def mean_zero_fraction(self) -> float:
        return mean_zero_fraction(self)

    @property
    def dead_units(self) -> tuple[int, ...]:
        return tuple(self.figures["dead_units"])

    @property
    def dead_fraction(self) -> float:
        return float(self.figures["dead_fraction"])

    @property
    def nan_units(self) -> tuple[int, ...]:
        return tuple(self.figures["nan_units"])

    @property
    def saturated_units(self) -> tuple[int, ...]:
        return tuple(self.figures["saturated_units"])

    @property
    def mean_abs(self) -> tuple[float, ...] | None:
        """Per unit, the mean |output| (None: no dormant sums were recorded)."""
        value = self.figures["mean_abs"]
        return None if value is None else tuple(value)

    @property
    def dormant_units(self) -> tuple[int, ...] | None:
        """Units whose dormant score is at most ``thresholds.dormant`` (None: no sums)."""
        value = self.figures["dormant_units"]
        return None if value is None else tuple(value)

    @property
    def dormant_fraction(self) -> float | None:
        """The share of units that are dormant (None without dormant sums)."""
        return dormant_fraction(self)

    @property
    def slope(self) -> Slope:
        value: Slope = self.figures["slope"]
        return value

    @property
    def slopes(self) -> tuple[float, ...]:
        """The slope as a tuple: one per unit, one shared, or none (ReLU, ReLU6)."""
        return slopes(self)

    def __repr__(self) -> str:
        dead = len(self.dead_units) if self.family and not kind(self.kind).leaky else None
        shown = f", {dead} dead" if dead is not None else ""
        return f"SiteReport({self.name!r}, {self.kind}, {self.units} units{shown})"

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
            "shape": list(self.shape),
            **{
                figure.key: figure.write(self.figures[figure.key])
                for stat in STATS
                for figure in stat.figures
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> SiteReport:
        """A site from its JSON form (``to_dict``); InputError names the first wrong field."""
        check(isinstance(data, dict), "a site is not an object")
        name = data.get("name")
        check(isinstance(name, str), "a site has no name")
        where = f"site {name[:60]!r}"
        for key in ("kind", "module"):
            check(isinstance(data.get(key), str), f"{where}: {key} is not text")
        check(data["kind"] in KINDS, f"{where}: kind {data['kind'][:20]!r} is unknown")
        text = {
            key: text_or_none(data.get(key), f"{where}: {key}")
            for key in ("function", "caller", "unit_axis_source")
        }
        defaults = {"index": 0, "occurrences": 1, "calls": 0}
        counts = {
            key: count(data.get(key, defaults.get(key)), f"{where}: {key}") for key in _COUNTS
        }
        shape = data.get("shape", [])
        check(isinstance(shape, list), f"{where}: shape is not a list")
        return cls(
            id=SiteId(
                module=data["module"],
                function=text["function"],
                index=counts["index"],
                occurrences=counts["occurrences"],
                caller=text["caller"],
            ),
            kind=data["kind"],
            units=counts["units"],
            unit_axis=counts["unit_axis"],
            positions=counts["positions"],
            calls=counts["calls"],
            figures={
                figure.key: figure.read(data, where) for stat in STATS for figure in stat.figures
            },
            shape=tuple(count(v, f"{where}: shape") for v in shape),
            axis_source=text["unit_axis_source"],
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
        return any(f.code is Code.UNCOUNTED_SITE for f in self.findings)

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
        flagged = {f.site for f in self.findings if at_or_above(f.severity, Severity.WARNING)}
        return tuple(layer.name for layer in self.sites if layer.name in flagged)

    @property
    def worst_severity(self) -> Severity | None:
        """The worst severity of any finding, or None."""
        return worst(f.severity for f in self.findings)

    def severity_of(self, site: str) -> Severity | None:
        """The worst severity of the findings about ``site``, or None."""
        return worst(f.severity for f in self.findings_for(site))

    def fails(self, fail_on: Severity | str) -> bool:
        """True when a finding is at or above ``fail_on``."""
        return any(at_or_above(f.severity, fail_on) for f in self.findings)

    def __repr__(self) -> str:
        return f"Report({display.summary(self)})"

    def _repr_markdown_(self) -> str:
        """What a notebook shows in a Markdown cell: the Markdown report."""
        return display.render_markdown(self)

    def _repr_html_(self) -> str:
        """What a notebook shows: the summary, the findings and the first sites as a table."""
        return display.render_html(self)

    def to_dataframe(self) -> Any:
        """One row per site with its scalar figures (pandas, an optional extra).

        Columns: ``site``, ``kind``, ``units``, then every figure that is one
        number per site (``dead_fraction``, ``mean_zero_fraction``, ...).
        """
        try:
            import pandas
        except ImportError:
            raise ImportError("Report.to_dataframe needs pandas: pip install pandas") from None
        rows = []
        for site in self.sites:
            row: dict[str, Any] = {"site": site.name, "kind": site.kind, "units": site.units}
            for stat in STATS:
                for scalar in stat.scalars:
                    row[scalar.key] = scalar.value(site)
            rows.append(row)
        return pandas.DataFrame(rows)

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

        Every field is checked (types, ranges, known kinds, codes and
        severities); InputError names the first that is wrong. Figures a
        report wrote as ``null`` (non-finite) cannot come back, so such a
        report is refused.
        """
        check(isinstance(data, dict), "a report is not a JSON object")
        schema = data.get("schema")
        check(schema == SCHEMA, f"schema {str(schema)[:40]!r} is not {SCHEMA}")
        check(isinstance(data.get("sites", []), list), "'sites' is not a list")
        check(isinstance(data.get("findings", []), list), "'findings' is not a list")
        target = text_or_none(data.get("target"), "'target'")
        problems = data.get("problems", [])
        check(
            isinstance(problems, list) and all(isinstance(p, str) for p in problems),
            "'problems' is not a list of text",
        )
        given = data.get("thresholds", {})
        check(isinstance(given, dict), "'thresholds' is not an object")
        known = set(Thresholds.__dataclass_fields__)
        check(set(given) <= known, f"'thresholds' has unknown keys {sorted(set(given) - known)}")
        partial = data.get("partial", False)
        check(isinstance(partial, bool), "'partial' is not true or false")
        return cls(
            sites=tuple(SiteReport.from_dict(site) for site in data.get("sites", [])),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", [])),
            samples=count(data.get("samples"), "samples"),
            thresholds=Thresholds(**given),
            target=target,
            partial=partial,
            problems=tuple(problems),
        )
