"""The Lightning and Hugging Face Trainer callbacks, in real training runs (tiny, on the CPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from deadcheck.integrations.lightning import DeadcheckCallback as LightningCallback
from deadcheck.integrations.transformers import DeadcheckCallback as HFCallback
from tests.helpers import close_values


class Module(pl.LightningModule):
    """An MLP whose second ReLU layer (net.3) a high learning rate kills; float64 throughout."""

    def __init__(self, lr: float, dead_layer: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)
        ).double()
        if dead_layer:
            with torch.no_grad():
                self.net[2].bias.fill_(-100.0)  # planted: net.3 is dead from the start
        self.lr = lr

    def training_step(self, batch, index):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _loader(n: int = 64) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64) * 5
    y = (x[:, 0] > 0).long()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


class _ProcessGroupCleanup(pl.Callback):
    """Ranks leave together and close their process group, so gloo never aborts at exit."""

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def _trainer(root: Path, callback, logger: Any = None, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        default_root_dir=root,
        callbacks=[callback, _ProcessGroupCleanup()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=logger if logger is not None else pl.loggers.TensorBoardLogger(root),
        **kwargs,
    )


def test_lightning_logs_writes_the_report_and_flags_the_dying_layer(tmp_path: Path) -> None:
    callback = LightningCallback(every=4)
    trainer = _trainer(tmp_path, callback, max_epochs=2)
    trainer.fit(Module(lr=5.0), _loader(), _loader())
    report = json.loads(Path(callback.report_path).read_text())
    sites = {s["name"]: s for s in report["sites"]}
    assert sites["net.3"]["dead_fraction"] >= 0.5  # killed by lr 5 (margin: any CPU)
    assert any(f["site"] == "net.3" and f["severity"] != "info" for f in report["findings"])
    assert report["samples"] == 64  # the last window: 4 steps of 16, validation left out
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trainer.log_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "deadcheck/dead_fraction/net.3" in tags and "val_loss" in tags
    assert [e.step for e in events.Scalars("deadcheck/dead_fraction/net.3")] == [4, 8]
    assert events.Tensors("custom_scalars__config__")  # the grouped layout, in the trainer's run
    assert not any(m._forward_hooks for m in trainer.lightning_module.modules())


def test_lightning_csv_logger_gets_the_headline_figures(tmp_path: Path) -> None:
    import csv

    callback = LightningCallback(every=2)
    logger = pl.loggers.CSVLogger(tmp_path, name="csv")
    trainer = _trainer(tmp_path, callback, logger=logger, max_epochs=1)
    trainer.fit(Module(lr=0.01, dead_layer=True), _loader())
    with open(Path(logger.log_dir) / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("deadcheck/dead_fraction/net.3")]
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(float(r["deadcheck/dead_fraction/net.3"]) == 1.0 for r in rows)  # planted
    assert all(float(r["deadcheck/findings/error"]) >= 1 for r in rows)


def test_lightning_fail_on_error_stops_training_early(tmp_path: Path) -> None:
    callback = LightningCallback(every=2, fail_on="error")
    trainer = _trainer(tmp_path, callback, max_epochs=5)
    trainer.fit(Module(lr=0.01, dead_layer=True), _loader())
    assert trainer.global_step == 2  # stopped at the first snapshot, not after 20 steps
    assert callback.stopped_by is not None and "dead-layer at net.3" in callback.stopped_by


def _bert_run(
    output: Path, checkpointing: bool, callback, dead: bool = False, report_to: Any = ()
) -> int:
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_act="relu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=16,
    )
    model = BertForSequenceClassification(config)
    if dead:
        with torch.no_grad():  # planted: the first FFN's ReLU is dead on every input
            model.bert.encoder.layer[0].intermediate.dense.bias.fill_(-100.0)
    g = torch.Generator().manual_seed(0)
    data = [
        {"input_ids": torch.randint(0, 50, (8,), generator=g), "labels": i % 2} for i in range(32)
    ]
    args = TrainingArguments(
        output_dir=str(output),
        per_device_train_batch_size=8,
        max_steps=6,
        report_to=list(report_to),
        use_cpu=True,
        gradient_checkpointing=checkpointing,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
    )
    callbacks = callback if isinstance(callback, list) else [callback]
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    trainer.train()
    for c in callbacks:
        c.history_seen = list(trainer.state.log_history)
    return trainer.state.global_step


def test_hf_trainer_counts_are_the_same_with_gradient_checkpointing(tmp_path: Path) -> None:
    plain, checkpointed = HFCallback(every=3), HFCallback(every=3)
    _bert_run(tmp_path / "plain", False, plain)
    _bert_run(tmp_path / "ckpt", True, checkpointed)
    a = json.loads((tmp_path / "plain" / "deadcheck.json").read_text())
    b = json.loads((tmp_path / "ckpt" / "deadcheck.json").read_text())
    assert a == b
    assert a["samples"] == 24 and len(a["sites"]) == 2  # 3 steps of 8; one FFN per layer
    assert [s["units"] for s in a["sites"]] == [32, 32]
    history = [[s.report.samples for s in c.watch.monitor.history] for c in (plain, checkpointed)]
    assert history == [[24, 24], [24, 24]]


def test_hf_trainer_log_history_holds_the_headline_figures(tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Reporter(TrainerCallback):  # stands for W&B, MLflow, ...: a reporting callback
        def __init__(self) -> None:
            self.logged: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and any(k.startswith("deadcheck/") for k in logs):
                self.logged.append(dict(logs))

    callback, reporter = HFCallback(every=3), Reporter()
    _bert_run(tmp_path, False, [reporter, callback], dead=True)
    dead = "deadcheck/dead_fraction/bert.encoder.layer.0.intermediate.intermediate_act_fn"
    history = [h for h in callback.history_seen if dead in h]
    assert [h["step"] for h in history] == [3, 6]
    assert all(h[dead] == 1.0 for h in history)
    assert [r[dead] for r in reporter.logged] == [1.0, 1.0]


def test_hf_trainer_tensorboard_run_holds_the_charts_and_the_layout(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _bert_run(tmp_path, False, HFCallback(every=3), dead=True, report_to=["tensorboard"])
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert [p.name for p in runs if p.name == "deadcheck"] == []  # no run of its own
    assert len(runs) == 1  # the trainer's own run
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    dead = "deadcheck/dead_fraction/bert.encoder.layer.0.intermediate.intermediate_act_fn"
    assert [e.step for e in events.Scalars(dead)] == [3, 6]  # once each: no duplicate from on_log
    assert events.Tensors("custom_scalars__config__")
    assert any("loss" in tag for tag in events.Tags()["scalars"])  # the trainer's own charts


def test_hf_trainer_fail_on_stops_training(tmp_path: Path) -> None:
    callback = HFCallback(every=2, fail_on="error")
    steps = _bert_run(tmp_path, False, callback, dead=True)
    assert steps == 2  # stopped at the first snapshot, not after 6 steps
    assert callback.stopped_by is not None and "dead-layer" in callback.stopped_by
    report = json.loads((tmp_path / "deadcheck.json").read_text())
    assert any(f["code"] == "dead-layer" for f in report["findings"])


def test_importing_deadcheck_imports_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, deadcheck; deadcheck.record; "
        "assert 'lightning' not in sys.modules and 'transformers' not in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("bad", ["warnings", "fatal"])
def test_a_bad_fail_on_is_refused_when_made(bad: str) -> None:
    import deadcheck

    with pytest.raises(deadcheck.InputError, match="fail_on must be one of"):
        LightningCallback(fail_on=bad)


def test_lightning_ddp_on_two_cpu_processes_reports_once_with_counts_summed(tmp_path: Path) -> None:
    """Two gloo ranks, each half the batches: the one report equals a single process's."""
    reports = {}
    for name, kwargs in (
        ("single", {"devices": 1}),
        ("ddp", {"devices": 2, "strategy": "ddp_spawn"}),
    ):
        root = tmp_path / name
        callback = LightningCallback(every=1000)  # one window: the whole run
        trainer = _trainer(root, callback, max_epochs=1, **kwargs)
        trainer.fit(Module(lr=0.0), _loader())  # lr 0: the same weights on every step
        found = list(root.rglob("deadcheck.json"))
        assert len(found) == 1, found  # rank 0 alone writes
        reports[name] = json.loads(found[0].read_text())
    assert reports["ddp"]["samples"] == reports["single"]["samples"] == 64
    # counts summed exactly; the |output| sums of two ranks add in another order
    ddp, single = reports["ddp"]["sites"], reports["single"]["sites"]
    for a, b in zip(ddp, single, strict=True):
        assert close_values(a.pop("mean_abs"), b.pop("mean_abs"))
    assert ddp == single


@pytest.mark.parametrize("section", ["## PyTorch Lightning", "## Hugging Face Trainer"])
def test_the_training_docs_snippets_run(section: str, tmp_path: Path) -> None:
    """docs/training.md's snippet for each framework is complete and runs as printed."""
    import subprocess
    import sys

    text = (Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text()
    block = text[text.index(section) :].split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(tmp_path.rglob("deadcheck.json")), "the snippet wrote no report"
