"""deadcheck in Hugging Face ``Trainer``: one callback.

>>> from deadcheck.integrations.transformers import DeadcheckCallback
>>> trainer = Trainer(model, args, train_dataset=data, callbacks=[DeadcheckCallback(every=50)])

It watches the model from the start of training (training passes only; the
evaluation loop is left out), logs through the trainer's TensorBoard writer
when ``report_to`` includes tensorboard (scalars, histograms, the heatmap and
the Custom Scalars layout; else into ``logging_dir/deadcheck``), puts the
headline figures into the trainer's log (``state.log_history``, and every
reporting callback's ``on_log``: W&B, MLflow, ...), stops training through
``control.should_training_stop`` on a finding at or above ``fail_on``, and
writes the last report to ``args.output_dir/deadcheck.json``.
Gradient checkpointing is honoured: recomputed forward passes are not counted.
"""

from __future__ import annotations

import sys
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from deadcheck.integrations._core import Options, Watch, figures, stop_message

__all__ = ["DeadcheckCallback"]


#: Callbacks that print logs to the console: deadcheck's figures would flood it.
_QUIET_CALLBACKS = frozenset({"ProgressCallback", "PrinterCallback", "NotebookProgressCallback"})


def _calling_handler() -> Any:
    """The trainer's CallbackHandler, which calls this callback's events (or None).

    transformers passes a callback no reference to the trainer or its other
    callbacks; the handler is the ``self`` of the frame that calls the event
    (``CallbackHandler.call_event``), two frames up.
    """
    frame = sys._getframe(2)
    candidate = frame.f_locals.get("self") if frame is not None else None
    return candidate if isinstance(candidate, CallbackHandler) else None


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
        self._tb_writer: Any = None

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._handler = _calling_handler() or self._handler

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        self._handler = _calling_handler() or self._handler
        handler = self._handler
        writer = _tensorboard_writer(handler)
        self._tb_writer = writer
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
        if self.watch.fresh is not None and state.is_world_process_zero:
            self._log(args, state, control, figures(self.watch.fresh))
        if finding is not None:
            self.stopped_by = stop_message(finding)
            print(self.stopped_by)
            control.should_training_stop = True

    def _log(self, args: Any, state: Any, control: Any, values: dict[str, float]) -> None:
        """Into the trainer's log: its history, and every reporting callback (W&B, MLflow, ...).

        The TensorBoard callback is skipped when its writer is the Monitor's
        (it has the figures already), and so are the console printers.
        """
        state.log_history.append({**values, "step": state.global_step})
        handler = self._handler
        for callback in getattr(handler, "callbacks", []) or []:
            name = type(callback).__name__
            if callback is self or name in _QUIET_CALLBACKS:
                continue
            if name == "TensorBoardCallback" and self._tb_writer is not None:
                continue
            callback.on_log(args, state, control, logs=dict(values))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is not None:
            self.watch.finish(args.output_dir, main=state.is_world_process_zero)
