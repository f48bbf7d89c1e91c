"""Batches from the data users have: image folders, tensor files, text, and labelled batches.

A judgement on random inputs is a smoke test; real validation batches are
the evidence, so feeding them must be one option (``--data PATH``):

* an **image folder**, with class subfolders (torchvision's ImageFolder
  layout) or flat, preprocessed the model's own way where it is known (timm's
  data config, torchvision weights' ``transforms()``), else resized to
  ``image_size`` (224 unless given) after a resize of its shorter side to
  8/7 of that, centre-cropped and normalised with the ImageNet mean and std;
* a **tensor file** (``.pt`` read with ``weights_only=True``, ``.npy``
  without pickles, ``.safetensors``): a tensor split along its first axis, or
  a mapping of names to tensors split alike and fed as keyword arguments;
* a **text file** for a model with a tokenizer (``hf:`` targets): tokenized
  with that tokenizer into chunks of ``seq_len`` tokens;

and **labelled batches** from ``batches()``: a ``(x, y)`` pair whose model
takes one input, or a dict with labels the model does not take, is fed its
inputs only, and a note says so once.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deadcheck.core.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "Data", "InputsOnly", "data_batches", "inputs_only"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_TENSOR_SUFFIXES = (".pt", ".pth", ".npy", ".safetensors")
_LABEL_KEYS = ("labels", "label", "targets", "target", "y")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Data:
    """Batches read from ``--data``, with how many and what part of the data they are."""

    batches: Iterable[Any]
    count: int
    samples: int
    description: str


def _default_preprocess(size: int) -> Callable[[Any], torch.Tensor]:
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(math.ceil(size * 8 / 7)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD),
        ]
    )


def _images(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files of a folder: in class subfolders (sorted by class), or flat."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [
        f
        for c in classes
        for f in sorted((folder / c).iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    flat = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    return files + flat, classes if files else []


def _image_batches(
    files: list[Path], preprocess: Callable[[Any], torch.Tensor], batch_size: int
) -> Iterator[torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    for start in range(0, len(files), batch_size):
        tensors = []
        for path in files[start : start + batch_size]:
            try:
                with Image.open(path) as image:
                    tensors.append(preprocess(image.convert("RGB")))
            except (UnidentifiedImageError, OSError) as error:
                raise InputError(f"--data: {path} is not an image I can read ({error})") from None
        yield torch.stack(tensors)


def _load_tensors(path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            import numpy

            return torch.from_numpy(numpy.load(path, allow_pickle=False))
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"--data: cannot read {path}: {first[:200]}") from None


def _split(value: Any, path: Path, batch_size: int) -> tuple[list[Any], int, str]:
    """A tensor, or a mapping of tensors, cut into batches along the first axis."""
    taken = ""
    if (
        isinstance(value, (tuple, list))
        and value
        and all(isinstance(v, torch.Tensor) for v in value)
    ):
        value, taken = value[0], f" (the first of its {len(value)} tensors: the inputs)"
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 or value.shape[0] == 0:
            raise InputError(f"--data: {path} holds an empty or 0-d tensor, not samples")
        return list(value.split(batch_size)), value.shape[0], taken
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, torch.Tensor) for v in value.values())
    ):
        inputs = {k: v for k, v in value.items() if k not in _LABEL_KEYS}
        sizes = {v.shape[0] if v.dim() else -1 for v in inputs.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise InputError(
                f"--data: {path}'s tensors differ in their first size: {sorted(sizes)}"
            )
        (n,) = sizes
        dropped = sorted(set(value) - set(inputs))
        if dropped:
            taken = f" (without {', '.join(dropped)}: labels)"
        chunks = {k: v.split(batch_size) for k, v in inputs.items()}
        count = len(next(iter(chunks.values())))
        return [{k: c[i] for k, c in chunks.items()} for i in range(count)], n, taken
    raise InputError(
        f"--data: {path} holds a {type(value).__name__}, not a tensor or a mapping of tensors"
    )


def _text_batches(
    path: Path, tokenizer: Any, seq_len: int, batch_size: int
) -> tuple[list[Any], int]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"--data: cannot read {path} as text: {error}") from None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks = len(ids) // seq_len
    if chunks == 0:
        raise InputError(
            f"--data: {path} has {len(ids)} tokens, fewer than one chunk of {seq_len} (--seq-len)"
        )
    tokens = torch.tensor(ids[: chunks * seq_len], dtype=torch.long).reshape(chunks, seq_len)
    return list(tokens.split(batch_size)), chunks


def data_batches(
    path: str | Path,
    *,
    preprocess: Callable[[Any], torch.Tensor] | None = None,
    tokenizer: Any = None,
    batch_size: int = 8,
    image_size: int | None = None,
    seq_len: int = 128,
    limit: int | None = None,
) -> Data:
    """The batches ``--data PATH`` feeds (``limit``: at most that many batches)."""
    path = Path(path)
    if batch_size <= 0 or seq_len <= 0 or (image_size is not None and image_size <= 0):
        raise InputError("--batch-size, --seq-len and --image-size must be positive")
    if not path.exists():
        raise InputError(f"--data: no such file or folder: {path}")
    if path.is_dir():
        files, classes = _images(path)
        if not files:
            raise InputError(
                f"--data: {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        chosen = preprocess if preprocess is not None and image_size is None else None
        how = (
            "the model's own preprocessing"
            if chosen is not None
            else (f"resized and centre-cropped to {image_size or 224}, ImageNet-normalised")
        )
        total = len(files)
        if limit is not None:
            files = files[: limit * batch_size]
        kinds = f" in {len(classes)} class folder(s)" if classes else ""
        part = f"the first {len(files)} of {total}" if len(files) < total else f"all {total}"
        return Data(
            _image_batches(files, chosen or _default_preprocess(image_size or 224), batch_size),
            math.ceil(len(files) / batch_size),
            len(files),
            f"{part} images of {path}{kinds}, {how}, in batches of {batch_size}",
        )
    suffix = path.suffix.lower()
    if suffix in _TENSOR_SUFFIXES:
        batches, samples, taken = _split(_load_tensors(path), path, batch_size)
        unit = "samples"
    elif tokenizer is not None:
        batches, samples = _text_batches(path, tokenizer, seq_len, batch_size)
        taken, unit = "", f"chunks of {seq_len} tokens"
    else:
        raise InputError(
            f"--data: {path} is neither an image folder nor a tensor file "
            f"({', '.join(_TENSOR_SUFFIXES)}); text needs a model with a tokenizer (hf:PATH)"
        )
    if limit is not None:
        batches = batches[:limit]
    read = sum(_first_size(b) for b in batches)
    part = f"the first {read} of {samples}" if read < samples else f"all {samples}"
    description = f"{part} {unit} of {path}{taken}, in batches of {batch_size}"
    return Data(batches, len(batches), read, description)


def _first_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    return next(iter(batch.values())).shape[0]


def _takes_one_input(model: nn.Module) -> bool:
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    return len(required) == 1 and not any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _takes(model: nn.Module, name: str) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _is_labels(value: Any, batch: int | None) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and not value.is_floating_point()
        and value.dim() <= 1
        and (batch is None or value.dim() == 0 or value.shape[0] == batch)
    )


class InputsOnly:
    """Batches with their labels taken off where the model does not take them; notes once."""

    def __init__(self, batches: Iterable[Any], model: nn.Module) -> None:
        self.batches = batches
        self.model = model
        self.note: str | None = None

    def __iter__(self) -> Iterator[Any]:
        one = _takes_one_input(self.model)
        for batch in self.batches:
            yield self._inputs(batch, one)

    def _inputs(self, batch: Any, one: bool) -> Any:
        if (
            one
            and isinstance(batch, (tuple, list))
            and len(batch) == 2
            and isinstance(batch[0], torch.Tensor)
            and _is_labels(batch[1], batch[0].shape[0] if batch[0].dim() else None)
        ):
            self.note = self.note or (
                "batches are (inputs, labels) pairs and the model takes one input: fed the inputs"
            )
            return batch[0]
        if isinstance(batch, dict):
            dropped = [k for k in _LABEL_KEYS if k in batch and not _takes(self.model, k)]
            if dropped:
                self.note = self.note or (
                    f"batches carry {', '.join(dropped)}, which the model does not take: "
                    "fed the rest"
                )
                return {k: v for k, v in batch.items() if k not in dropped}
        return batch


def inputs_only(batches: Iterable[Any], model: nn.Module) -> InputsOnly:
    """``batches`` with labels taken off where ``model`` does not take them."""
    return InputsOnly(batches, model)
