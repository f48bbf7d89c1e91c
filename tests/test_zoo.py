"""torchvision's zoo with random weights: every activation call is one site, with its units.

The reference is independent of deadcheck: forward pre-hooks on the ReLU
modules (numbered per pass) and, for the models that call ``F.relu`` inside
``BasicConv2d`` or at the root, the channel count of the tensor it receives.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
import torchvision
from torch import nn

import deadcheck

ZOO = [
    # name, input size, expected number of sites, kinds
    ("resnet18", 64, 17, {"ReLU"}),
    ("resnet50", 64, 49, {"ReLU"}),
    ("googlenet", 64, 57, {"ReLU"}),
    ("inception_v3", 80, 94, {"ReLU"}),
    ("densenet121", 64, 121, {"ReLU"}),
    ("mobilenet_v2", 64, 35, {"ReLU6"}),
    ("vgg11", 32, 10, {"ReLU"}),
    ("squeezenet1_0", 64, 26, {"ReLU"}),
    ("shufflenet_v2_x0_5", 64, 37, {"ReLU"}),
]


def build(name: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def reference_sites(model: nn.Module, x: torch.Tensor) -> list[tuple[str, int]]:
    """(base name, units) per activation call, in call order; names get #i afterwards."""
    calls: list[tuple[str, int]] = []
    handles = []
    for path, module in model.named_modules():
        if isinstance(module, (nn.ReLU, nn.ReLU6)):
            handles.append(
                module.register_forward_pre_hook(
                    lambda m, a, p=path: calls.append((p, a[0].shape[1]))
                )
            )
        elif type(module).__name__ == "BasicConv2d":  # F.relu(bn(conv(x))) in its forward
            handles.append(
                module.register_forward_hook(
                    lambda m, a, out, p=path: calls.append((f"{p}:relu", out.shape[1]))
                )
            )
    if isinstance(model, torchvision.models.DenseNet):  # F.relu(features) in forward
        handles.append(
            model.features.register_forward_hook(
                lambda m, a, out: calls.append((":relu", out.shape[1]))
            )
        )
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    totals = Counter(base for base, _ in calls)
    seen: Counter[str] = Counter()
    named = []
    for base, units in calls:
        named.append((base if totals[base] == 1 else f"{base}#{seen[base]}", units))
        seen[base] += 1
    return named


@pytest.mark.parametrize(("name", "size", "count", "kinds"), ZOO, ids=[z[0] for z in ZOO])
def test_zoo_sites_and_units(name: str, size: int, count: int, kinds: set[str]) -> None:
    model = build(name)
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode(), deadcheck.record(model) as rec:
        model(x)
    stats = rec.stats()
    assert len(stats.sites) == count
    assert {s.kind for s in stats.sites} == kinds
    got = [(s.name, s.units) for s in stats.sites]
    want = reference_sites(model, x)
    assert got == want  # same names, same units, same forward order
    assert all(s.unit_axis == 1 for s in stats.sites)


def test_resnet50_bottleneck_relu_is_three_sites_with_own_channel_counts() -> None:
    model = build("resnet50")
    with torch.no_grad(), deadcheck.record(model) as rec:
        model(torch.randn(1, 3, 64, 64))
    stats = rec.stats()
    assert [stats.site(f"layer1.0.relu#{i}").units for i in range(3)] == [64, 64, 256]
    assert [stats.site(f"layer4.2.relu#{i}").units for i in range(3)] == [512, 512, 2048]
