"""Which modules' own code can call an activation function, read from their bytecode.

The recorder sees functional calls (``F.relu(x)``, ``x.relu()``, a stored
``self.activation = F.relu``) through a function mode, which costs every torch
call made while it is on about 2% of a resnet50 forward pass. It need not be
on in a module whose code cannot reach such a call, which is most blocks of
most models: ``self.relu(out)`` calls a module that has its own hooks.

:func:`closed` decides that by reading the forward's bytecode, and it answers
"closed" only when every name the code loads is accounted for: attributes of
``self`` that are registered submodules, parameters, buffers or plain values,
or methods of the class, read in turn; globals that are modules, torch's own
functions other than activations, or a short list of builtins; attribute
names that torch's namespaces or the model's own submodules and parameters
define, unless some object of the model binds that name to anything else
(``block.act = F.relu`` makes ``act`` suspect on every receiver); nested
functions, comprehensions, closures and default values, read in turn. A
submodule counts only when it is registered in the model (so it has the
recorder's hooks) and its class keeps nn.Module's ``__call__``. Any other name
(a family name, ``getattr``, an object of unknown kind, a class that could be
an activation module) keeps the mode on, and so does reading more than a few
calls deep. What a caller hands the module as an argument cannot be seen
here: the recorder keeps the mode on for any call of a closed module that
receives anything but tensors and plain values.

A scan also returns what it relied on (:class:`Reading`): every dictionary
entry it read (globals, the instance's attributes, class attributes along the
MRO, registered submodules). :meth:`Reading.holds` checks them all by
identity, so code rebound after the scan (``block.act = F.relu``, a new
``forward`` on the instance or the class, a rebound global) reopens the
module before the next pass. The recorder adds its own checks on top: a
module's first call is always watched, and audit passes watch everything.
"""

from __future__ import annotations

import builtins
import dis
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deadcheck.recording.activations import CALLS

__all__ = ["ModelNames", "Reading", "closed", "hands_code", "model_names", "reading"]

#: Names of the functional activations (and their in-place forms).
_FAMILY = frozenset(getattr(f, "__name__", "") for f in CALLS) - {""}

#: Names that reach code by a string or a back door: never accounted for.
_DYNAMIC = frozenset(
    {
        "getattr",
        "eval",
        "exec",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "__dict__",
        "__getattribute__",
        "__getattr__",
        "__call__",
        "forward",
        "_call_impl",
        "apply_",
        "map_",
        "map2_",
        "register_hook",
    }
)

_SAFE_BUILTINS = frozenset(
    {
        "len",
        "isinstance",
        "issubclass",
        "range",
        "enumerate",
        "zip",
        "reversed",
        "tuple",
        "list",
        "dict",
        "set",
        "int",
        "float",
        "bool",
        "str",
        "min",
        "max",
        "sum",
        "abs",
        "any",
        "all",
        "round",
        "divmod",
        "hasattr",
        "id",
        "type",
        "print",
        "slice",
        "None",
        "ValueError",
        "TypeError",
        "RuntimeError",
        "AssertionError",
        "NotImplementedError",
        "KeyError",
        "IndexError",
    }
)

#: Attribute names torch's namespaces define (activation names aside).
_TORCH_NAMES = frozenset(dir(torch.Tensor)) | frozenset(dir(torch)) | frozenset(dir(F))

_VALUE_TYPES = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device, torch.Size)
_MAX_DEPTH = 4
#: Stands for "no such entry" in a dependency: an entry added later breaks it too.
_MISSING: Any = object()
_LOAD_OWNER = ("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE")


def _is_value(value: Any) -> bool:
    """A plain value: calling through it cannot run code."""
    if isinstance(value, (torch.Tensor, *_VALUE_TYPES)):
        return True
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(_is_value(item) for item in value)
    return False


def _is_torch_function(value: Any) -> bool:
    module = getattr(value, "__module__", None) or ""
    return (
        isinstance(value, (types.BuiltinFunctionType, types.FunctionType))
        and (module == "torch" or module.startswith(("torch.", "torch._")))
        and not _is_activation(value)
    )


class _Scan:
    """One module's scan: the model-wide attribute names, and the code already read."""

    def __init__(self, names: ModelNames) -> None:
        self.names = names.attributes
        self.unsafe = names.unsafe
        self.methods = names.methods
        self.registered = names.registered
        self.seen: set[types.CodeType] = set()
        #: Every dictionary entry the answer rests on: (mapping, key, value or _MISSING).
        self.deps: dict[tuple[int, str], tuple[Mapping[str, Any], str, Any]] = {}
        #: Every object whose class the answer read: (object, its class then).
        self.classes: dict[int, tuple[Any, type]] = {}

    def rely(self, mapping: Mapping[str, Any], key: str) -> Any:
        """``mapping[key]`` (or _MISSING), remembered as something the answer rests on."""
        value = mapping.get(key, _MISSING)
        self.deps.setdefault((id(mapping), key), (mapping, key, value))
        return value

    def static(self, obj: Any, name: str) -> Any:
        """``inspect.getattr_static(type(obj), name)`` (or _MISSING), relying on each class."""
        cls = type(obj)
        self.classes.setdefault(id(obj), (obj, cls))
        for base in cls.__mro__:
            value = self.rely(base.__dict__, name)
            if value is not _MISSING:
                return value
        return _MISSING

    def module_ok(self, value: Any) -> bool:
        """A submodule the recorder hooks and whose call is nn.Module's own."""
        return (
            isinstance(value, nn.Module)
            and id(value) in self.registered
            and not _overrides_call(type(value))
        )

    def function(self, fn: Any, owner: nn.Module | None, depth: int) -> bool:
        """Whether calling ``fn`` (a method of ``owner``, if given) is accounted for."""
        if isinstance(fn, types.MethodType):
            bound = fn.__self__
            if not isinstance(bound, nn.Module):
                return False  # a method of an object of unknown kind
            return self.function(fn.__func__, bound, depth)
        if not isinstance(fn, types.FunctionType) or depth > _MAX_DEPTH:
            return False
        for value in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
            if not (_is_value(value) or self.global_value(value, depth)):
                return False
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if value is not owner and not (_is_value(value) or self.global_value(value, depth)):
                return False
        code = fn.__code__
        self_name = code.co_varnames[0] if code.co_argcount and owner is not None else None
        return self.code(code, fn.__globals__, owner, self_name, depth)

    def code(
        self,
        code: types.CodeType,
        globals_: dict[str, Any],
        owner: nn.Module | None,
        self_name: str | None,
        depth: int,
    ) -> bool:
        if code in self.seen:
            return True
        self.seen.add(code)
        previous: Any = None
        for ins in dis.get_instructions(code):
            op, arg = ins.opname, ins.argval
            if op in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = arg if isinstance(arg, str) else str(arg)
                if name in _FAMILY or name in _DYNAMIC:
                    return False
                value = self.rely(globals_, name)
                if value is not _MISSING:
                    if not self.global_value(value, depth):
                        return False
                elif name not in _SAFE_BUILTINS or not hasattr(builtins, name):
                    return False
            elif op in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR"):
                name = arg if isinstance(arg, str) else str(arg)
                on_owner = (
                    owner is not None
                    and previous is not None
                    and previous.opname.startswith(_LOAD_OWNER)
                    and _last_name(previous.argval) == self_name
                )
                if on_owner and owner is not None:
                    if not self.owner_attribute(owner, name, depth):
                        return False
                elif name in _FAMILY or name in _DYNAMIC:
                    return False
                elif owner is not None and not self.owner_attribute(owner, name, depth, lax=True):
                    return False  # whatever the receiver, a callable of owner's by that name
                elif name in self.methods:
                    return False  # a method of a module of the model, called directly
                elif name in self.unsafe:
                    return False  # some object of the model binds it to code (a stored F.relu)
                elif name not in _TORCH_NAMES and name not in self.names:
                    return False
            elif op in ("IMPORT_NAME", "IMPORT_FROM", "LOAD_CLASSDEREF"):
                return False
            previous = ins
        for const in code.co_consts:
            if isinstance(const, types.CodeType) and not self.code(
                const, globals_, owner, self_name, depth
            ):
                return False
        return True

    def global_value(self, value: Any, depth: int) -> bool:
        """Whether a global (or closure or default value) is accounted for."""
        if isinstance(value, types.ModuleType) or _is_value(value):
            return True
        if _is_activation(value):
            return False
        if _is_torch_function(value):
            return True
        if isinstance(value, type):
            if issubclass(value, nn.Module):
                return False  # made and called inside forward: it could be an activation
            return value.__module__ in ("builtins", "torch") or issubclass(value, BaseException)
        if isinstance(value, types.FunctionType):
            return self.function(value, None, depth + 1)
        return False

    def owner_attribute(self, owner: nn.Module, name: str, depth: int, lax: bool = False) -> bool:
        """Whether ``owner.name`` is accounted for (``lax``: a name owner does not have is)."""
        value = self.rely(owner.__dict__, name)
        if value is _MISSING:
            for table in (owner._modules, owner._parameters, owner._buffers):
                found = self.rely(table, name)
                if found is not _MISSING:
                    return found is None or self.module_ok(found) or _is_value(found)
        if value is not _MISSING:
            if _is_value(value):
                return True
            if isinstance(value, nn.Module):
                return self.module_ok(value)  # kept out of the registry: no hooks of ours
            if _is_activation(value):
                return False
            return self.global_value(value, depth)
        attr = self.static(owner, name)
        if attr is _MISSING:
            return lax
        if type(owner).__dict__.get(name) is None and _defined_by_torch(type(owner), name):
            return True  # nn.Module's own machinery (training, _modules, ...)
        if isinstance(attr, (staticmethod, classmethod)):
            return self.function(attr.__func__, None, depth + 1)
        if isinstance(attr, property):
            return self.function(attr.fget, owner, depth + 1)
        if isinstance(attr, types.FunctionType):
            return self.function(attr, owner, depth + 1)
        return _is_value(attr)


def _overrides_call(cls: type) -> bool:
    """Whether a module class replaces nn.Module's ``__call__`` (code runs outside its hooks)."""
    return (
        cls.__call__ is not nn.Module.__call__
        or getattr(cls, "_call_impl", None) is not nn.Module._call_impl
    )


def _defined_by_torch(cls: type, name: str) -> bool:
    """Whether ``name`` comes to ``cls`` from nn.Module itself (its methods, ``training``)."""
    for base in cls.__mro__:
        if name in base.__dict__:
            return base in (nn.Module, object)
    return False


def _last_name(argval: Any) -> Any:
    return argval[-1] if isinstance(argval, tuple) and argval else argval


def _is_activation(value: Any) -> bool:
    """Whether ``value`` is one of the functional activations (looked up, never compared)."""
    try:
        return value in CALLS
    except TypeError:  # unhashable
        return False


@dataclass(frozen=True)
class ModelNames:
    """What a model's own modules define, for reading attribute loads on other objects.

    ``attributes``: names of submodules, parameters, buffers and plain values
    (``self.embed.weight``); ``unsafe``: names that some module of the model
    binds to anything that could run code (a stored function, an unregistered
    module, a submodule with its own ``__call__``), never trusted on any
    receiver; ``methods``: names of Python methods their classes add to
    nn.Module's, which a forward could call on a submodule directly
    (``self.block.special(x)``), bypassing its hooks; ``registered``: the ids
    of the model's modules, the ones the recorder hooks.
    """

    attributes: frozenset[str]
    methods: frozenset[str]
    unsafe: frozenset[str] = frozenset()
    registered: frozenset[int] = frozenset()


def model_names(modules: Iterable[nn.Module]) -> ModelNames:
    """The :class:`ModelNames` of a model's modules."""
    modules = list(modules)
    registered = frozenset(id(m) for m in modules)
    attributes: set[str] = set()
    unsafe: set[str] = set()
    methods: set[str] = set()
    for module in modules:
        attributes.update(module._parameters, module._buffers)
        for name, child in module._modules.items():
            if child is None or not _overrides_call(type(child)):
                attributes.add(name)
            else:
                unsafe.add(name)
        for name, value in module.__dict__.items():
            if _is_value(value):
                attributes.add(name)
            elif not (isinstance(value, nn.Module) and id(value) in registered):
                unsafe.add(name)
        for cls in type(module).__mro__:
            if cls in (nn.Module, object):
                break
            methods.update(
                k
                for k, v in cls.__dict__.items()
                if callable(v) or isinstance(v, (staticmethod, classmethod, property))
            )
    methods -= {"forward", "__init__", "extra_repr"}
    # nn.Module's own bookkeeping (_modules, _forward_hooks, ...) lives in every instance
    # dict; the names torch gives it are not the model's code.
    unsafe -= set(vars(nn.Module()))
    return ModelNames(
        frozenset(attributes - unsafe) - _FAMILY - _DYNAMIC,
        frozenset(methods),
        frozenset(unsafe),
        registered,
    )


@dataclass(frozen=True)
class Reading:
    """A scan's answer and the dictionary entries it rests on.

    ``closed``: the module's own forward provably calls no activation function,
    as long as :meth:`holds`.
    """

    closed: bool
    deps: tuple[tuple[Mapping[str, Any], str, Any], ...] = ()
    classes: tuple[tuple[Any, type], ...] = ()

    def holds(self) -> bool:
        """Whether every entry and class the answer read is still the same (by identity)."""
        return all(type(obj) is cls for obj, cls in self.classes) and all(
            mapping.get(key, _MISSING) is value for mapping, key, value in self.deps
        )


def reading(module: nn.Module, names: ModelNames) -> Reading:
    """Whether ``module``'s own forward code provably calls no activation function, and why.

    ``names``: :func:`model_names` of the model. Closed is never answered in doubt.
    """
    scan = _Scan(names)
    try:
        if scan.rely(module.__dict__, "forward") is not _MISSING:
            return Reading(False)  # replaced on the instance (accelerate's hooks do)
        if _overrides_call(type(module)):
            return Reading(False)  # code around the hooks, where the stack cannot name it
        forward = scan.static(module, "forward")
        if not isinstance(forward, types.FunctionType):
            return Reading(False)
        answer = scan.function(forward, module, 0)
    except Exception:  # unusual bytecode or objects: keep watching
        return Reading(False)
    if not answer:
        return Reading(False)
    return Reading(True, tuple(scan.deps.values()), tuple(scan.classes.values()))


def closed(module: nn.Module, names: ModelNames) -> bool:
    """Whether ``module``'s own forward code provably calls no activation function.

    ``names``: :func:`model_names` of the model. False whenever in doubt.
    """
    return reading(module, names).closed


def hands_code(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a call hands the module anything that could run code.

    That is anything but tensors and plain values (and lists, tuples and
    dicts of them): a function, a module, or an object of unknown kind whose
    methods the module may call.
    """
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) or _is_value(value):
            continue
        if isinstance(value, (tuple, list)):
            if hands_code(tuple(value), {}):
                return True
        elif isinstance(value, dict):
            if hands_code((), value):
                return True
        else:
            return True
    return False
