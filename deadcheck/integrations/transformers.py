"""deadcheck in Hugging Face ``Trainer``: one callback.

>>> from deadcheck.integrations.transformers import DeadcheckCallback
>>> trainer = Trainer(model, args, train_dataset=data, callbacks=[DeadcheckCallback(every=50)])

It watches the model from the start of training (training passes only; the
evaluation loop is left out), logs through the trainer's TensorBoard writer
when ``report_to`` includes tensorboard (else into its logging folder, or
``OUTPUT_DIR/runs/deadcheck``), stops training through
``control.should_training_stop`` on a finding at or above ``fail_on``, and
writes the last report to ``args.output_dir/deadcheck.json``.
Gradient checkpointing is honoured: recomputed forward passes are not counted.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from deadcheck.integrations._core import Options, Watch, stop_message

__all__ = ["DeadcheckCallback"]


def _tensorboard_writer(callbacks: Any) -> Any:
    for callback in getattr(callbacks, "callbacks", []) or []:
        writer = getattr(callback, "tb_writer", None)
        if type(callback).__name__ == "TensorBoardCallback" and writer is not None:
            return writer
    return None


class DeadcheckCallback(TrainerCallback):  # type: ignore[misc]
    """A ``TrainerCallback`` that runs a deadcheck Monitor (and Recycler) over training."""

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
        self._handler: Any = None

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._handler = kwargs.get("callback_handler")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        handler = self._handler or kwargs.get("callback_handler")
        writer = _tensorboard_writer(handler)
        logging_dir = getattr(args, "logging_dir", None) or f"{args.output_dir}/runs"
        self.watch = Watch(model, self.options, writer=writer, log_dir=f"{logging_dir}/deadcheck")
        optimizer = kwargs.get("optimizer")
        if optimizer is not None:
            self.watch.start_recycling(optimizer)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is None:
            return
        if self.watch.recycler is None and kwargs.get("optimizer") is not None:
            self.watch.start_recycling(kwargs["optimizer"])
        finding = self.watch.step()
        if finding is not None:
            self.stopped_by = stop_message(finding)
            print(self.stopped_by)
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is not None:
            self.watch.finish(args.output_dir, main=state.is_world_process_zero)
