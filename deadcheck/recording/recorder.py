"""Count, per unit and on the model's own device, how often each ReLU-family site is off.

Two mechanisms work together:

* hooks on every submodule keep a stack of the modules currently running, so
  each activation call can be named after the innermost module that made it,
  and remember the kind of the last module that produced an output (which
  decides the unit axis);
* one :class:`~torch.overrides.TorchFunctionMode`, pushed only while a recorded
  model runs, sees every ReLU-family call, whether it comes from ``nn.ReLU`` or
  from ``F.relu`` in the model's own forward code.

Counters are integer tensors on the activation's device, updated in place: no
host synchronisation per batch, memory proportional to the number of units.
Results reach the host only in :meth:`Recorder.stats`.
"""

from __future__ import annotations

import sys
import threading
import types
import warnings
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from deadcheck.analysis.judging import analyze
from deadcheck.core.errors import InputError, RecordingError, TrainingModeWarning
from deadcheck.core.options import RecordingKwargs, RecordingOptions, recording_options
from deadcheck.core.sites import SiteId, UncountedSite
from deadcheck.recording.activations import ActivationCall, ModuleCalls, is_family_module
from deadcheck.recording.codescan import ModelNames, Reading, hands_code, model_names, reading
from deadcheck.recording.counting import SiteCounter, collect
from deadcheck.recording.distributed import is_distributed
from deadcheck.recording.interception import Watch
from deadcheck.recording.naming import SiteNamer, SitePlace
from deadcheck.recording.units import Layout, Producer, UnitAxisError, layout_of, pick_layout
from deadcheck.recording.wrappers import eager, is_compiled, unwrap
from deadcheck.results.report import Report
from deadcheck.results.stats import Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Recorder", "RecordingError", "record"]


def _batch_size(args: tuple[Any, ...], kwargs: Mapping[str, Any], axis: int | None = None) -> int:
    """How many samples one forward pass carries.

    The first tensor found decides: its size along ``axis`` when given, else
    its first axis (1 for a scalar or a vector). A list or tuple of tensors that
    all have rank 3 is a list of unbatched images (C, H, W), as torchvision's
    detection and segmentation models take: that many samples.
    """
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            if axis is not None:
                if value.ndim and not -value.ndim <= axis < value.ndim:
                    raise InputError(
                        f"batch_axis {axis} is out of range for the first input, of shape "
                        f"{tuple(value.shape)}",
                        option="batch_axis",
                    )
                return int(value.shape[axis]) if value.ndim else 1
            return int(value.shape[0]) if value.ndim >= 2 else 1
        if isinstance(value, (tuple, list)) and value:
            if axis is None and all(isinstance(v, torch.Tensor) and v.ndim == 3 for v in value):
                return len(value)
            return _batch_size(tuple(value), {}, axis)
        if isinstance(value, Mapping) and value:
            return _batch_size((), value, axis)
    return 1


def _recomputing() -> bool:
    """Whether a forward pass starts inside autograd's backward: a checkpoint's recomputation.

    ``torch.utils.checkpoint`` (``use_reentrant=True`` and ``False``) re-runs
    the checkpointed forward while backward runs; a forward the user runs is
    never inside a graph task.
    """
    return torch._C._current_graph_task_id() != -1


def _is_torch_layer(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.")


#: Forward methods that only call children: a container running them calls no activation.
_CONTAINER_FORWARDS = (nn.Sequential.forward, nn.Module.forward)


def _own_code(module: nn.Module) -> bool:
    """Whether calling ``module`` runs code other than torch's own for its class.

    A forward (or ``__call__``) replaced on the instance, defined by a subclass,
    or a class outside ``torch.nn`` all count as the model's code.
    """
    cls = type(module)
    if "forward" in module.__dict__ or cls.__call__ is not nn.Module.__call__:
        return True
    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return cls.forward not in _CONTAINER_FORWARDS  # a subclass with a forward of its own
    return not _is_torch_layer(module) or bool(module._modules)


def _on_stack(module: nn.Module, kinds: frozenset[str]) -> bool:
    """Whether a module takes part in naming sites: activations, callers, containers.

    torch's own leaf layers (Conv2d, BatchNorm2d, Linear, ...) never call an
    activation, so they stay unhooked and cost nothing.
    """
    if is_family_module(module, kinds) or isinstance(module, nn.Sequential):
        return True
    return _own_code(module)


#: When a module's calls turn the function mode on: never (activation modules, plain
#: containers), always (code that may call F.relu), or, for code the scan reads as
#: closed, on its first call (probation), then only when handed code or on audit passes.
_NEVER, _ALWAYS, _CLOSED, _PROBATION = 0, 1, 2, 3

#: Why a stack entry turned the mode on: it did not, it is watched, it was handed code,
#: or the pass is an audit.
_OFF, _WATCHED, _HANDED, _AUDIT = 0, 1, 2, 3


def _runs_own_activations(module: nn.Module, kinds: frozenset[str]) -> bool:
    """Whether a module's own forward code may call F.relu and friends (the mode must watch).

    Activation modules are counted by their own hooks, and plain containers
    only call their children; the user's modules, torchvision's, torch's
    composites such as TransformerEncoderLayer (which calls F.relu), and
    containers with a forward of their own (torch.ao's fused QAT modules) may.
    """
    if is_family_module(module, kinds):
        return False
    return _own_code(module)


def _runs_hidden_activation(module: nn.Module) -> str | None:
    """Why a module's activation cannot be seen, if it has one no hook or call can read.

    A converted int8 model's fused modules (``QuantizedConvReLU2d``, ``LinearReLU``,
    ...) apply their ReLU inside one quantized kernel.
    """
    cls = type(module)
    if cls.__module__.startswith("torch.ao.nn.intrinsic.quantized") and "ReLU" in cls.__name__:
        return (
            f"a quantized {cls.__name__} applies its ReLU inside one int8 kernel, where "
            "no hook can read it; record the float model before convert()"
        )
    return None


def _running(module: nn.Module) -> bool:
    """Whether a call of ``module`` is under way on this thread (it calls itself recursively).

    Asked only when ``module`` is already on the recorder's stack: otherwise that
    entry is left from a pass a BaseException interrupted.
    """
    frame: types.FrameType | None = sys._getframe(1)
    call = nn.Module._call_impl.__code__
    calls = 0  # the first is the call whose hook asks
    while frame is not None:
        if frame.f_code is call and frame.f_locals.get("self") is module:
            calls += 1
            if calls == 2:
                return True
        frame = frame.f_back
    return False


def _audit_pass(number: int) -> bool:
    """Passes on which the mode watches every module: 1, 2, 4, ..., 64, then every 64th.

    A module read as closed that makes an activation call anyway (code changed
    behind the scan's back) is found there and watched from then on.
    """
    return number & (number - 1) == 0 if number <= 64 else number % 64 == 0


class Recorder:
    """Watches one model's ReLU-family sites while attached.

    Its one job: attach hooks, route each activation call to its site's
    counter, detach, and hand out results. Wrappers (:mod:`deadcheck.recording.wrappers`),
    the function mode (:mod:`deadcheck.recording.interception`), site names
    (:mod:`deadcheck.recording.naming`) and unit axes (:mod:`deadcheck.recording.units`) live
    elsewhere.

    Use it through :func:`record` as a context manager. ``unit_axis`` maps a
    site name (``layers.3``, ``block:relu#1``, or the name without ``#i``) to
    the axis that holds its units, where the default guess is wrong.
    ``batch_axis`` names the axis of the first input tensor that holds the
    samples, where it is not the first (sequence-first (T, N, E) inputs).
    """

    def __init__(
        self,
        model: nn.Module,
        options: RecordingOptions | None = None,
        *,
        target: str | None = None,
        **kwargs: Unpack[RecordingKwargs],
    ) -> None:
        self.options = recording_options(options, kwargs)
        #: Warn (once) when a pass runs in training mode outside ``training_only``;
        #: ``record()`` turns it on, ``scan`` (which sets the mode itself) off.
        self.warn_training = False
        if not isinstance(model, nn.Module):
            raise TypeError(f"record() needs an nn.Module, got {type(model).__name__}")
        if isinstance(model, torch.jit.ScriptModule):
            raise RecordingError(
                "TorchScript modules cannot be recorded: hooks do not run inside "
                "scripted code; record the eager model before scripting it"
            )
        self.model = unwrap(model)
        #: A torch.compile'd model runs eagerly while recorded (compiled graphs skip hooks).
        self._compiled = is_compiled(model)
        self.target = target
        self._unit_axis = dict(self.options.unit_axis)
        self._batch_axis = self.options.batch_axis
        #: The kinds recorded, and whether dormant statistics (sums of |output|) are kept:
        #: always for kinds outside the ReLU family, which have nothing else to show.
        self._kinds = self.options.kinds
        self._training_only = self.options.training_only
        self._scoped = self.options.scoped
        self._handles: list[RemovableHandle] = []
        self._exit = ExitStack()
        self._watch = Watch(self._intercepted)
        self._namer = SiteNamer()
        self._calls = ModuleCalls()
        #: Places by (module on top of the stack, its caller or the function called).
        self._known_places: dict[tuple[int, int | str | None], SitePlace] = {}
        self._paths: dict[int, str] = {}
        self._types: dict[int, str] = {}
        self._family: dict[int, bool] = {}
        self._stack: list[int] = []
        #: Per entry of the stack: why its call turned the function mode on (_OFF: it did not).
        self._entered: list[int] = []
        #: The outputs of layout-deciding modules this pass, newest last (unit axes).
        self._produced: list[Producer] = []
        #: Per hooked module: when its calls turn the mode on (_NEVER ... _PROBATION).
        self._state: dict[int, int] = {}
        #: Modules read as closed, with what the reading rests on (checked every pass).
        self._readings: dict[int, Reading] = {}
        #: Closed modules that have run with the mode off.
        self._ran_unwatched: set[int] = set()
        self._passes = 0
        self._audit = False
        #: The thread whose forward pass is under way.
        self._thread = 0
        #: Sites first found on an audit pass in a module that had run unwatched.
        self._late: dict[tuple[str, int], int] = {}
        self._places: dict[tuple[str, int], SitePlace] = {}
        self._counters: dict[tuple[str, int], SiteCounter] = {}
        self._samples = 0
        self._problems: dict[tuple[str, int], str] = {}
        #: Sites whose given unit axis does not fit: the axis and how.
        self._axis_errors: dict[tuple[str, int], UnitAxisError] = {}
        #: Activations in the model that nothing can count (found when attaching).
        self._hidden: list[UncountedSite] = []
        self._partial = False
        self._attached = False

    # -- attaching -------------------------------------------------------

    def attach(self) -> Recorder:
        """Register the hooks. Idempotent; :meth:`detach` undoes it."""
        if self._attached:
            return self
        self._attached = True
        try:
            if self._compiled:
                self._exit.enter_context(eager())
            for path, module in self.model.named_modules():
                if isinstance(module, torch.jit.ScriptModule):
                    raise RecordingError(
                        f"{path or 'the model'} is a TorchScript module: hooks do not run "
                        "inside scripted code; record the eager model instead"
                    )
            names: ModelNames | None = None
            self._hidden = []  # found again on every attach
            self._known_places.clear()  # paths are read again below
            for path, module in self.model.named_modules():
                key = id(module)
                hidden = _runs_hidden_activation(module)
                if hidden is not None:
                    self._hidden.append(UncountedSite(SiteId(module=path), hidden))
                self._paths[key] = path
                self._types[key] = type(module).__name__
                self._family[key] = is_family_module(module, self._kinds)
                layout = layout_of(module)
                if module is self.model or _on_stack(module, self._kinds):
                    state = _NEVER
                    if _runs_own_activations(module, self._kinds):
                        # Attached again (a Monitor between snapshots, a benchmark): what
                        # was learnt of a module is kept while its reading holds.
                        previous = self._state.get(key)
                        kept = self._readings.get(key)
                        if previous in (_CLOSED, _PROBATION) and kept and kept.holds():
                            state = previous
                        elif previous == _ALWAYS or not self._scoped:
                            state = _ALWAYS
                        else:
                            if names is None:
                                names = model_names(self.model.modules())
                            found = reading(module, names)
                            state = _PROBATION if found.closed else _ALWAYS
                            if found.closed:
                                self._readings[key] = found
                    self._state[key] = state
                    self._handles.append(
                        module.register_forward_pre_hook(self._make_pre_hook(key), with_kwargs=True)
                    )
                    self._handles.append(
                        module.register_forward_hook(
                            self._make_post_hook(key, layout), always_call=True
                        )
                    )
                elif layout is not None:
                    # Kept for the whole recording: a site first seen on a later pass
                    # (a branch, a checkpointed block) needs its producer's layout too.
                    # Measured: about 1.3 us per hooked layer call, 0.04% of resnet18.
                    self._handles.append(
                        module.register_forward_hook(self._make_layout_hook(key, layout))
                    )
        except BaseException:
            self.detach()
            raise
        return self

    def detach(self) -> None:
        """Remove every hook this recorder added. Safe to call twice."""
        try:
            for handle in self._handles:
                handle.remove()
        finally:
            self._handles.clear()
            try:
                self._exit.close()  # the compile stance, where it was changed
            finally:
                self._stack.clear()
                self._entered.clear()
                self._watch.stop()
                self._attached = False

    def __enter__(self) -> Recorder:
        return self.attach()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if exc_type is KeyboardInterrupt:
            self._partial = True
        self.detach()

    @property
    def attached(self) -> bool:
        return self._attached

    def _new_pass(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The outermost call of this model: a new forward pass starts."""
        if self.warn_training and self.model.training and not self._training_only:
            self.warn_training = False
            warnings.warn(
                "deadcheck.record: the model is in training mode, so Dropout and BatchNorm "
                "behave as in training and the counts differ from eval mode; call "
                "model.eval() first, or record(..., training_only=True) inside a training loop",
                TrainingModeWarning,
                stacklevel=_user_frame(),
            )
        self._namer.new_pass()
        self._produced.clear()
        self._samples += _batch_size(args, kwargs, self._batch_axis)
        self._passes += 1
        self._audit = self._scoped and _audit_pass(self._passes)
        # Code rebound since it was read (block.act = F.relu, a patched forward, a
        # rebound global) is watched from this pass on.
        for key, found in list(self._readings.items()):
            if not found.holds():
                self._reopen(key)

    def _unwind(self, depth: int) -> None:
        """Drop the calls from ``depth`` up: a pass that a BaseException interrupted.

        torch runs always-call forward hooks only on ``Exception``; after a
        KeyboardInterrupt the user caught (a notebook cell, a training loop)
        the interrupted calls would otherwise stay on the stack and every
        later pass would look nested inside them.
        """
        while len(self._stack) > depth:
            self._stack.pop()
            if self._entered.pop():
                self._watch.exit()

    def _reopen(self, key: int) -> None:
        self._state[key] = _ALWAYS
        self._readings.pop(key, None)

    def _make_pre_hook(self, key: int) -> Any:
        state = self._state

        def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            stack = self._stack
            if stack:
                if threading.get_ident() != self._thread:
                    raise RecordingError(
                        "one recorder cannot follow forward passes in two threads at once; "
                        "give each thread its own recorder (record() per thread)"
                    )
                if key in stack and not _running(module):
                    self._unwind(stack.index(key))
            if not stack:
                if _recomputing():
                    # Gradient checkpointing re-runs a forward during backward: it was
                    # counted when it first ran, so its recomputation is not a pass.
                    return
                if self._training_only and not module.training:
                    return  # an evaluation pass inside a training loop
                self._thread = threading.get_ident()
                self._new_pass(args, kwargs)
            watch = state[key]
            entered = _OFF
            if watch in (_ALWAYS, _PROBATION):
                entered = _WATCHED
            elif watch == _CLOSED:
                if self._audit:
                    entered = _AUDIT
                elif hands_code(args, kwargs):
                    entered = _HANDED
                elif not self._watch.watching:
                    self._ran_unwatched.add(key)
            self._stack.append(key)
            self._entered.append(entered)
            if entered:
                self._watch.enter()

        return pre_hook

    def _make_post_hook(self, key: int, layout: Layout | None) -> Any:
        family = self._family[key]
        state = self._state

        def post_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            stack = self._stack
            if not stack or stack[-1] != key or threading.get_ident() != self._thread:
                return
            if family and isinstance(output, torch.Tensor) and args:
                call = self._calls(module)
                counted = args[0] if call.kind == "PReLU" else output
                if isinstance(counted, torch.Tensor):
                    pre = args[0] if args[0] is not output else None  # in place: overwritten
                    self._observe(call, counted, output, pre)
            stack.pop()
            if self._entered.pop():
                self._watch.exit()
            if state[key] == _PROBATION:
                state[key] = _CLOSED  # a whole call watched, and no activation call seen
            if layout is not None and isinstance(output, torch.Tensor):
                self._produced.append((output.shape, layout, key))

        return post_hook

    def _make_layout_hook(self, key: int, layout: Layout) -> Any:
        produced = self._produced

        def layout_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor):
                produced.append((output.shape, layout, key))
                if len(produced) > 64:
                    del produced[:32]

        return layout_hook

    # -- counting ----------------------------------------------------------

    def _intercepted(
        self,
        call: ActivationCall,
        x: torch.Tensor,
        output: torch.Tensor | None,
        pre: torch.Tensor | None = None,
    ) -> None:
        """A functional call seen by the function mode."""
        stack = self._stack
        if call.kind in self._kinds and stack and not self._family[stack[-1]]:
            top = stack[-1]
            state = self._state[top]
            late = False
            if state == _PROBATION or (state == _CLOSED and self._entered[-1] != _HANDED):
                # The scan read this module as making no activation call, and it made
                # one: watched from now on. Where it has run unwatched before, earlier
                # passes may have made this call uncounted, and the report says so.
                late = state == _CLOSED and top in self._ran_unwatched
                self._reopen(top)
            key = self._observe(call, x, output, pre)
            if late:
                self._late.setdefault(key, self._passes)
        # Inside an activation module, its own forward hook does the counting.

    def _place(self, call: ActivationCall) -> SitePlace:
        """Where the call at the top of the stack is: its module, function and caller."""
        stack = self._stack
        top = stack[-1]
        functional = not self._family[top]  # a functional call, made by this module's code
        below = stack[-2] if len(stack) >= 2 else None
        key = (top, call.function if functional else below)
        place = self._known_places.get(key)
        if place is None:
            path = self._paths[top]
            if functional:
                place = SitePlace(module=path, function=call.function, caller=path)
            else:
                caller = self._paths[below] if below is not None else None
                place = SitePlace(module=path, function=None, caller=caller)
            self._known_places[key] = place
        return place

    def _axis_override(self, place: SitePlace, index: int) -> int | None:
        """The unit axis the user gave for this site (by ``base#index`` first, then ``base``)."""
        if not self._unit_axis:
            return None
        site = self._namer.site(place, index)
        given = sorted(
            (key == site.base, axis) for key, axis in self._unit_axis.items() if site.matches(key)
        )
        return given[0][1] if given else None

    def _observe(
        self,
        call: ActivationCall,
        x: torch.Tensor,
        output: torch.Tensor | None = None,
        pre: torch.Tensor | None = None,
    ) -> tuple[str, int]:
        """Count one call at its site; returns the site's key."""
        place = self._place(call)
        index = self._namer.index(place)
        key = (place.base, index)
        counter = self._counters.get(key)
        # The counting ops themselves must not pass through the function mode
        # (active inside callers such as a ResNet block): about 850 Python round
        # trips per resnet18 forward pass otherwise.
        try:
            with torch._C.DisableTorchFunction():
                if counter is None:
                    self._places[key] = place
                    layout, source = pick_layout(x, self._produced, self._describe)
                    self._counters[key] = SiteCounter.create(
                        call,
                        x,
                        layout=layout,
                        axis_source=source,
                        axis=self._axis_override(place, index),
                        options=self.options,
                        output=output,
                        pre=pre,
                    )
                else:
                    counter.add(call, x, output, pre)
        except Exception as error:  # never break the user's forward pass
            self._places.setdefault(key, place)
            self._problems.setdefault(key, f"{type(error).__name__}: {error}")
            if isinstance(error, UnitAxisError):
                self._axis_errors.setdefault(key, error)
        return key

    # -- results -----------------------------------------------------------

    def _describe(self, key: int) -> str:
        """A module for the report: its path and class (``layer1.0.conv1 (Conv2d)``)."""
        path = self._paths.get(key, "")
        cls = self._types.get(key, "")
        return f"{path or 'the model'} ({cls})" if cls else path or "the model"

    def _site(self, key: tuple[str, int]) -> SiteId:
        return self._namer.site(self._places[key], key[1])

    def site_names(self) -> list[str]:
        """Names of the sites seen so far, in forward order (no device sync)."""
        return [self._site(key).name for key in self._counters]

    def reset(self) -> None:
        """Zero every counter (sites and names are kept)."""
        for counter in self._counters.values():
            counter.reset()
        self._samples = 0

    def _named_counters(self) -> list[tuple[SiteId, SiteCounter]]:
        """The live device counters with their sites, in forward order (internal)."""
        return [(self._site(key), counter) for key, counter in self._counters.items()]

    def counter_bytes(self) -> int:
        """Device memory the counters hold: it grows with units, never with batches."""
        return sum(
            t.numel() * t.element_size() for c in self._counters.values() for t in c.int_parts()
        )

    def stats(self, *, reduce: bool | None = None) -> Stats:
        """Copy the counts to the host, in one transfer, as frozen :class:`Stats`.

        Under an initialised ``torch.distributed`` process group (or with
        ``reduce=True``) the counts are first summed over all ranks with one
        ``all_reduce``; every rank must call this, and every rank gets the total.
        """
        if reduce is None:
            reduce = is_distributed()
        sites, samples = collect(self._named_counters(), self._samples, reduce=reduce)
        uncounted = (
            tuple(
                UncountedSite(
                    self._site(key),
                    why,
                    given_axis=None
                    if key not in self._axis_errors
                    else self._axis_errors[key].axis,
                    axis_problem=None
                    if key not in self._axis_errors
                    else self._axis_errors[key].why,
                )
                for key, why in self._problems.items()
            )
            + tuple(
                UncountedSite(
                    self._site(key),
                    f"first seen on pass {first} of {self._passes}, in code deadcheck had read "
                    "as making no activation call; passes before it may have made the call "
                    "uncounted (record with Recorder(..., scoped=False) to watch every module)",
                )
                for key, first in self._late.items()
                if key in self._places
            )
            + tuple(self._hidden)
        )
        return Stats(
            sites=tuple(sites),
            samples=samples,
            partial=self._partial,
            target=self.target,
            problems=tuple(f"{u.site.name}: {u.why}" for u in uncounted),
            uncounted=uncounted,
        )

    def report(self, **thresholds: Any) -> Report:
        """``analyze(self.stats(), **thresholds)``: the analysed report."""
        return analyze(self.stats(), **thresholds)


def _user_frame() -> int:
    """The stack level of the first frame outside torch and deadcheck: the user's ``model(x)``."""
    level = 1
    frame: types.FrameType | None = sys._getframe(1)
    inside = (Path(torch.__file__).parent, Path(__file__).parents[1])
    while frame is not None and any(
        Path(frame.f_code.co_filename).is_relative_to(folder) for folder in inside
    ):
        level, frame = level + 1, frame.f_back
    return level


def record(
    model: nn.Module,
    options: RecordingOptions | None = None,
    *,
    target: str | None = None,
    **kwargs: Unpack[RecordingKwargs],
) -> Recorder:
    """A :class:`Recorder` for ``model``; attach it with ``with record(model) as rec:``.

    Hooks and the function mode are removed when the block ends, even when the
    model's forward raises. The model's weights, buffers and training flag are
    never touched, and nothing is stored on it.

    The options (``activations``, ``unit_axis``, ``batch_axis``,
    ``dormant_sums``, ``training_only``, ``scoped``) are
    :class:`~deadcheck.core.options.RecordingOptions`' fields, given as
    ``options=`` or as keywords. Without ``batch_axis``, a list of rank-3
    tensors (C, H, W images, as torchvision's detectors take) counts one
    sample per tensor. Forward passes that gradient checkpointing recomputes
    during backward are not counted again.
    """
    recorder = Recorder(model, options, target=target, **kwargs)
    recorder.warn_training = True
    return recorder
