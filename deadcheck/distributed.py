"""torch.distributed glue: is a process group up, and one summing all_reduce for its backend."""

from __future__ import annotations

import torch

__all__ = ["all_reduce_sum", "is_distributed", "rank"]


def is_distributed() -> bool:
    """True under an initialised process group with more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_sum(flat: torch.Tensor) -> torch.Tensor:
    """Sum ``flat`` over all ranks in one collective, on a device the backend accepts."""
    import torch.distributed as dist

    backend = str(dist.get_backend()).lower()
    device = flat.device
    if backend == "gloo" and device.type != "cpu":
        work = flat.cpu()
    elif backend == "nccl" and device.type != "cuda":
        work = flat.to(torch.device("cuda", torch.cuda.current_device()))
    else:
        work = flat.clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(device)
