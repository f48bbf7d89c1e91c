"""What each kind of activation is: the one table of facts about the activations deadcheck knows.

A row says how a kind behaves, so that every part of deadcheck asks this table
instead of keeping its own list: analysis asks whether a kind is leaky (its
negative regime still passes a gradient), counting whether it saturates, a
swap whether rule-chosen sites of it are replaced. Plain data, no torch: the
torch entry points that produce each kind are bound in
:mod:`deadcheck.recording.activations`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILY", "KINDS", "Kind", "kind", "reads_input"]


@dataclass(frozen=True)
class Kind:
    """One kind of activation and what deadcheck needs to know of it."""

    #: The name reports use ("ReLU").
    name: str
    #: The short name a functional call is reported under ("relu" in ``block:relu``).
    function: str
    #: Negative inputs still pass a gradient (LeakyReLU, PReLU, RReLU): "dead" units can recover.
    leaky: bool = False
    #: An upper clip whose outputs get no gradient either (6 for ReLU6).
    saturate_at: float | None = None
    #: Replaced when a swap chooses sites by rule ("all", "flagged"); others only when named.
    swappable: bool = False
    #: A ReLU-family kind: exactly zero (or the negative regime) below 0, so "dead" and the
    #: zero fraction mean something. Other kinds (GELU, SiLU, ...) get dormant statistics only.
    family: bool = True
    #: Its output is never negative (ReLU, ReLU6): its |output| is its output.
    nonnegative: bool = False
    #: Its counts (x > 0, NaN, the cap) and |output| follow from its input, so the
    #: counting read reads the input where it is intact, and each unit's largest input
    #: comes in the same read (LeakyReLU: only with a slope > 0; at slope 0 an input of
    #: -inf gives a NaN output, which only the output shows).
    from_input: bool = False


#: Every kind, by name.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("ReLU", "relu", swappable=True, nonnegative=True, from_input=True),
        # ReLU6's cap at 6 is deliberate (quantisation-friendly ranges): swapped only when named.
        Kind("ReLU6", "relu6", saturate_at=6.0, nonnegative=True, from_input=True),
        Kind("LeakyReLU", "leaky_relu", leaky=True, from_input=True),
        Kind("PReLU", "prelu", leaky=True, from_input=True),
        Kind("RReLU", "rrelu", leaky=True),
        # Recorded with activations="all": smooth or saturating, never exactly zero.
        *(
            Kind(name, function, family=False)
            for name, function in (
                ("GELU", "gelu"),
                ("SiLU", "silu"),
                ("Mish", "mish"),
                ("ELU", "elu"),
                ("CELU", "celu"),
                ("SELU", "selu"),
                ("Hardswish", "hardswish"),
                ("Softplus", "softplus"),
                ("Tanh", "tanh"),
                ("Sigmoid", "sigmoid"),
            )
        ),
    )
}

#: The kinds recorded by default: the ReLU family.
FAMILY = frozenset(k.name for k in KINDS.values() if k.family)


def kind(name: str) -> Kind:
    """The row for ``name``; KeyError names the kinds there are."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"no activation kind {name!r}; kinds: {', '.join(KINDS)}") from None


def reads_input(name: str, slope: object, intact: bool) -> bool:
    """Whether the counting read of a call reads its input (``intact``: not overwritten in place).

    Only the counting read asks this; it counts the calls it read on their
    output (``Read.OUTPUT_CALLS``), so statistics that depend on which tensor
    was read (the largest input) never decide it apart.
    """
    row = KINDS.get(name)
    if row is None or not row.from_input or not intact:
        return False
    return name != "LeakyReLU" or (isinstance(slope, (int, float)) and slope > 0)
