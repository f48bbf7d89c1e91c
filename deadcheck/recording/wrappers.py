"""Look through the wrappers users put around a model: DataParallel, DDP, torch.compile.

A recorder hooks the module whose code runs, so that site names are those of the
user's own model, the same a swap or a scan of the unwrapped model uses; and a
compiled model runs eagerly while recorded, since compiled graphs skip hooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
from torch import nn

from deadcheck.core.errors import RecordingError

__all__ = ["eager", "is_compiled", "unwrap"]


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` is the wrapper ``torch.compile`` returns."""
    return hasattr(model, "_orig_mod") and type(model).__name__ == "OptimizedModule"


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose code runs: DataParallel, DDP and torch.compile wrappers peeled off."""
    while True:
        if isinstance(model, nn.DataParallel):
            if len(model.device_ids or []) > 1:
                raise RecordingError(
                    "DataParallel over several GPUs runs replicas in threads, which a "
                    "recorder cannot follow: record model.module on one device, or use "
                    "DistributedDataParallel"
                )
            model = model.module
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif is_compiled(model):
            model = cast(nn.Module, model._orig_mod)
        else:
            return model


@contextmanager
def eager() -> Iterator[None]:
    """Run compiled code eagerly inside the block; the stance before it is restored after.

    torch offers no public getter for the stance, so it is read from
    ``torch._dynamo.eval_frame`` (the one private access, kept here).
    """
    from torch._dynamo import eval_frame

    now = eval_frame._stance
    saved = (now.stance, now.skip_guard_eval_unsafe, now.backend)
    torch.compiler.set_stance("force_eager")
    try:
        yield
    finally:
        stance, skip, backend = saved
        torch.compiler.set_stance(stance, skip_guard_eval_unsafe=skip, force_backend=backend)
