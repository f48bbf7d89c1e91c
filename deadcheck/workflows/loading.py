"""Turn a TARGET string into a model and its inputs, and load weights safely.

TARGET forms: ``path/model.py``, ``path/model.py:NAME``, ``package.module:NAME``
and ``torchvision:NAME``. A model file defines ``model`` (an ``nn.Module`` or a
zero-argument callable returning one) and may define ``batches()``,
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
import zipfile
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


def load_target(spec: str) -> Target:
    """Load TARGET; bad input raises :class:`InputError`, the user's code :class:`ModelError`."""
    if spec.startswith("torchvision:"):
        return _torchvision(spec.split(":", 1)[1])
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
        raise InputError(f"{spec}: expected a .py file, package.module:NAME or torchvision:NAME")
    raise InputError(
        f"no such target {spec!r}: expected path/model.py, package.module:NAME or torchvision:NAME"
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


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in tensor.shape) + ")"


def _check_checkpoint_file(path: Path) -> None:
    """Refuse a file that cannot be a torch checkpoint, saying what it seems to be."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        raise InputError(f"{path} is empty, not a torch checkpoint")
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC):
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path} is not a torch checkpoint (no torch.save archive or pickle header)"
        ) from None
    looks = "Python source" if path.suffix == ".py" or "import " in text else "text"
    raise InputError(f"{path} is {looks}, not a torch checkpoint (a file torch.save wrote)")


def load_weights(model: nn.Module, path: str | Path, *, allow_pickle: bool = False) -> None:
    """Load a state dict into ``model`` with ``weights_only=True`` unless ``allow_pickle``.

    A checkpoint that needs pickled code is refused; one that does not fit
    names the first missing and unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such weights file: {path}")
    _check_checkpoint_file(path)
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
    state = _state_dict_from(obj, path)
    own = model.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise InputError(
                f"{path} does not fit the model: {key} is {_shape(value)} in the file but "
                f"{_shape(own[key])} in the model (a checkpoint of another size or variant?)"
            )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (first: {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(
                f"{len(result.unexpected_keys)} unexpected (first: {result.unexpected_keys[0]})"
            )
        raise InputError(f"{path} does not fit the model: keys " + ", ".join(parts))


def random_batches(
    shape: tuple[int, ...], count: int, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Iterator[torch.Tensor]:
    """``count`` standard-normal batches of ``shape``, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield torch.randn(shape, generator=generator, dtype=dtype)
