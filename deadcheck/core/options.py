"""How to record, as one frozen value built once and passed down.

``record``, ``Recorder``, ``scan``, ``scan_target``, ``Monitor``, the
``Recycler`` and the framework callbacks all take the same options: each
accepts ``options=RecordingOptions(...)`` and the same fields as keywords,
declared once in :class:`RecordingKwargs`; :func:`recording_options` merges
the two. No signature lists the options by hand, so none can lack one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypedDict

from deadcheck.core.kinds import FAMILY, KINDS

__all__ = ["ACTIVATIONS", "RecordingKwargs", "RecordingOptions", "recording_options"]

#: What ``activations`` may be: the ReLU family, or every kind deadcheck knows.
ACTIVATIONS = ("relu", "all")


@dataclass(frozen=True)
class RecordingOptions:
    """What a recorder counts, and where.

    * ``activations``: ``"relu"`` records the ReLU family (ReLU, ReLU6,
      LeakyReLU, PReLU, RReLU); ``"all"`` also GELU, SiLU, Mish, ELU, CELU,
      SELU, Hardswish, Softplus, Tanh and Sigmoid (bare ``torch.tanh`` and
      ``torch.sigmoid`` calls are gates, not units, and are left out).
    * ``unit_axis``: a site name (``layers.3``, ``block:relu#1``, or the name
      without ``#i``) to the axis that holds its units, where the default
      guess is wrong.
    * ``batch_axis``: the axis of the first input tensor that counts samples,
      where it is not axis 0 (1 for a sequence-first (T, N, E) input).
    * ``dormant_sums``: sum each unit's |output| for ReDo's dormant score;
      computed in the same read as the counts, so on by default (off: the
      counts alone, which is what a pure-torch count with no kernel saves most
      on); always on under ``activations="all"``.
    * ``margins``: keep each unit's largest input (how far a dead unit is
      from firing); in the same read too, so on by default.
    * ``gradients``: also sum, in backward, the |gradient| that reaches each
      unit's input through its activation (starved units); counts only passes
      that run backward.
    * ``training_only``: count only forward passes made in training mode, so
      a training loop's evaluation passes are left out.
    * ``scoped``: keep the function mode off in modules read as making no
      activation call (False: on in every module, slower, for code that
      defeats the reading).
    """

    activations: Literal["relu", "all"] = "relu"
    unit_axis: Mapping[str, int] = field(default_factory=dict)
    batch_axis: int | None = None
    dormant_sums: bool = True
    margins: bool = True
    gradients: bool = False
    training_only: bool = False
    scoped: bool = True

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"activations must be 'relu' or 'all', got {self.activations!r}")
        if not isinstance(self.unit_axis, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in self.unit_axis.items()
        ):
            raise ValueError("unit_axis must map site names to integer axes")
        object.__setattr__(self, "unit_axis", dict(self.unit_axis))
        if self.batch_axis is not None and (
            isinstance(self.batch_axis, bool) or not isinstance(self.batch_axis, int)
        ):
            raise ValueError(f"batch_axis must be an integer, got {self.batch_axis!r}")
        for name in ("dormant_sums", "margins", "gradients", "training_only", "scoped"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def kinds(self) -> frozenset[str]:
        """The activation kinds recorded."""
        return FAMILY if self.activations == "relu" else frozenset(KINDS)

    @property
    def keeps_sums(self) -> bool:
        """Whether sites keep |output| sums: asked for, or every kind recorded."""
        return self.dormant_sums or self.activations == "all"


class RecordingKwargs(TypedDict, total=False):
    """:class:`RecordingOptions`' fields as keywords (a test keeps the two the same)."""

    activations: Literal["relu", "all"]
    unit_axis: Mapping[str, int]
    batch_axis: int | None
    dormant_sums: bool
    margins: bool
    gradients: bool
    training_only: bool
    scoped: bool


_FIELDS = frozenset(f.name for f in fields(RecordingOptions))


def recording_options(
    options: RecordingOptions | None = None, given: Mapping[str, Any] | None = None
) -> RecordingOptions:
    """``options`` (default: the defaults) with the keywords in ``given`` replaced.

    TypeError names a keyword that is not a recording option, as a Python
    signature would.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - _FIELDS)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument {unknown[0]!r}; recording options are "
            f"{', '.join(sorted(_FIELDS))}"
        )
    if given.get("unit_axis", 0) is None:
        given["unit_axis"] = {}
    base = options if options is not None else RecordingOptions()
    return replace(base, **given) if given else base
