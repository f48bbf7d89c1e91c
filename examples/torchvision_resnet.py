"""Scan a torchvision ResNet-50, then swap its flagged sites for PReLU.

With a weights file (``python examples/torchvision_resnet.py resnet50.pth``)
the scan runs on your trained network; without one it uses random weights.
Inputs are random images; for real conclusions feed real batches
(``deadcheck scan model.py`` with a ``batches()`` that yields them).

Run: ``python examples/torchvision_resnet.py [WEIGHTS]`` (``DEADCHECK_QUICK=1``:
smaller images).
"""

from __future__ import annotations

import os
import sys

import torch
import torchvision

import deadcheck
from deadcheck.core.errors import InputError
from deadcheck.workflows.loading import load_weights

QUICK = os.environ.get("DEADCHECK_QUICK") == "1"
SHAPE = (2, 3, 64, 64) if QUICK else (8, 3, 224, 224)


def main() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    if len(sys.argv) > 1:
        try:
            load_weights(model, sys.argv[1])  # weights_only=True; refuses pickled code
        except InputError as error:
            sys.exit(f"error: {error}")
    batches = [torch.randn(SHAPE) for _ in range(2)]
    report = deadcheck.scan(model, batches, target="resnet50")
    print(deadcheck.render(report))
    # Random weights rarely leave a layer dying: swap the five sites with the most dead units.
    worst = sorted(report.sites, key=lambda layer: -layer.dead_fraction)[:5]
    names = [layer.name for layer in worst]
    swapped = deadcheck.swap(model, "prelu", sites=names, example_inputs=batches[0])
    added = sum(p.numel() for p in swapped.parameters()) - sum(
        p.numel() for p in model.parameters()
    )
    after = deadcheck.scan(swapped, batches, target="resnet50 swapped")
    plan = deadcheck.plan_swap(model, "prelu", names, report=report)
    print(
        f"swapped to PReLU: {len(plan.sites)} sites with the most dead units, {added} slopes added"
    )
    for site in plan.sites:
        layer = after.site(site.new_site)
        share = report.site(site.site).dead_fraction
        print(
            f"  {site.site:<18} ({share:.0%} dead) -> {site.new_site:<18} "
            f"{layer.kind}, {layer.units} slopes"
        )
    print(
        "the swap does not move pre-activations: units start where they were, but now "
        "get a gradient when negative, so training can bring them back"
    )


if __name__ == "__main__":
    main()
