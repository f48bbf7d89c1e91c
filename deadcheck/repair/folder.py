"""How every repair hands back its result: a folder with the new weights and a record of why.

The folder appears whole or not at all (:func:`~deadcheck.core.files.write_folder_atomic`):
an existing one is replaced only with ``force``, once the new one is complete,
and the user's own files are never touched.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from deadcheck.core.files import write_folder_atomic

__all__ = ["WEIGHTS", "write_repair"]

#: The weights file every repair writes, loadable with ``model.load_state_dict(torch.load(...))``.
WEIGHTS = "state_dict.pt"


def write_repair(
    folder: str | Path, model: nn.Module, files: Mapping[str, bytes], *, force: bool = False
) -> Path:
    """Write ``model``'s state dict as :data:`WEIGHTS` and ``files`` beside it into ``folder``."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_folder_atomic(folder, {WEIGHTS: buffer.getvalue(), **files}, force=force)
    return Path(folder)
