"""Turn a TARGET string into a model and its inputs, and load weights safely.

TARGET forms: ``path/model.py``, ``path/model.py:NAME``, ``package.module:NAME``,
``torchvision:NAME``, ``timm:NAME``, ``hf:PATH_OR_NAME`` and (with
``--unsafe-pickle``) a ``torch.save(model)`` file. A model file defines
``model`` (an ``nn.Module`` or a zero-argument callable returning one) and
may define ``batches()``,
``example_input`` or ``example_inputs()``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from deadcheck.core.errors import DeadcheckError, InputError, ModelError, Stage
from deadcheck.core.files import check_regular_file
from deadcheck.recording.feeding import call_model, to_device
from deadcheck.repair.pruning import PRUNE_SCHEMA, PrunePlan, apply_prune_plan
from deadcheck.repair.swapping import SwapPlan, apply_plan
from deadcheck.workflows.checkpoints import load_weights
from deadcheck.workflows.hub import hf_model, timm_model

__all__ = [
    "Target",
    "call_model",
    "load_plan",
    "load_target",
    "load_weights",
    "parse_device",
    "parse_shape",
    "parse_unit_axes",
    "random_batches",
    "to_device",
]

#: Input shapes for torchvision models when the user gives none.
_TORCHVISION_SHAPES = {"inception_v3": (2, 3, 299, 299)}
_TORCHVISION_DEFAULT = (2, 3, 224, 224)


@dataclass
class Target:
    """A loaded model and what it brought to feed it."""

    name: str
    model: nn.Module
    batches: Callable[[], Iterable[Any]] | None = None
    example: Any = None
    default_shape: tuple[int, ...] | None = None
    #: ``loss(output, batch)`` from the target file, for gradient statistics (None: none).
    loss: Callable[[Any, Any], Any] | None = None
    #: The model's own image preprocessing (timm's data config, torchvision weights'
    #: ``transforms()``), for ``--data`` image folders; None: the documented default.
    preprocess: Callable[[Any], torch.Tensor] | None = None
    #: The model's tokenizer (``hf:`` targets), for ``--data`` text files.
    tokenizer: Any = None
    #: Random inputs: integer token ids below ``vocab`` when set, else standard normal.
    vocab: int | None = None


def parse_shape(text: str) -> tuple[int, ...]:
    """``"8,3,224,224"`` (or ``8x3x224x224``) as a tuple of positive ints."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(
            f"input_shape {text!r} is not a comma-separated list of integers (e.g. 8,3,224,224)",
            option="input_shape",
        ) from None
    if not shape or any(d <= 0 for d in shape):
        raise InputError(
            f"input_shape {text!r} must have positive sizes only", option="input_shape"
        )
    check_shape_fits(shape)
    return shape


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not a POSIX system
        return None


def check_shape_fits(shape: tuple[int, ...]) -> None:
    """Refuse random inputs of a shape whose float32 batch could not fit in memory."""
    numel = math.prod(shape)
    memory = _memory_bytes()
    if numel > 2**62 or (memory is not None and 4 * numel > memory // 2):
        size = "x".join(str(d) for d in shape)
        raise InputError(
            f"input_shape {size} is {4 * numel / 2**30:,.0f} GiB per float32 batch, more "
            "than this machine can hold; give the shape the model takes",
            option="input_shape",
        )


def parse_device(text: str | None) -> torch.device | None:
    """``"cuda:1"`` as a device that is there; None stays None (the model's own)."""
    if text is None:
        return None
    try:
        device = torch.device(text)
    except RuntimeError:
        raise InputError(
            f"device {text!r} is not a device (try cpu or cuda)", option="device"
        ) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {text!r}: deadcheck records on cpu, cuda or mps", option="device")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {text} asks for CUDA, but torch sees no CUDA device here", option="device"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(
            f"device {text} asks for MPS, but it is not available here", option="device"
        )
    return device


def parse_unit_axes(pairs: Iterable[str]) -> dict[str, int]:
    """``["encoder.act=1"]`` as ``{"encoder.act": 1}``."""
    axes: dict[str, int] = {}
    for pair in pairs:
        name, sep, axis = pair.rpartition("=")
        try:
            axes[name] = int(axis)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(
                f"unit_axis {pair!r} must look like SITE=AXIS (e.g. encoder.act=1)",
                option="unit_axis",
            )
    return axes


def load_plan(model: nn.Module, path: str | Path) -> nn.Module:
    """``model`` with the repair plan saved at ``path`` applied, so a repaired checkpoint fits.

    A swap plan (``swap_plan.json``) or a prune plan (``prune_plan.json``),
    told apart by their schema.
    """
    check_regular_file(path, "plan")
    try:
        data = json.loads(Path(path).read_text())
        prune = isinstance(data, dict) and data.get("schema") == PRUNE_SCHEMA
        plan: SwapPlan | PrunePlan = (PrunePlan if prune else SwapPlan).from_dict(data)
    except FileNotFoundError:
        raise InputError(f"plan {path}: no such file", option="plan") from None
    except DeadcheckError as error:  # the plan's own flaw, named
        raise InputError(f"plan {path}: {error}", option="plan") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError too
        raise InputError(f"plan {path} is not a repair plan: {error}", option="plan") from None
    except RecursionError:
        raise InputError(
            f"plan {path} is not a repair plan: nested too deeply", option="plan"
        ) from None
    try:
        if isinstance(plan, PrunePlan):
            return apply_prune_plan(model, plan)
        return apply_plan(model, plan)
    except DeadcheckError as error:
        raise InputError(f"plan {path}: {error}", option="plan") from None


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    module_name = f"deadcheck_target_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(module_name, None)
        raise InputError(
            f"{error.filename or path}:{error.lineno}: syntax error: {error.msg}"
        ) from None
    except ImportError as error:
        sys.modules.pop(module_name, None)
        raise InputError(f"{path}: {type(error).__name__}: {error}") from None
    except OSError as error:
        sys.modules.pop(module_name, None)
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
        sys.modules.pop(module_name, None)
        raise ModelError(f"importing {path}", error, stage=Stage.IMPORT) from error
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    return module


def _import_module(name: str) -> ModuleType:
    # The working directory comes first, as under `python -m`: the console script
    # and `python -m deadcheck` find the same packages.
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise InputError(f"cannot import {name}: {error}") from None
    except SyntaxError as error:
        raise InputError(f"{error.filename}:{error.lineno}: syntax error: {error.msg}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
        raise ModelError(f"importing {name}", error, stage=Stage.IMPORT) from error
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _build(obj: Any, where: str) -> nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    if callable(obj):
        try:
            inspect.signature(obj).bind()
        except TypeError as error:
            raise InputError(f"{where} is callable but not with zero arguments: {error}") from None
        except ValueError:  # no signature to read (a builtin): calling it will tell
            pass
        try:
            built = obj()
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
            raise ModelError(f"building {where}", error, stage=Stage.BUILD) from error
        if isinstance(built, nn.Module):
            return built
        raise InputError(f"{where}() returned {type(built).__name__}, not an nn.Module")
    kind = type(obj).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    raise InputError(f"{where} is {article} {kind}, not an nn.Module")


def _did_you_mean(module: ModuleType, attr: str, label: str) -> str:
    """A hint naming the models a file defines under other names, or ''."""
    models = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        own_class = (
            isinstance(value, type)
            and issubclass(value, nn.Module)
            and value.__module__ == module.__name__
        )
        if isinstance(value, nn.Module) or own_class:
            models.append(name)
    close = difflib.get_close_matches(attr, models, n=3, cutoff=0.0) if models else []
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"{label}:{name}" for name in close) + "?"


def _from_namespace(module: ModuleType, attr: str, label: str, name: str) -> Target:
    if not hasattr(module, attr):
        raise InputError(f"{label} defines no {attr!r}{_did_you_mean(module, attr, label)}")
    model = _build(getattr(module, attr), f"{label}:{attr}")
    batches = getattr(module, "batches", None)
    if batches is not None and not callable(batches):
        raise InputError(f"{label}: batches must be a function that returns an iterable")
    example = getattr(module, "example_input", None)
    if example is None and callable(getattr(module, "example_inputs", None)):
        try:
            example = module.example_inputs()
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
            raise ModelError(f"{label}: example_inputs()", error, stage=Stage.INPUTS) from error
    loss = getattr(module, "loss", None)
    if loss is not None and not callable(loss):
        raise InputError(f"{label}: loss must be a function loss(output, batch) -> scalar")
    return Target(name=name, model=model, batches=batches, example=example, loss=loss)


def _torchvision(name: str) -> Target:
    import torchvision

    available = set(torchvision.models.list_models())
    if name not in available:
        close = difflib.get_close_matches(name.lower(), sorted(available), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"torchvision has no model {name!r}{hint}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        kwargs: dict[str, Any] = {}
        if name in ("googlenet", "inception_v3"):
            kwargs["init_weights"] = False
        builder = torchvision.models.get_model_builder(name)
        if "weights_backbone" in inspect.signature(builder).parameters:
            # Detection and segmentation builders default to ImageNet backbone weights,
            # which would be downloaded and give a partly pretrained model: random, as
            # for every other torchvision target.
            kwargs["weights_backbone"] = None
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    return Target(
        name=f"torchvision:{name}",
        model=model,
        default_shape=_TORCHVISION_SHAPES.get(name, _TORCHVISION_DEFAULT),
    )


def _hf(spec: str, allow_download: bool) -> Target:
    model, config, tokenizer = hf_model(spec, allow_download=allow_download)
    vocab = getattr(config, "vocab_size", None)
    length = min(32, int(getattr(config, "max_position_embeddings", 32) or 32))
    return Target(
        name=f"hf:{spec}",
        model=model,
        default_shape=(2, length) if vocab else None,
        tokenizer=tokenizer,
        vocab=vocab if isinstance(vocab, int) and vocab > 0 else None,
    )


def _timm(name: str) -> Target:
    model, shape, preprocess = timm_model(name)
    return Target(name=f"timm:{name}", model=model, default_shape=shape, preprocess=preprocess)


#: What a whole pickled model (``torch.save(model)``) may be called.
_PICKLED = (".pt", ".pth", ".bin", ".ckpt")


def _pickled(path: Path, allow_pickle: bool) -> Target:
    if not allow_pickle:
        raise InputError(
            f"{path} as TARGET is a pickled model, and loading it runs code from the file; "
            "pass --unsafe-pickle only if you trust it (or give a model file and --weights)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ModelError(f"loading {path}", error, stage=Stage.BUILD) from error
    if not isinstance(model, nn.Module):
        raise InputError(
            f"{path} holds a {type(model).__name__}, not a model: give it as --weights "
            "to a model file that builds the model"
        )
    return Target(name=str(path), model=model)


def load_target(spec: str, *, allow_pickle: bool = False, allow_download: bool = False) -> Target:
    """Load TARGET; bad input raises :class:`InputError`, the user's code :class:`ModelError`.

    ``allow_pickle`` lets a ``torch.save(model)`` file be TARGET;
    ``allow_download`` lets ``hf:NAME`` fetch what the local cache lacks.
    """
    if spec.startswith("torchvision:"):
        return _torchvision(spec.split(":", 1)[1])
    if spec.startswith("timm:"):
        return _timm(spec.split(":", 1)[1])
    if spec.startswith("hf:"):
        return _hf(spec.split(":", 1)[1], allow_download)
    if Path(spec).suffix in _PICKLED and Path(spec).is_file():
        return _pickled(Path(spec), allow_pickle)
    if spec.endswith(".py") or ".py:" in spec:
        file, _, attr = spec.rpartition(":") if ".py:" in spec else (spec, "", "model")
        path = Path(file)
        return _from_namespace(_import_file(path), attr, str(path), spec)
    if ":" in spec:
        module_name, attr = spec.rsplit(":", 1)
        if not module_name or not attr:
            raise InputError(
                f"target {spec!r} names no module or no attribute: use package.module:NAME"
            )
        return _from_namespace(_import_module(module_name), attr, module_name, spec)
    if Path(spec).exists():
        raise InputError(
            f"{spec}: expected a .py file, package.module:NAME, torchvision:NAME, "
            "timm:NAME or hf:PATH"
        )
    raise InputError(
        f"no such target {spec!r}: expected path/model.py, package.module:NAME, "
        "torchvision:NAME, timm:NAME or hf:PATH"
    )


def random_batches(
    shape: tuple[int, ...], count: int, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Iterator[torch.Tensor]:
    """``count`` standard-normal batches of ``shape``, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield torch.randn(shape, generator=generator, dtype=dtype)
