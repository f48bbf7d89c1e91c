"""Show a :class:`~deadcheck.results.report.Report` in one of the text formats.

Each format is one module (:mod:`~deadcheck.output.table`,
:mod:`~deadcheck.results.display`, JSON here); :data:`RENDERERS` is the one
list of them, which the CLI's choices come from.
"""

from __future__ import annotations

from collections.abc import Callable

from deadcheck.core.formats import FORMATS, Format
from deadcheck.core.jsontext import dumps
from deadcheck.output.table import render_table
from deadcheck.results.display import render_markdown
from deadcheck.results.report import Report

__all__ = ["FORMATS", "RENDERERS", "render", "render_json", "render_markdown", "render_table"]


def render_json(report: Report) -> str:
    """The JSON report (schema ``deadcheck.report/1``)."""
    return dumps(report.to_dict())


#: Every text format: its renderer, given the report, whether to list every site, and the width.
RENDERERS: dict[str, Callable[[Report, bool, int], str]] = {
    "table": lambda report, all_sites, width: render_table(
        report, all_sites=all_sites, width=width
    ),
    "json": lambda report, all_sites, width: render_json(report),
    "markdown": lambda report, all_sites, width: render_markdown(report),
}
if set(RENDERERS) != set(FORMATS):  # pragma: no cover - a format without a renderer
    raise ImportError("deadcheck.output.rendering: RENDERERS and FORMATS disagree")


def render(
    report: Report, fmt: Format = "table", *, all_sites: bool = False, width: int = 80
) -> str:
    """``report`` in one of :data:`FORMATS`."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return renderer(report, all_sites, width)
