"""deadcheck: find dead and dying ReLU units in any PyTorch model, and repair them.

The public names are loaded on first use, so that ``deadcheck --help`` and
other commands that need no model answer without importing torch.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from deadcheck.core.version import __version__

#: Every public name and the module that defines it: the one list. ``__all__`` and
#: the lazy loader derive from it; a test checks the typing imports and docs/api.md.
_EXPORTS = {
    "record": "deadcheck.recording.recorder",
    "Recorder": "deadcheck.recording.recorder",
    "RecordingOptions": "deadcheck.core.options",
    "analyze": "deadcheck.analysis.judging",
    "Report": "deadcheck.results.report",
    "SiteReport": "deadcheck.results.report",
    "Finding": "deadcheck.core.findings",
    "Code": "deadcheck.core.findings",
    "Severity": "deadcheck.core.findings",
    "Thresholds": "deadcheck.core.thresholds",
    "Stats": "deadcheck.results.stats",
    "SiteStats": "deadcheck.results.stats",
    "SiteId": "deadcheck.core.sites",
    "scan": "deadcheck.recording.feeding",
    "scan_target": "deadcheck.workflows.scanning",
    "TargetScan": "deadcheck.workflows.scanning",
    "load_target": "deadcheck.workflows.loading",
    "Target": "deadcheck.workflows.loading",
    "render": "deadcheck.output.rendering",
    "diff_reports": "deadcheck.analysis.diffing",
    "ReportDiff": "deadcheck.analysis.diffing",
    "scan_series": "deadcheck.workflows.series",
    "Series": "deadcheck.workflows.series",
    "swap": "deadcheck.repair.swapping",
    "plan_swap": "deadcheck.repair.swapping",
    "apply_plan": "deadcheck.repair.swapping",
    "save_swap": "deadcheck.repair.swapping",
    "SwapPlan": "deadcheck.repair.swapping",
    "PlannedSite": "deadcheck.repair.swapping",
    "AxisPReLU": "deadcheck.recording.layers",
    "recycle": "deadcheck.repair.recycling",
    "RecycleResult": "deadcheck.repair.recycling",
    "prune": "deadcheck.repair.pruning",
    "PruneResult": "deadcheck.repair.pruning",
    "PrunePlan": "deadcheck.repair.pruning",
    "apply_prune_plan": "deadcheck.repair.pruning",
    "save_prune": "deadcheck.repair.pruning",
    "Recycler": "deadcheck.training.recycler",
    "Monitor": "deadcheck.training.monitor",
    "Snapshot": "deadcheck.training.monitor",
    "Trend": "deadcheck.analysis.trends",
    "write_tensorboard": "deadcheck.output.tensorboard",
    "plot_report": "deadcheck.output.plotting",
    "DeadcheckError": "deadcheck.core.errors",
    "InputError": "deadcheck.core.errors",
    "ModelError": "deadcheck.core.errors",
    "RecordingError": "deadcheck.core.errors",
    "SwapError": "deadcheck.core.errors",
    "TrainingModeWarning": "deadcheck.core.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from deadcheck.analysis.diffing import ReportDiff, diff_reports
    from deadcheck.analysis.judging import analyze
    from deadcheck.analysis.trends import Trend
    from deadcheck.core.errors import (
        DeadcheckError,
        InputError,
        ModelError,
        RecordingError,
        SwapError,
        TrainingModeWarning,
    )
    from deadcheck.core.findings import Code, Finding, Severity
    from deadcheck.core.options import RecordingOptions
    from deadcheck.core.sites import SiteId
    from deadcheck.core.thresholds import Thresholds
    from deadcheck.output.plotting import plot_report
    from deadcheck.output.rendering import render
    from deadcheck.output.tensorboard import write_tensorboard
    from deadcheck.recording.feeding import scan
    from deadcheck.recording.layers import AxisPReLU
    from deadcheck.recording.recorder import Recorder, record
    from deadcheck.repair.pruning import (
        PrunePlan,
        PruneResult,
        apply_prune_plan,
        prune,
        save_prune,
    )
    from deadcheck.repair.recycling import RecycleResult, recycle
    from deadcheck.repair.swapping import (
        PlannedSite,
        SwapPlan,
        apply_plan,
        plan_swap,
        save_swap,
        swap,
    )
    from deadcheck.results.report import Report, SiteReport
    from deadcheck.results.stats import SiteStats, Stats
    from deadcheck.training.monitor import Monitor, Snapshot
    from deadcheck.training.recycler import Recycler
    from deadcheck.workflows.loading import Target, load_target
    from deadcheck.workflows.scanning import TargetScan, scan_target
    from deadcheck.workflows.series import Series, scan_series


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deadcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
