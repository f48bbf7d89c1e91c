"""deadcheck: find dead and dying ReLU units in any PyTorch model, and repair them.

The public names are loaded on first use, so that ``deadcheck --help`` and
other commands that need no model answer without importing torch.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Every public name and the module that defines it: the one list. ``__all__`` and
#: the lazy loader derive from it; a test checks the typing imports and docs/api.md.
_EXPORTS = {
    "record": "deadcheck.recording",
    "Recorder": "deadcheck.recording",
    "analyze": "deadcheck.analysis",
    "Report": "deadcheck.analysis",
    "SiteReport": "deadcheck.analysis",
    "Finding": "deadcheck.analysis",
    "Thresholds": "deadcheck.analysis",
    "Stats": "deadcheck.statistics",
    "SiteStats": "deadcheck.statistics",
    "SiteId": "deadcheck.statistics",
    "scan": "deadcheck.scanning",
    "scan_target": "deadcheck.scanning",
    "TargetScan": "deadcheck.scanning",
    "load_target": "deadcheck.loading",
    "Target": "deadcheck.loading",
    "render": "deadcheck.rendering",
    "diff_reports": "deadcheck.diffing",
    "scan_series": "deadcheck.series",
    "Series": "deadcheck.series",
    "ReportDiff": "deadcheck.diffing",
    "swap": "deadcheck.swapping",
    "plan_swap": "deadcheck.swapping",
    "apply_plan": "deadcheck.swapping",
    "save_swap": "deadcheck.swapping",
    "SwapPlan": "deadcheck.swapping",
    "PlannedSite": "deadcheck.swapping",
    "AxisPReLU": "deadcheck.layers",
    "recycle": "deadcheck.recycling",
    "Recycler": "deadcheck.recycling",
    "RecycleResult": "deadcheck.recycling",
    "Monitor": "deadcheck.monitoring",
    "Snapshot": "deadcheck.monitoring",
    "Trend": "deadcheck.monitoring",
    "write_tensorboard": "deadcheck.tensorboard",
    "plot_report": "deadcheck.plotting",
    "DeadcheckError": "deadcheck.errors",
    "InputError": "deadcheck.errors",
    "ModelError": "deadcheck.errors",
    "RecordingError": "deadcheck.errors",
    "SwapError": "deadcheck.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from deadcheck.analysis import Finding, Report, SiteReport, Thresholds, analyze
    from deadcheck.diffing import ReportDiff, diff_reports
    from deadcheck.errors import DeadcheckError, InputError, ModelError, RecordingError, SwapError
    from deadcheck.layers import AxisPReLU
    from deadcheck.loading import Target, load_target
    from deadcheck.monitoring import Monitor, Snapshot, Trend
    from deadcheck.plotting import plot_report
    from deadcheck.recording import Recorder, record
    from deadcheck.recycling import Recycler, RecycleResult, recycle
    from deadcheck.rendering import render
    from deadcheck.scanning import TargetScan, scan, scan_target
    from deadcheck.series import Series, scan_series
    from deadcheck.statistics import SiteId, SiteStats, Stats
    from deadcheck.swapping import PlannedSite, SwapPlan, apply_plan, plan_swap, save_swap, swap
    from deadcheck.tensorboard import write_tensorboard


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deadcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
