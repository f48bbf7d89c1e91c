"""What a run-time swap (``how="call"``) costs, next to the traced swap of the same sites.

Run: ``python benchmarks/swap_calls.py`` (about a minute on 2 CPU cores).

GoogLeNet's ``BasicConv2d`` calls ``F.relu`` in its forward, which traces, so
its 57 sites are normally rewritten (``how="rewrite"``). Here the same plan is
applied twice, once as traced rewrites and once with every site swapped at run
time, and forward passes alternate between the two models; the median of the
per-pair time ratios is the run-time swap's cost. A third column times the
original ReLU model against the rewritten one (a rewrite costs nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import torch
import torchvision
from torch import nn

import deadcheck


def _timed(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    return time.perf_counter() - start


def ratio(a: nn.Module, b: nn.Module, x: torch.Tensor, pairs: int) -> float:
    """Median of time(b) / time(a) over interleaved pairs."""
    for _ in range(2):
        _timed(a, x), _timed(b, x)
    return statistics.median(_timed(b, x) / _timed(a, x) for _ in range(pairs))


def models(batch: int) -> tuple[nn.Module, nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    x = torch.randn(batch, 3, 112, 112)
    plan = deadcheck.plan_swap(model, "leaky_relu", example_inputs=x)
    assert {s.how for s in plan.sites} == {"rewrite"}, {s.how for s in plan.sites}
    at_run_time = dataclasses.replace(
        plan, sites=tuple(dataclasses.replace(s, how="call") for s in plan.sites)
    )
    rewritten = deadcheck.swap(model, plan=plan)
    called = deadcheck.swap(model, plan=at_run_time)
    with torch.no_grad():
        assert torch.equal(rewritten(x), called(x))
    return model, rewritten, called, x


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    model, rewritten, called, x = models(args.batch)
    sites = len(deadcheck.plan_swap(model, "leaky_relu", example_inputs=x).sites)
    print(f"googlenet, batch {args.batch} at 112x112, {sites} sites, torch {torch.__version__}")
    print(f"  rewritten / ReLU model:        {ratio(model, rewritten, x, args.pairs):.3f}")
    print(f"  swapped at run time / rewritten: {ratio(rewritten, called, x, args.pairs):.3f}")


if __name__ == "__main__":
    main()
