"""Threads and caught interrupts never change a count (issue 22, "wrong numbers")."""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deadcheck
from deadcheck.core.errors import RecordingError


class Net(nn.Module):
    """A convolution and a functional ReLU: the site the function mode must see."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([-1.0, 1.0, 2.0, -2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def test_two_threads_recording_two_models_count_exactly() -> None:
    results: dict[int, deadcheck.Stats] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(i: int) -> None:
        try:
            net = Net()
            start.wait()
            with deadcheck.record(net) as rec:
                for _ in range(30):
                    net(torch.randn(2, 3, 4, 4))
            results[i] = rec.stats()
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    for _trial in range(5):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        for stats in results.values():
            (site,) = stats.sites
            assert stats.samples == 60
            assert (site.name, site.positions, site.zeros) == (":relu", 960, (960, 0, 0, 960))
    assert not torch.overrides._get_current_function_mode_stack()


class Waits(nn.Module):
    """Holds its forward pass open until told, so a second thread's pass overlaps it."""

    def __init__(self, inside: threading.Event, go: threading.Event) -> None:
        super().__init__()
        self.net = Net()
        self.inside, self.go = inside, go

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inside.set()
        self.go.wait(10)
        return self.net(x)


def test_one_recorder_in_two_threads_at_once_is_refused_clearly() -> None:
    inside, go = threading.Event(), threading.Event()
    model = Waits(inside, go)
    rec = deadcheck.record(model)
    first: list[torch.Tensor] = []
    with rec:
        thread = threading.Thread(target=lambda: first.append(model(torch.randn(2, 3, 4, 4))))
        thread.start()
        assert inside.wait(10)
        with pytest.raises(RecordingError, match="two threads"):
            model(torch.randn(2, 3, 4, 4))
        go.set()
        thread.join()
        model(torch.randn(2, 3, 4, 4))  # one at a time, from any thread: counted
    stats = rec.stats()
    (site,) = stats.sites
    assert stats.samples == 4 and site.positions == 4 * 16
    assert first and not torch.overrides._get_current_function_mode_stack()


def test_a_recorder_detached_from_another_thread_leaves_no_mode_behind() -> None:
    model = Net()
    rec = deadcheck.record(model).attach()
    thread = threading.Thread(target=lambda: model(torch.randn(1, 3, 2, 2)))
    thread.start()
    thread.join()
    rec.detach()
    assert rec.stats().samples == 1
    assert not torch.overrides._get_current_function_mode_stack()


def test_a_caught_keyboard_interrupt_leaves_later_passes_exact() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    seen = {"calls": 0}

    def interrupt(module: nn.Module, args: object, out: torch.Tensor) -> None:
        seen["calls"] += 1
        if seen["calls"] == 2:
            raise KeyboardInterrupt  # Ctrl-C inside the second pass

    handle = model[1].register_forward_hook(interrupt)  # runs before deadcheck's hook
    try:
        with deadcheck.record(model) as rec:
            for _ in range(8):
                # the user catches it (a notebook cell, a training loop)
                with contextlib.suppress(KeyboardInterrupt):
                    model(torch.randn(1, 3))
            bytes_after_8 = rec.counter_bytes()
            for _ in range(200):
                model(torch.randn(1, 3))
    finally:
        handle.remove()
    stats = rec.stats()
    # 208 passes started; the interrupted one stopped before its ReLU was counted.
    assert stats.samples == 208
    assert stats.names == ("1",) and stats.sites[0].positions == 207
    assert rec.counter_bytes() == bytes_after_8


class Recursive(nn.Module):
    """Calls itself: the same module twice on the stack is not a stale pass."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, depth: int = 2) -> torch.Tensor:
        x = F.relu(self.fc(x))
        return self(x, depth - 1) if depth else x


def test_a_module_that_calls_itself_is_one_pass() -> None:
    model = Recursive()
    with deadcheck.record(model) as rec:
        model(torch.randn(2, 3))
        model(torch.randn(2, 3))
    stats = rec.stats()
    assert stats.samples == 4
    assert stats.names == (":relu#0", ":relu#1", ":relu#2")


def test_the_callbacks_recycler_never_counts_evaluation_passes() -> None:
    """A training run's eval passes fed recycling decisions (issue 21's double recorder)."""
    from deadcheck.integrations._core import Options, Watch

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    watch = Watch(model, Options(every=10, recycle=0.1), writer=None, log_dir=None)
    watch.start_recycling(torch.optim.SGD(model.parameters(), lr=0.1))
    try:
        model.eval()
        model(torch.randn(5, 3))
        assert watch.recycler is not None
        assert watch.recycler._recorder.stats().samples == 0
        assert watch.monitor.recorder.stats().samples == 0
        model.train()
        model(torch.randn(5, 3))
        assert watch.recycler._recorder.stats().samples == 5
    finally:
        watch.close()


def test_the_callbacks_monitor_and_recycler_share_one_recorder() -> None:
    """One set of hooks per model: the Recycler recycles from the Monitor's own snapshots."""
    from deadcheck.integrations._core import Options, Watch

    def hooks(model: nn.Module) -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias[1] = -100.0  # unit 1 never fires: dead, so dormant at any tau
    alone = deadcheck.Recorder(model).attach()
    one_set = hooks(model)
    alone.detach()
    watch = Watch(model, Options(every=2, recycle=0.1), writer=None, log_dir=None)
    watch.start_recycling(torch.optim.SGD(model.parameters(), lr=0.1))
    try:
        assert watch.recycler is not None
        assert watch.recycler.recorder is watch.monitor.recorder
        assert hooks(model) == one_set
        for _ in range(2):
            model(torch.randn(5, 3))
            watch.step()
        assert [r.recycled for r in watch.recycler.history] == [{"1": (1,)}]
        assert watch.monitor.history[-1].stats is not None
        assert watch.monitor.history[-1].stats.samples == 10
    finally:
        watch.close()
    assert hooks(model) == 0


def test_the_callbacks_record_gradients_when_asked() -> None:
    from deadcheck.integrations._core import Options, Watch

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias[2] = -100.0  # never fires: its gradient is cut
    watch = Watch(model, Options(every=2, gradients=True), writer=None, log_dir=None)
    try:
        for _ in range(2):
            model(torch.randn(5, 3)).sum().backward()
            watch.step()
        site = watch.monitor.history[-1].report.site("1")
        assert site.figures["mean_abs_grad"][2] == 0.0
        assert 2 in site.figures["starved_units"]
    finally:
        watch.close()
