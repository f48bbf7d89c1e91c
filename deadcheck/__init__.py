"""deadcheck: find dead and dying ReLU units in any PyTorch model, and repair them.

The public names are loaded on first use, so that ``deadcheck --help`` and
other commands that need no model answer without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "record": "deadcheck.recording",
    "Recorder": "deadcheck.recording",
    "RecordingError": "deadcheck.errors",
    "DeadcheckError": "deadcheck.errors",
    "InputError": "deadcheck.errors",
    "ModelError": "deadcheck.errors",
    "AxisPReLU": "deadcheck.layers",
    "analyze": "deadcheck.analysis",
    "Report": "deadcheck.analysis",
    "LayerReport": "deadcheck.analysis",
    "Finding": "deadcheck.analysis",
    "Thresholds": "deadcheck.analysis",
    "Stats": "deadcheck.statistics",
    "SiteStats": "deadcheck.statistics",
    "scan": "deadcheck.scanning",
    "load_target": "deadcheck.loading",
    "render": "deadcheck.rendering",
    "swap": "deadcheck.swapping",
    "Monitor": "deadcheck.monitoring",
    "Trend": "deadcheck.monitoring",
    "write_tensorboard": "deadcheck.tensorboard",
    "plot_report": "deadcheck.plotting",
    "plan_swap": "deadcheck.swapping",
    "apply_plan": "deadcheck.swapping",
    "SwapPlan": "deadcheck.swapping",
    "SwapError": "deadcheck.errors",
}

__all__ = [
    "AxisPReLU",
    "DeadcheckError",
    "Finding",
    "InputError",
    "LayerReport",
    "ModelError",
    "Monitor",
    "Recorder",
    "RecordingError",
    "Report",
    "SiteStats",
    "Stats",
    "SwapError",
    "SwapPlan",
    "Thresholds",
    "Trend",
    "__version__",
    "analyze",
    "apply_plan",
    "load_target",
    "plan_swap",
    "plot_report",
    "record",
    "render",
    "scan",
    "swap",
    "write_tensorboard",
]

if TYPE_CHECKING:
    from deadcheck.analysis import Finding, LayerReport, Report, Thresholds, analyze
    from deadcheck.errors import DeadcheckError, InputError, ModelError, RecordingError, SwapError
    from deadcheck.layers import AxisPReLU
    from deadcheck.loading import load_target
    from deadcheck.monitoring import Monitor, Trend
    from deadcheck.plotting import plot_report
    from deadcheck.recording import Recorder, record
    from deadcheck.rendering import render
    from deadcheck.scanning import scan
    from deadcheck.statistics import SiteStats, Stats
    from deadcheck.swapping import SwapPlan, apply_plan, plan_swap, swap
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
