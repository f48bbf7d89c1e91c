"""deadcheck in PyTorch Lightning: one callback.

>>> from deadcheck.integrations.lightning import DeadcheckCallback
>>> trainer = Trainer(callbacks=[DeadcheckCallback(every=100)])

It attaches a Monitor at fit start (training passes only: validation is left
out) and steps it after every training batch. It logs the ``deadcheck/...``
charts through the trainer's TensorBoard logger when there is one (scalars,
histograms, the heatmap and the Custom Scalars layout; else into a
``deadcheck/`` folder in ``trainer.log_dir``), and gives the headline figures to every
other logger the trainer has (``log_metrics``: CSV, W&B, MLflow, ...). It
stops training through ``trainer.should_stop`` on a finding at or above
``fail_on``, and at fit end writes the last report to ``deadcheck.json`` in
the log directory. Under the DDP strategy every rank steps the Monitor, the
counts are summed over ranks, and rank 0 writes. Works with ``lightning`` or
``pytorch_lightning``, whichever is installed.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError:  # the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef,assignment]
    from pytorch_lightning.loggers import TensorBoardLogger  # type: ignore[no-redef,assignment]

from deadcheck.integrations._core import Options, Watch, figures, stop_message

__all__ = ["DeadcheckCallback"]


class DeadcheckCallback(pl.Callback):  # type: ignore[misc]
    """A Lightning ``Callback`` that runs a deadcheck Monitor (and Recycler) over training."""

    def __init__(
        self,
        every: int = 100,
        fail_on: str | None = None,
        dormant: float | None = None,
        recycle: float | None = None,
        *,
        recycle_every: int | None = None,
        activations: str = "relu",
        gradients: bool = False,
        **thresholds: float,
    ) -> None:
        super().__init__()
        self.options = Options(
            every,
            fail_on,
            dormant,
            recycle,
            recycle_every,
            activations,
            dict(thresholds),
            gradients=gradients,
        )
        self.watch: Watch | None = None
        self.stopped_by: str | None = None
        self.report_path: Any = None

    def _log_dir(self, trainer: Any) -> str:
        return str(trainer.log_dir or trainer.default_root_dir)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        logger = trainer.logger
        writer = logger.experiment if isinstance(logger, TensorBoardLogger) else None
        if writer is not None and trainer.global_rank != 0:
            writer = None  # Lightning's experiment is a dummy off rank 0
        self.watch = Watch(
            pl_module, self.options, writer=writer, log_dir=f"{self._log_dir(trainer)}/deadcheck"
        )
        if trainer.optimizers:
            self.watch.start_recycling(trainer.optimizers[0])

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.watch is None:
            return
        finding = self.watch.step()
        if self.watch.fresh is not None and trainer.global_rank == 0:
            # The trainer's other loggers (CSV, W&B, MLflow, ...) get the headline figures;
            # a TensorBoard logger's writer already has them, with histograms and the layout.
            values = figures(self.watch.fresh)
            for logger in trainer.loggers:
                if not isinstance(logger, TensorBoardLogger):
                    logger.log_metrics(values, step=trainer.global_step)
        if finding is not None:
            self.stopped_by = stop_message(finding)
            pl.utilities.rank_zero_warn(self.stopped_by)
            trainer.should_stop = True

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.watch is not None:
            self.report_path = self.watch.finish(
                self._log_dir(trainer), main=trainer.global_rank == 0
            )

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.watch is not None:
            self.watch.close()  # hooks come off even when training fails
