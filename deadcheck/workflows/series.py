"""A series of checkpoints: when did the units die?

``deadcheck scan TARGET --weights 'ckpts/epoch-*.pt'`` runs the same batches
through each checkpoint in order (sorted by the numbers in their file names)
and judges the trend across them, as a Monitor does across snapshots. One
model lives at a time: each checkpoint is loaded into it in turn, so memory
stays flat in the number of checkpoints.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deadcheck.analysis.trends import Trend, rising_findings
from deadcheck.core import jsontext
from deadcheck.core.errors import InputError
from deadcheck.core.findings import Finding
from deadcheck.core.words import percent
from deadcheck.output.figures import finish, pyplot
from deadcheck.results.report import Report
from deadcheck.workflows.scanning import scan_target

__all__ = ["SERIES_SCHEMA", "Series", "expand_checkpoints", "render_series", "scan_series"]

SERIES_SCHEMA = "deadcheck.workflows.series/1"


def _natural_key(path: str) -> tuple[Any, ...]:
    """``epoch-10.pt`` after ``epoch-9.pt``: numbers in the name compare as numbers."""
    parts = re.split(r"(\d+)", Path(path).name)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def expand_checkpoints(patterns: Iterable[str]) -> list[str]:
    """Files named or matched by ``patterns`` (globs), in numeric order, each once."""
    found: list[str] = []
    for pattern in patterns:
        matches = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise InputError(f"weights {pattern!r} matches no file", option="weights")
        found += [m for m in matches if m not in found]
    return sorted(found, key=_natural_key)


@dataclass(frozen=True)
class Series:
    """One report per checkpoint, in order, and the trend findings across them."""

    target: str | None
    checkpoints: tuple[str, ...]
    reports: tuple[Report, ...]
    findings: tuple[Finding, ...]

    def fails(self, fail_on: str) -> bool:
        """True when the last checkpoint's report, or the trend, has a finding at or above."""
        last = replace(self.reports[-1], findings=self.reports[-1].findings + self.findings)
        return last.fails(fail_on)  # type: ignore[arg-type]

    def dead_shares(self) -> dict[str, list[float | None]]:
        """Per site (first seen order), the dead share at each checkpoint (None: not there)."""
        names = list(dict.fromkeys(s.name for r in self.reports for s in r.sites))
        shares = [{s.name: s.dead_fraction for s in r.sites} for r in self.reports]
        return {name: [share.get(name) for share in shares] for name in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SERIES_SCHEMA,
            "target": self.target,
            "checkpoints": list(self.checkpoints),
            "reports": [r.to_dict() for r in self.reports],
            "findings": [f.to_dict() for f in self.findings],
        }


def scan_series(
    spec: str,
    checkpoints: Iterable[str],
    *,
    progress: Callable[[int, str], None] | None = None,
    **options: Any,
) -> Series:
    """:func:`~deadcheck.workflows.scanning.scan_target` once per checkpoint, on the same batches.

    ``options`` are those of ``scan_target`` (but ``weights``). The trend is
    judged with :class:`~deadcheck.training.monitor.Trend` over the checkpoints, its
    window shortened to their number.
    """

    paths = expand_checkpoints(checkpoints)
    if len(paths) < 2:
        raise InputError("weights: a series needs two checkpoints or more", option="weights")
    reports: list[Report] = []
    target_name = None
    for index, path in enumerate(paths):
        done = scan_target(spec, weights=path, **options)  # one model at a time
        target_name = done.target.name
        reports.append(done.report)
        if progress is not None:
            progress(index + 1, path)
    trend = Trend(window=min(Trend.window, len(reports)))
    findings = rising_findings(reports, trend, over="checkpoints")
    return Series(target_name, tuple(paths), tuple(reports), findings)


def render_series(series: Series, fmt: str = "table") -> str:
    """The series as a table of dead share per site per checkpoint, JSON, or Markdown."""
    if fmt == "json":
        return jsontext.dumps(series.to_dict())
    md = fmt == "markdown"
    labels = [Path(c).stem for c in series.checkpoints]
    shares = series.dead_shares()
    width = max([12, *(len(n) for n in shares)])
    cell = max(7, *(len(label) + 1 for label in labels))
    head = f"{series.target or 'model'}: {len(labels)} checkpoints"
    lines = [f"# deadcheck series: {head}" if md else head]
    if series.findings:
        lines += ["", "## Findings" if md else "findings"]
        for f in series.findings:
            lines.append(
                f"- **{f.code}** `{f.site}`: {f.message}" if md else f"  WARNING {f.code}  {f.site}"
            )
            if not md:
                lines.append(f"          {f.message}")
    lines += ["", "## Dead share per checkpoint" if md else "dead share per checkpoint", ""]
    if md:
        lines += ["| site | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    else:
        lines.append(f"{'site':<{width}}" + "".join(f"{label:>{cell}}" for label in labels))
    for name, values in shares.items():
        texts = ["-" if v is None else percent(v) for v in values]
        if md:
            lines.append(f"| `{name}` | " + " | ".join(texts) + " |")
        else:
            lines.append(f"{name:<{width}}" + "".join(f"{t:>{cell}}" for t in texts))
    return "\n".join(lines) + "\n"


def plot_series(series: Series, path: str | Path | None = None, *, format: str = "png") -> bytes:
    """Dead share per site against checkpoint, one line per site."""

    plt = pyplot()
    labels = [Path(c).stem for c in series.checkpoints]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    rising = {f.site for f in series.findings}
    for name, values in series.dead_shares().items():
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.plot(
            [i for i, _ in points],
            [v for _, v in points],
            marker="o",
            linewidth=2.5 if name in rising else 1,
            label=name + (" (rising)" if name in rising else ""),
        )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("dead share of units")
    ax.set_title(f"{series.target or 'model'}: dead share per checkpoint")
    if len(series.dead_shares()) <= 12:
        ax.legend(fontsize=7)
    return finish(fig, path, format)
