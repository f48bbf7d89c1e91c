"""When a count becomes a finding: the thresholds, each default with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from deadcheck.core.checks import is_number
from deadcheck.core.errors import InputError

__all__ = ["Thresholds"]


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
    * ``starved=0.1``: the same share for the gradient a unit's input
      receives (recorded with ``gradients=True``): a unit getting a tenth of
      its site's mean gradient learns an order of magnitude slower than its
      neighbours. It mirrors the dormant default; no better-founded value is
      known to us.
    """

    dying: float = 0.5
    near_linear: float = 0.3
    tiny_slope: float = 0.005
    dormant: float = 0.1
    starved: float = 0.1

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
        if not 0.0 <= self.starved < 1.0:
            raise InputError(f"starved must be in [0, 1), got {self.starved}", option="starved")
        if self.tiny_slope < 0:
            raise InputError(f"tiny_slope must be >= 0, got {self.tiny_slope}", option="tiny_slope")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
