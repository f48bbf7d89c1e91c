"""Models by name from the libraries users train with: timm, Hugging Face, torchvision weights.

Nothing is downloaded unless the user allows it: ``hf:NAME`` reads the local
Hugging Face cache (``--allow-download`` lets transformers fetch what is
missing), and torchvision weight names (``--weights DEFAULT``) are read from
the local torch hub cache, with an error naming the file when it is not
there. timm and transformers are optional: imported only when their prefix
is used, with one line saying what to install when they are missing.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deadcheck.core.errors import InputError

__all__ = ["hf_model", "timm_model", "torchvision_weights"]


def timm_model(name: str) -> tuple[nn.Module, tuple[int, ...], Any]:
    """A timm model with random weights, its input shape (batch 2), and its preprocessing."""
    try:
        import timm
        import timm.data
    except ImportError:
        raise InputError("timm:NAME needs timm: pip install timm") from None
    available = timm.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"timm has no model {name!r}{hint}")
    model = timm.create_model(name, pretrained=False)
    config = timm.data.resolve_data_config({}, model=model)
    shape = (2, *config.get("input_size", (3, 224, 224)))
    return model, shape, timm.data.create_transform(**config)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise InputError("hf:PATH needs transformers: pip install transformers") from None
    return transformers


def hf_model(spec: str, *, allow_download: bool = False) -> tuple[nn.Module, Any, Any]:
    """A Hugging Face model from a ``save_pretrained`` folder or a cached name.

    Returns the model, its config and its tokenizer (None if it has none).
    The class is the one the config names (``architectures``), else AutoModel.
    """
    transformers = _transformers()
    local = not allow_download
    where = Path(spec)
    if where.exists() and not (where / "config.json").is_file():
        raise InputError(f"hf:{spec} is not a save_pretrained folder (it has no config.json)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = transformers.AutoConfig.from_pretrained(spec, local_files_only=local)
        except (OSError, ValueError) as error:
            if where.exists():
                raise InputError(f"hf:{spec}: {str(error).splitlines()[0]}") from None
            raise InputError(
                f"hf:{spec} is not a folder here nor in the local Hugging Face cache; "
                "nothing is downloaded unless you pass --allow-download"
            ) from None
        names = getattr(config, "architectures", None) or []
        cls = getattr(transformers, names[0], None) if names else None
        cls = cls or transformers.AutoModel
        try:
            model = cls.from_pretrained(spec, local_files_only=local)
        except (OSError, ValueError) as error:
            if (
                where.is_dir()
                and not any(where.glob("*.safetensors"))
                and not any(where.glob("*.bin"))
            ):
                raise InputError(
                    f"hf:{spec} has a config but no weights; scan a model file that builds "
                    "it from the config for random weights"
                ) from None
            raise InputError(f"hf:{spec}: {str(error).splitlines()[0]}") from None
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(spec, local_files_only=local)
        except (OSError, ValueError, KeyError, TypeError):
            tokenizer = None
    return model, config, tokenizer


#: torchvision weight names look like enum members: DEFAULT, IMAGENET1K_V2.
WEIGHT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def torchvision_weights(model_name: str, weights: str) -> tuple[Path, Any]:
    """The cached file of torchvision's ``weights`` for ``model_name``, and its transforms.

    The file must be in the torch hub cache (``torch.hub.get_dir()``) and its
    SHA-256 must start with the hash in its name, as torchvision checks on
    download; else InputError naming the path.
    """
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(model_name)
        chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except (KeyError, ValueError):
        names = ", ".join(
            ["DEFAULT", *(w.name for w in torchvision.models.get_model_weights(model_name))]
        )
        raise InputError(
            f"torchvision's {model_name} has no weights {weights!r}; it has {names}",
        ) from None
    filename = Path(chosen.url).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise InputError(
            f"torchvision's {chosen} weights are not in the local cache: {path} is missing "
            "(nothing is downloaded; copy the file there from a machine that has it)"
        )
    expected = re.search(r"-([a-f0-9]{6,})\.", filename)
    if expected is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(expected.group(1)):
            raise InputError(
                f"{path} does not match its name's hash ({expected.group(1)}): "
                "a partial or different file; delete it and copy it again"
            )
    return path, chosen.transforms()
