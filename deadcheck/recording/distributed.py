"""torch.distributed glue: is a process group up, and one all_reduce for its backend."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from typing import Any

import torch

from deadcheck.core.errors import InputError

__all__ = ["all_reduce", "init_from_env", "is_distributed", "rank", "share_of_batches"]


def is_distributed() -> bool:
    """True under an initialised process group with more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce(flat: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce ``flat`` (``op``: sum, max or min) over all ranks in one collective.

    It runs on a device the backend accepts and comes back on ``flat``'s.
    """
    import torch.distributed as dist

    reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
    backend = str(dist.get_backend()).lower()
    device = flat.device
    if backend == "gloo" and device.type != "cpu":
        work = flat.cpu()
    elif backend == "nccl" and device.type != "cuda":
        work = flat.to(torch.device("cuda", torch.cuda.current_device()))
    else:
        work = flat.clone()
    dist.all_reduce(work, op=reduce_op)
    return work.to(device)


def init_from_env() -> bool:
    """Start a gloo process group when torchrun's variables ask for one; True if started here.

    Whoever gets True must call ``torch.distributed.destroy_process_group()``
    at the end, or gloo aborts the process at exit.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return False
    if dist.is_initialized():
        return False
    dist.init_process_group(backend="gloo")
    return True


def share_of_batches(inputs: Iterable[Any], total: int | None) -> tuple[Iterable[Any], int | None]:
    """This rank's share of ``inputs`` (every world-size-th batch) and its length, if known."""
    if not is_distributed():
        return inputs, total
    import torch.distributed as dist

    world = dist.get_world_size()
    if total is not None and total < world:
        raise InputError(
            f"batches: {total} cannot be shared by {world} ranks; give more", option="batches"
        )
    share = None if total is None else len(range(rank(), total, world))
    return itertools.islice(inputs, rank(), None, world), share
