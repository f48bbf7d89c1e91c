"""Read weights from what users have, and load them into a model safely.

Files: a ``torch.save`` checkpoint (read with ``weights_only=True`` unless the
user allows pickled code), a ``.safetensors`` file, or a Hugging Face
``save_pretrained`` folder (``model.safetensors``, ``pytorch_model.bin``, or
their sharded forms with an index). Keys are fitted to the model: a
``module.`` prefix from DataParallel is dropped, a base-model prefix
(``bert.``) is added or dropped where that makes the keys match, and a
parameter tied to another (an LM head sharing the embedding) may be absent.
Anything that still does not fit names the first missing and unexpected keys.
"""

from __future__ import annotations

import json
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deadcheck.core.errors import InputError

__all__ = ["SAFETENSORS", "load_weights", "read_state_dict", "weights_in_folder"]

#: How a safetensors file starts: an 8-byte little-endian header size, then a JSON object.
SAFETENSORS = ".safetensors"
#: What a save_pretrained folder may hold, in the order Hugging Face prefers.
_FOLDER_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _state_dict_from(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                obj = inner
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} holds no state dict (a mapping of names to tensors)")
    bad_key = next((k for k in obj if not isinstance(k, str)), None)
    if bad_key is not None:
        raise InputError(f"{path} holds no state dict: key {str(bad_key)[:40]!r} is not a name")
    for key, value in obj.items():
        odd = _odd_tensor(value)
        if odd:
            raise InputError(f"{path}: {key[:80]} is {odd}; deadcheck loads dense real tensors")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel/DDP
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _odd_tensor(value: torch.Tensor) -> str | None:
    """What makes a checkpoint tensor unloadable here, in words, or None."""
    if value.is_meta:
        return "a meta tensor (no data)"
    if value.layout != torch.strided:
        return f"a {str(value.layout).replace('torch.', '')} tensor"
    if value.is_quantized:
        return "a quantized tensor"
    if value.is_complex():
        return "a complex tensor (loading it into real weights would drop the imaginary part)"
    return None


def _check_archive_size(path: Path, model: nn.Module) -> None:
    """Refuse an archive whose tensors claim far more bytes than the model holds.

    Checked from the zip directory before anything is read or inflated: a
    1 MB deflated checkpoint may claim a 1 GiB tensor.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(i.file_size for i in archive.infolist() if "/data/" in i.filename)
    except (zipfile.BadZipFile, OSError):
        return  # torch.load says what is wrong with it
    own = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    allowed = 2 * own + (64 << 20)
    if claimed > allowed:
        raise InputError(
            f"{path} claims {claimed:,} bytes of tensors, but the model holds {own:,}: "
            "not a checkpoint of this model (refused before reading it)"
        )


#: How a torch checkpoint starts: a zip archive (torch.save since 1.6) or a pickle (older).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"


def _check_checkpoint_file(path: Path) -> None:
    """Refuse a file that cannot be a torch checkpoint, saying what it seems to be."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        raise InputError(f"{path} is empty, not a torch checkpoint")
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC) or _is_safetensors(head):
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path} is not a torch checkpoint (no torch.save archive or pickle header)"
        ) from None
    looks = "Python source" if path.suffix == ".py" or "import " in text else "text"
    raise InputError(f"{path} is {looks}, not a torch checkpoint (a file torch.save wrote)")


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 2 <= size < (100 << 20) and head[8:9] == b"{"


def weights_in_folder(folder: Path) -> list[Path]:
    """The weight files of a ``save_pretrained`` folder (all shards), or InputError."""
    for name in _FOLDER_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        try:
            index = json.loads(path.read_text())
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputError(f"{path} is not a shard index: {error}") from None
        bad = [
            str(s)
            for s in shards
            if not isinstance(s, str)
            or "/" in s
            or "\\" in s
            or s.startswith(".")
            or not (folder / s).is_file()
        ]
        if bad:
            raise InputError(f"{path} lists shard {bad[0][:80]}, which is not a file in {folder}")
        return [folder / shard for shard in shards]
    raise InputError(
        f"{folder} is a folder with no weights (looked for {', '.join(_FOLDER_FILES)})"
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover (safetensors is a dependency)
        raise InputError(f"{path} is a safetensors file: pip install safetensors") from None
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"cannot load {path}: {str(error).splitlines()[0]}") from None


def _read_torch(path: Path, model: nn.Module, allow_pickle: bool) -> dict[str, torch.Tensor]:
    _check_archive_size(path, model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the one line below says what went wrong
            obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as error:
        text = str(error)
        if not allow_pickle and ("weights_only" in text or "Unpickl" in type(error).__name__):
            raise InputError(
                f"{path} needs pickled code to load, which can run anything; "
                "allow it (--unsafe-pickle, allow_pickle=True) only if you trust the file"
            ) from None
        raise InputError(f"cannot load {path}: {text.splitlines()[0] if text else error}") from None
    return _state_dict_from(obj, path)


def read_state_dict(
    path: str | Path, model: nn.Module, *, allow_pickle: bool = False
) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint file or ``save_pretrained`` folder holds."""
    path = Path(path)
    if path.is_dir():
        state: dict[str, torch.Tensor] = {}
        for file in weights_in_folder(path):
            state.update(read_state_dict(file, model, allow_pickle=allow_pickle))
        return state
    if not path.is_file():
        raise InputError(f"no such weights file: {path}")
    _check_checkpoint_file(path)
    with path.open("rb") as handle:
        head = handle.read(16)
    if _is_safetensors(head):
        state = _read_safetensors(path)
        for key, value in state.items():
            odd = _odd_tensor(value)
            if odd:
                raise InputError(f"{path}: {key[:80]} is {odd}; deadcheck loads dense real tensors")
        return state
    return _read_torch(path, model, allow_pickle)


def _refit_prefix(state: dict[str, torch.Tensor], own: set[str]) -> dict[str, torch.Tensor]:
    """Add or drop one leading name (a base model's ``bert.``) where that makes keys match."""
    matched = len(own & set(state))
    if matched == len(state) or not state:
        return state
    best, best_state = matched, state
    firsts = {k.split(".", 1)[0] for k in state}
    if len(firsts) == 1:  # every key under one name: drop it
        (first,) = firsts
        dropped = {k[len(first) + 1 :]: v for k, v in state.items() if "." in k}
        if len(own & set(dropped)) > best:
            best, best_state = len(own & set(dropped)), dropped
    prefixes = {k.split(".", 1)[0] for k in own if "." in k}
    for prefix in prefixes:
        added = {f"{prefix}.{k}": v for k, v in state.items()}
        if len(own & set(added)) > best:
            best, best_state = len(own & set(added)), added
    return best_state


def _tied(model: nn.Module) -> dict[str, set[str]]:
    """Each parameter's name, and the other names the same tensor has (tied weights)."""
    names: dict[int, set[str]] = {}
    for name, tensor in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        names.setdefault(id(tensor), set()).add(name)
    return {name: group - {name} for group in names.values() for name in group}


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in tensor.shape) + ")"


def load_weights(model: nn.Module, path: str | Path, *, allow_pickle: bool = False) -> None:
    """Load a checkpoint (torch, safetensors, or a ``save_pretrained`` folder) into ``model``.

    Read with ``weights_only=True`` unless ``allow_pickle``; a checkpoint
    that needs pickled code is refused; one that does not fit names the first
    missing and unexpected keys.
    """
    state = read_state_dict(path, model, allow_pickle=allow_pickle)
    own = model.state_dict()
    state = _refit_prefix(state, set(own))
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise InputError(
                f"{path} does not fit the model: {key} is {_shape(value)} in the file but "
                f"{_shape(own[key])} in the model (a checkpoint of another size or variant?)"
            )
    result = model.load_state_dict(state, strict=False)
    tied = _tied(model)
    missing = [k for k in result.missing_keys if not (tied.get(k, set()) & set(state))]
    if missing or result.unexpected_keys:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if result.unexpected_keys:
            parts.append(
                f"{len(result.unexpected_keys)} unexpected (first: {result.unexpected_keys[0]})"
            )
        raise InputError(f"{path} does not fit the model: keys " + ", ".join(parts))
