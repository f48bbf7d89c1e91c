"""Pictures of a report: a PNG for people, and the heatmap TensorBoard shows.

matplotlib is imported inside the functions, with the Agg backend, so that
importing deadcheck never opens a window or slows a command that draws nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deadcheck.core.findings import SEVERITIES
from deadcheck.output.figures import PLOT_FORMATS, finish, plot_format, pyplot
from deadcheck.results.report import Report

__all__ = ["PLOT_FORMATS", "heatmap_matrix", "heatmap_rgb", "plot_format", "plot_report"]

_DEAD_COLOR = "#e45756"

_COLORS = {None: "#4c78a8", "info": "#72b7b2", "warning": "#f58518", "error": "#e45756"}


#: The most columns (units) and rows (sites) a heatmap draws: memory and time stay bounded
#: (a million-unit site, 5,000 sites). Wider sites are binned, later sites left out, and
#: :func:`heatmap_note` says so.
MAX_HEATMAP_UNITS = 1024
MAX_HEATMAP_SITES = 512


def _binned(values: Any, width: int, sort: bool) -> Any:
    """At most ``width`` values summarising ``values``: quantiles if sorted, else bin means."""
    import numpy as np

    if len(values) <= width:
        return values
    if sort:  # values are sorted: evenly spaced order statistics keep the distribution
        return values[np.linspace(0, len(values) - 1, width).round().astype(int)]
    return np.array([chunk.mean() for chunk in np.array_split(values, width)])


def heatmap_matrix(report: Report, *, sort: bool = False) -> Any:
    """Sites x units array of zero fractions (numpy), NaN where a site has fewer units.

    With ``sort`` each site's units are ordered from most to least often zero,
    which turns each row into a readable distribution (dead units first). At
    most :data:`MAX_HEATMAP_SITES` rows and :data:`MAX_HEATMAP_UNITS` columns.
    """
    import numpy as np

    layers = report.sites[:MAX_HEATMAP_SITES]
    width = min(max((layer.units for layer in layers), default=0), MAX_HEATMAP_UNITS)
    matrix = np.full((len(layers), max(width, 1)), np.nan)
    for row, layer in enumerate(layers):
        values = np.asarray(layer.zero_fraction, dtype=float)
        if sort:
            values = np.sort(values)[::-1]
        values = _binned(values, MAX_HEATMAP_UNITS, sort)
        matrix[row, : len(values)] = values
    return matrix


def heatmap_note(report: Report) -> str | None:
    """What the heatmap left out or binned, in words (None: everything is drawn as is)."""
    parts = []
    if len(report.sites) > MAX_HEATMAP_SITES:
        parts.append(f"first {MAX_HEATMAP_SITES} of {len(report.sites)} sites")
    wide = sum(layer.units > MAX_HEATMAP_UNITS for layer in report.sites[:MAX_HEATMAP_SITES])
    if wide:
        parts.append(f"{wide} site(s) wider than {MAX_HEATMAP_UNITS} units drawn in bins")
    return "; ".join(parts) or None


def heatmap_rgb(report: Report, *, row_height: int = 4) -> Any:
    """The heatmap as an H x W x 3 uint8 image: viridis colours, grey padding."""
    import matplotlib
    import numpy as np

    matrix = heatmap_matrix(report)
    rgba = matplotlib.colormaps["viridis"](np.nan_to_num(matrix, nan=0.0))
    rgba[np.isnan(matrix)] = (0.85, 0.85, 0.85, 1.0)
    image = (rgba[..., :3] * 255).astype("uint8")
    return np.repeat(image, row_height, axis=0)


def plot_report(
    report: Report, path: str | Path | None = None, *, format: str | None = None
) -> bytes:
    """Two panels: dead share per site (coloured by worst finding), zero fractions per unit.

    ``format`` is png, svg, pdf or jpg; by default the one ``path``'s suffix
    names, else png. Returns the bytes and, with ``path``, also writes them there.
    In the lower panel dead units are red, apart from units that fired rarely.
    """
    if format is None:
        format = plot_format(path) if path is not None else "png"
    plt = pyplot()
    import matplotlib
    from matplotlib.patches import Patch

    layers = report.sites
    n = max(len(layers), 1)
    fig, (bars, heat) = plt.subplots(
        2,
        1,
        sharex=True,
        figsize=(max(6.5, min(4 + 0.18 * n, 24)), 7.5),
        gridspec_kw={"height_ratios": [1, 1.2]},
        constrained_layout=True,
    )
    names = [layer.name for layer in layers]
    x = range(len(layers))
    bars.bar(
        x,
        [layer.dead_fraction for layer in layers],
        color=[_COLORS[report.severity_of(name)] for name in names],
    )
    bars.axhline(report.thresholds.dying, color="#e45756", linestyle="--", linewidth=1)
    bars.set_ylim(0, 1.02)
    bars.set_ylabel("dead share of units")
    bars.set_xticks(list(x))
    bars.tick_params(labelbottom=False)  # the lower panel names the sites for both
    bars.set_xlim(-0.6, len(layers) - 0.4)
    title = f"{report.target or 'model'}: {report.samples} samples, {len(layers)} sites"
    bars.set_title(title + (" (partial)" if report.partial else ""))
    bars.legend(
        handles=[
            Patch(color=_COLORS[None], label="no finding"),
            *(Patch(color=_COLORS[s], label=s) for s in SEVERITIES),
            plt.Line2D([], [], color="#e45756", linestyle="--", label="dying threshold"),
        ],
        fontsize=7,
        loc="upper left",
    )
    if layers:
        matrix = heatmap_matrix(report, sort=True)
        for row, layer in enumerate(layers[: len(matrix)]):  # dead units: red, above the scale
            drawn = min(layer.units, MAX_HEATMAP_UNITS)
            matrix[row, : -(-len(layer.dead_units) * drawn // max(layer.units, 1))] = 2.0
        image = heat.imshow(
            matrix.T,
            aspect="auto",
            interpolation="nearest",
            cmap=matplotlib.colormaps["viridis"].with_extremes(over=_DEAD_COLOR, bad="#d9d9d9"),
            vmin=0,
            vmax=1,
            origin="lower",
            extent=(-0.5, len(matrix) - 0.5, 0, matrix.shape[1]),
        )
        fig.colorbar(image, ax=heat, extend="max", label="zero fraction (red: dead, never fired)")
    heat.set_xlabel("site (forward order)")
    every = max(1, n // 200)  # at most 200 names: thousands of labels take minutes to draw
    heat.set_xticks(list(x)[::every])
    heat.set_xticklabels(names[::every], rotation=90, fontsize=max(4, min(8, 400 // n)))
    heat.set_ylabel("units, most often zero first")
    note = heatmap_note(report)
    heat.set_title(
        "per-unit zero fraction (red at the bottom: dead units)" + (f"; {note}" if note else ""),
        fontsize=9,
    )
    return finish(fig, path, format)
