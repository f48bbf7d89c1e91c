"""The gradient that reaches each unit's input, against autograd's own (issue 23).

The reference keeps every pre-activation with ``retain_grad()``: where the
pre-activation feeds only the activation, its gradient is exactly what
reaches it through the activation.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import deadcheck
from deadcheck.core.findings import Code


def _prelu() -> nn.PReLU:
    act = nn.PReLU(4)
    with torch.no_grad():
        act.weight.copy_(torch.tensor([0.25, -0.5, 0.1, 1.2]))  # some negative, one above 1
    return act


ACTIVATIONS = [
    ("relu", nn.ReLU),
    ("relu-inplace", lambda: nn.ReLU(inplace=True)),
    ("leaky", lambda: nn.LeakyReLU(0.1)),
    ("leaky-inplace", lambda: nn.LeakyReLU(0.1, inplace=True)),
    ("prelu-per-unit-slopes", _prelu),
    ("relu6", nn.ReLU6),
]
LAYERS = [("linear", False), ("conv", True)]


def _case(make_act, conv: bool) -> tuple[nn.Module, nn.Module, nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    first = nn.Conv2d(3, 4, 3) if conv else nn.Linear(5, 4)
    head = nn.Conv2d(4, 2, 1) if conv else nn.Linear(4, 2)
    with torch.no_grad():
        first.bias[1] = -100.0  # unit 1 never fires: ReLU cuts its gradient to exactly 0
        if not conv:
            head.weight[:, 3] *= 1e-3  # unit 3's output barely matters: a thousandth of the signal
    xs = [torch.randn(6, 3, 6, 6) if conv else torch.randn(6, 5) for _ in range(3)]
    return first, make_act(), head, xs


def _reference(first: nn.Module, act: nn.Module, head: nn.Module, xs: list) -> list[float]:
    sums = torch.zeros(4, dtype=torch.float64)
    count = 0
    for x in xs:
        z = first(x)
        z.retain_grad()
        y = act(z.clone()) if getattr(act, "inplace", False) else act(z)
        head(y).pow(2).sum().backward()
        g = z.grad.abs()
        dims = [d for d in range(g.ndim) if d != 1]
        sums += g.sum(dims).double()
        count += g.numel() // 4
    return (sums / count).tolist()


@pytest.mark.parametrize("conv", [c[1] for c in LAYERS], ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("make_act", [a[1] for a in ACTIVATIONS], ids=[a[0] for a in ACTIVATIONS])
def test_mean_gradient_matches_autograd(make_act, conv: bool) -> None:
    first, act, head, xs = _case(make_act, conv)
    expected = _reference(first, act, head, xs)
    model = nn.Sequential(first, act, head)
    model.zero_grad()
    with deadcheck.record(model, gradients=True) as rec:
        for x in xs:
            model(x).pow(2).sum().backward()
    site = rec.report().site("1")
    assert site.figures["mean_abs_grad"] == pytest.approx(expected, rel=1e-5, abs=1e-12)
    if isinstance(act, (nn.ReLU, nn.ReLU6)):
        assert site.figures["mean_abs_grad"][1] == 0.0  # exactly: the gradient is cut
        assert 1 in site.figures["starved_units"]


def test_starved_units_are_a_finding_and_off_by_default() -> None:
    first, act, head, xs = _case(nn.ReLU, conv=False)
    model = nn.Sequential(first, act, head)
    with deadcheck.record(model, gradients=True) as rec:
        for x in xs:
            model(x).pow(2).sum().backward()
    report = rec.report()
    found = [f for f in report.findings if f.code is Code.STARVED_UNITS]
    assert [f.units for f in found] == [(1, 3)]  # cut (dead) and a thousandth of the signal
    assert "at most 0.1 of the site's average" in found[0].message
    assert deadcheck.Report.from_dict(report.to_dict()) == report
    with deadcheck.record(model) as plain:
        model(xs[0]).sum().backward()
    assert plain.report().site("1").figures["mean_abs_grad"] is None
    with torch.no_grad(), deadcheck.record(model, gradients=True) as no_backward:
        model(xs[0])
    assert no_backward.report().site("1").figures["starved_units"] is None


@pytest.mark.parametrize(
    ("act", "expected"),
    [(nn.ReLU(), 0.0), (nn.LeakyReLU(0.01), (0.1 * 0.01) ** 4 * 0.01)],
    ids=["relu-exactly-zero", "leaky-nearly-zero"],
)
def test_five_layers_of_negative_inputs(act: nn.Module, expected: float) -> None:
    """The background texts' example: weights 0.1, every input negative, five layers deep.

    With ReLU the gradient at the first activation's input is exactly 0; with
    LeakyReLU(0.01) it is not zero but nearly: 0.01 there, then 0.1 * 0.01 per
    layer above, 1e-14 in all for this width-1 stack.
    """
    layers: list[nn.Module] = []
    for _ in range(5):
        linear = nn.Linear(1, 1)
        with torch.no_grad():
            linear.weight.fill_(0.1)
            linear.bias.fill_(-1.0)
        layers += [linear, copy.deepcopy(act)]
    model = nn.Sequential(*layers)
    with deadcheck.record(model, gradients=True) as rec:
        model(-torch.rand(16, 1)).sum().backward()
    first = rec.report().site("1")
    assert first.figures["mean_abs_grad"][0] == pytest.approx(expected, rel=1e-4, abs=0.0)


def test_scan_with_a_loss_runs_backward_and_leaves_the_grads_as_they_were() -> None:
    first, act, head, xs = _case(nn.ReLU, conv=False)
    model = nn.Sequential(first, act, head)
    expected = _reference(first, act, head, xs)
    model.zero_grad()
    head.weight.grad = torch.full_like(head.weight, 7.0)  # the user's own, kept
    report = deadcheck.scan(model, xs, gradients=True, loss=lambda out, batch: out.pow(2).sum())
    assert report.site("1").figures["mean_abs_grad"] == pytest.approx(expected, rel=1e-5)
    assert first.weight.grad is None and torch.equal(head.weight.grad, torch.full((2, 4), 7.0))
    with pytest.raises(deadcheck.InputError, match=r"^gradients: .*loss"):
        deadcheck.scan(model, xs, gradients=True)


def test_the_command_line_takes_the_targets_loss() -> None:
    from click.testing import CliRunner

    from deadcheck.cli import main

    done = CliRunner().invoke(
        main, ["scan", "tests/targets/with_loss.py", "--gradients", "--format", "json"]
    )
    assert done.exit_code == 0, done.output
    site = json.loads(done.stdout)["sites"][0]
    assert site["mean_abs_grad"][1] == 0.0 and 1 in site["starved_units"]
    refused = CliRunner().invoke(main, ["scan", "tests/targets/planted.py", "--gradients"])
    assert refused.exit_code == 2
    assert refused.stderr.strip().startswith("deadcheck: error: --gradients: ")
    assert len(refused.stderr.strip().splitlines()) == 1


class ScaledAfter(nn.Module):
    """Changes the activation's output in place after the call: its signs are gone by backward."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 4)
        self.act = nn.LeakyReLU(0.1)  # saves its input, so autograd allows the change

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.layer(x))
        return y.mul_(2.0)


def test_an_output_changed_in_place_makes_the_figures_null_not_wrong() -> None:
    model = ScaledAfter()
    with deadcheck.record(model, gradients=True) as rec:
        model(torch.randn(4, 3)).sum().backward()  # the user's backward still runs
    report = rec.report()
    site = report.site("act")
    assert site.figures["mean_abs_grad"] is None and site.figures["starved_units"] is None
    assert model.layer.weight.grad is not None
    (said,) = [f for f in report.findings if f.code is Code.GRADIENT_UNREAD]
    assert said.site == "act" and said.message.startswith("1 backward pass(es) could not be read")
    assert deadcheck.Report.from_dict(report.to_dict()) == report
