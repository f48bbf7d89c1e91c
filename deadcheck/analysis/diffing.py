"""Compare two JSON reports: what a change did to the dead share of each site, and to the findings.

The CI gate "this change killed units": ``deadcheck diff OLD.json NEW.json
--fail-on-rise 0.05`` fails when any site's dead share rose by more than the
bound, or (with ``--fail-on``) when a new finding at or above that severity
appeared. Pure: two report dicts (schema ``deadcheck.report/1``) in, a
:class:`ReportDiff` out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deadcheck.core import jsontext
from deadcheck.core.errors import InputError
from deadcheck.core.escaping import md_code, md_text, terminal
from deadcheck.core.files import check_regular_file
from deadcheck.core.findings import at_or_above
from deadcheck.core.words import percent
from deadcheck.results.report import SCHEMA, Report
from deadcheck.stats import STATS

__all__ = [
    "DIFF_SCHEMA",
    "FindingKey",
    "ReportDiff",
    "SiteChange",
    "diff_reports",
    "load_report",
    "parse_report",
    "render_diff",
]

DIFF_SCHEMA = "deadcheck.diff/1"


@dataclass(frozen=True)
class SiteChange:
    """One site present in both reports, and one of its shares before and after.

    ``figure`` is the statistic's scalar compared (``dead_fraction``, the gate's;
    ``dormant_fraction`` where both reports have dormant sums).
    """

    site: str
    old: float
    new: float
    figure: str = "dead_fraction"

    @property
    def change(self) -> float:
        return self.new - self.old

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "figure": self.figure,
            "old": self.old,
            "new": self.new,
            "change": self.change,
        }


@dataclass(frozen=True)
class FindingKey:
    """A finding as a diff sees it: its code, severity and site (messages carry counts)."""

    code: str
    severity: str
    site: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "site": self.site}


@dataclass(frozen=True)
class ReportDiff:
    """What changed between two reports, and whether that fails the gate."""

    old: str
    new: str
    sites: tuple[SiteChange, ...]
    appeared: tuple[str, ...]
    disappeared: tuple[str, ...]
    new_findings: tuple[FindingKey, ...]
    resolved_findings: tuple[FindingKey, ...]
    #: The gate on a rise of the dead share (None: no gate, as when not asked).
    fail_on_rise: float | None
    fail_on: str | None = None
    #: The other compared figures (every statistic's ``diff`` scalar but the dead share).
    figures: tuple[SiteChange, ...] = ()

    @property
    def rises(self) -> tuple[SiteChange, ...]:
        """Sites whose dead share rose by more than ``fail_on_rise`` (none without a gate)."""
        if self.fail_on_rise is None:
            return ()
        return tuple(s for s in self.sites if s.change > self.fail_on_rise + 1e-12)

    @property
    def risen(self) -> tuple[SiteChange, ...]:
        """Sites whose dead share rose at all, gated or not."""
        return tuple(s for s in self.sites if s.change > 1e-12)

    @property
    def failing_findings(self) -> tuple[FindingKey, ...]:
        """New findings at or above ``fail_on``."""
        if self.fail_on is None:
            return ()
        return tuple(f for f in self.new_findings if at_or_above(f.severity, self.fail_on))

    @property
    def fails(self) -> bool:
        return bool(self.rises or self.failing_findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "old": self.old,
            "new": self.new,
            "fail_on_rise": self.fail_on_rise,
            "fail_on": self.fail_on,
            "fails": self.fails,
            "sites": [s.to_dict() for s in self.sites],
            "figures": [s.to_dict() for s in self.figures],
            "rises": [s.site for s in self.rises],
            "appeared": list(self.appeared),
            "disappeared": list(self.disappeared),
            "new_findings": [f.to_dict() for f in self.new_findings],
            "resolved_findings": [f.to_dict() for f in self.resolved_findings],
        }


def load_report(path: str | Path) -> Report:
    """The :class:`Report` a JSON file holds; InputError, naming the file, when it is not one."""
    path = Path(path)
    check_regular_file(path, "report")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"no such report: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path} is not a JSON report: {error}") from None
    return parse_report(text, str(path))


def parse_report(text: str, path: str) -> Report:
    """The :class:`Report` a JSON text holds (``path`` names it in errors)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError) as error:
        raise InputError(f"{path} is not a JSON report: {error}") from None
    except RecursionError:
        raise InputError(f"{path} is not a JSON report: nested too deeply") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise InputError(
            f"{path} is not a deadcheck report (schema {str(schema)[:40]!r}, want {SCHEMA})"
        )
    try:
        return Report.from_dict(data)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None


#: The scalars a diff compares, from the statistics' declarations; the gate is on the first.
_DIFFED = [scalar for stat in STATS for scalar in stat.scalars if scalar.diff]
GATED = "dead_fraction"
_LABELS = {scalar.key: scalar.label or scalar.key for scalar in _DIFFED}


def _findings(report: Report) -> list[FindingKey]:
    return [FindingKey(f.code, f.severity, f.site) for f in report.findings]


def diff_reports(
    old: Report | dict[str, Any],
    new: Report | dict[str, Any],
    *,
    fail_on_rise: float | None = None,
    fail_on: str | None = None,
    names: tuple[str, str] = ("old", "new"),
) -> ReportDiff:
    """Compare two reports: :class:`Report` objects, or dicts as the JSON file gives them.

    A dict is read with :meth:`Report.from_dict`, which checks every field: a
    dead share that is missing, NaN or outside [0, 1] is refused rather than
    compared, so the gate fails closed. Nothing fails unless a gate is asked:
    ``fail_on_rise`` (a rise of any site's dead share by more than it) or
    ``fail_on`` (a new finding at or above that severity).
    """
    if fail_on_rise is not None and not 0.0 <= fail_on_rise <= 1.0:
        raise InputError(
            f"fail_on_rise must be in [0, 1], got {fail_on_rise}", option="fail_on_rise"
        )
    old = _report(old, names[0])
    new = _report(new, names[1])
    before = {s.name: s for s in old.sites}
    after = {s.name: s for s in new.sites}
    changes = [
        SiteChange(name, old_value, new_value, scalar.key)
        for scalar in _DIFFED
        for name in after
        if name in before
        and (old_value := scalar.value(before[name])) is not None
        and (new_value := scalar.value(after[name])) is not None
    ]
    sites = tuple(c for c in changes if c.figure == GATED)
    old_findings, new_findings = _findings(old), _findings(new)
    return ReportDiff(
        old=names[0],
        new=names[1],
        sites=sites,
        appeared=tuple(name for name in after if name not in before),
        disappeared=tuple(name for name in before if name not in after),
        new_findings=tuple(f for f in new_findings if f not in old_findings),
        resolved_findings=tuple(f for f in old_findings if f not in new_findings),
        fail_on_rise=fail_on_rise,
        fail_on=fail_on,
        figures=tuple(c for c in changes if c.figure != GATED),
    )


def _report(report: Report | dict[str, Any], name: str) -> Report:
    if isinstance(report, Report):
        return report
    try:
        return Report.from_dict(report)
    except InputError as error:
        raise InputError(f"the {name} report: {error}") from None


def _finding_text(finding: FindingKey) -> str:
    return f"{finding.severity} {finding.code} at {finding.site}"


def _signed(change: float) -> str:
    sign = "+" if change > 0 else "-" if change < 0 else " "
    return f"{sign}{percent(abs(change))}" if change else "0%"


def _passed(diff: ReportDiff) -> str:
    if diff.fail_on_rise is not None:
        return f"pass: no site's dead share rose by more than {percent(diff.fail_on_rise)}"
    risen = len(diff.risen)
    rose = f"the dead share rose at {risen} site(s)" if risen else "no site's dead share rose"
    return (
        f"{rose} (no gate: --fail-on-rise not given)"
        if diff.fail_on is None
        else (f"pass: no new finding at {diff.fail_on} or above; {rose}")
    )


def render_diff(diff: ReportDiff, fmt: str = "table") -> str:
    """The diff as a terminal table, JSON, or Markdown for a pull-request comment."""
    if fmt == "json":
        return jsontext.dumps(diff.to_dict())
    md = fmt == "markdown"
    verdict = (
        "FAIL: "
        + "; ".join(
            [f"{s.site} dead share rose {_signed(s.change)}" for s in diff.rises]
            + [f"new {f.severity} {f.code} at {f.site}" for f in diff.failing_findings]
        )
        if diff.fails
        else _passed(diff)
    )
    names = f"{md_text(diff.old)} -> {md_text(diff.new)}" if md else f"{diff.old} -> {diff.new}"
    lines = [f"# deadcheck diff: {names}" if md else names]
    lines += ["", f"**{md_text(verdict)}**" if md else verdict]
    changed = [s for s in (*diff.sites, *diff.figures) if s.change]
    for figure, label in _LABELS.items():
        rows = sorted((s for s in changed if s.figure == figure), key=lambda s: -s.change)
        if not rows:
            continue
        width = max(12, *(len(s.site) for s in rows))
        lines += ["", f"## {label.capitalize()}", ""] if md else ["", label]
        if md:
            lines += ["| site | old | new | change |", "|---|---:|---:|---:|"]
            lines += [
                f"| {md_code(s.site)} | {percent(s.old)} | {percent(s.new)} | {_signed(s.change)} |"
                for s in rows
            ]
        else:
            lines.append(f"  {'site':<{width}} {'old':>6} {'new':>6} {'change':>7}")
            for s in rows:
                old, new = percent(s.old), percent(s.new)
                lines.append(f"  {s.site:<{width}} {old:>6} {new:>6} {_signed(s.change):>7}")
    for title, items in (
        ("new findings", [_finding_text(f) for f in diff.new_findings]),
        (
            "resolved findings",
            [_finding_text(f) for f in diff.resolved_findings],
        ),
        ("sites that appeared", list(diff.appeared)),
        ("sites that disappeared", list(diff.disappeared)),
    ):
        if items:
            lines += ["", f"## {title.capitalize()}" if md else title]
            lines += [f"- {md_text(item)}" if md else f"  {item}" for item in items]
    if (
        not changed
        and not diff.new_findings
        and not diff.resolved_findings
        and not (diff.appeared or diff.disappeared)
    ):
        lines += ["", "no change"]
    return terminal("\n".join(lines)) + "\n"
