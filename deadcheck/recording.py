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

import types
from collections.abc import Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from deadcheck.activations import ActivationCall, is_family_module, module_call
from deadcheck.codescan import closed, hands_code, model_names
from deadcheck.counting import SiteCounter, collect
from deadcheck.errors import RecordingError
from deadcheck.interception import Watch
from deadcheck.kinds import FAMILY, KINDS
from deadcheck.naming import SiteNamer, SitePlace
from deadcheck.statistics import SiteId, Stats, UncountedSite
from deadcheck.units import Layout, layout_of
from deadcheck.wrappers import eager, is_compiled, unwrap

if TYPE_CHECKING:
    from deadcheck.analysis import Report

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


def _on_stack(module: nn.Module, kinds: frozenset[str]) -> bool:
    """Whether a module takes part in naming sites: activations, callers, containers.

    torch's own leaf layers (Conv2d, BatchNorm2d, Linear, ...) never call an
    activation, so they stay unhooked and cost nothing.
    """
    if is_family_module(module, kinds) or isinstance(module, nn.Sequential):
        return True
    return not _is_torch_layer(module) or bool(module._modules)


#: When a module's calls turn the function mode on: never (activation modules, containers),
#: always (code that may call F.relu), or when handed code (code that provably cannot).
_NEVER, _ALWAYS, _IF_HANDED_CODE = 0, 1, 2


def _runs_own_activations(module: nn.Module, kinds: frozenset[str]) -> bool:
    """Whether a module's own forward code may call F.relu and friends (the mode must watch).

    Activation modules are counted by their own hooks, and Sequential only
    calls its children; the user's modules, torchvision's, and torch's
    composites such as TransformerEncoderLayer (which calls F.relu) may.
    """
    if is_family_module(module, kinds) or isinstance(module, (nn.Sequential, nn.ModuleList)):
        return False
    return not _is_torch_layer(module) or bool(module._modules)


class Recorder:
    """Watches one model's ReLU-family sites while attached.

    Its one job: attach hooks, route each activation call to its site's
    counter, detach, and hand out results. Wrappers (:mod:`deadcheck.wrappers`),
    the function mode (:mod:`deadcheck.interception`), site names
    (:mod:`deadcheck.naming`) and unit axes (:mod:`deadcheck.units`) live
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
        *,
        unit_axis: Mapping[str, int] | None = None,
        target: str | None = None,
        batch_axis: int | None = None,
        activations: str = "relu",
        dormant: bool = False,
        training_only: bool = False,
    ) -> None:
        if activations not in ("relu", "all"):
            raise ValueError(f"activations must be 'relu' or 'all', got {activations!r}")
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
        self._unit_axis = dict(unit_axis or {})
        self._batch_axis = batch_axis
        #: The kinds recorded, and whether dormant statistics (sums of |output|) are kept:
        #: always for kinds outside the ReLU family, which have nothing else to show.
        self._kinds = FAMILY if activations == "relu" else frozenset(KINDS)
        self._dormant = dormant or activations == "all"
        #: Count only forward passes in training mode (a training loop's evaluation skipped).
        self._training_only = training_only
        self._handles: list[RemovableHandle] = []
        self._exit = ExitStack()
        self._watch = Watch(self._intercepted)
        self._namer = SiteNamer()
        self._paths: dict[int, str] = {}
        self._family: dict[int, bool] = {}
        self._stack: list[int] = []
        #: Per entry of the stack: whether its call turned the function mode on.
        self._entered: list[bool] = []
        self._layout: Layout | None = None
        self._places: dict[tuple[str, int], SitePlace] = {}
        self._counters: dict[tuple[str, int], SiteCounter] = {}
        self._samples = 0
        self._problems: dict[tuple[str, int], str] = {}
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
            names = model_names(self.model.modules())
            for path, module in self.model.named_modules():
                if isinstance(module, torch.jit.ScriptModule):
                    raise RecordingError(
                        f"{path or 'the model'} is a TorchScript module: hooks do not run "
                        "inside scripted code; record the eager model instead"
                    )
                key = id(module)
                self._paths[key] = path
                self._family[key] = is_family_module(module, self._kinds)
                layout = layout_of(module)
                if module is self.model or _on_stack(module, self._kinds):
                    watch = _NEVER
                    if _runs_own_activations(module, self._kinds):
                        watch = _IF_HANDED_CODE if closed(module, names) else _ALWAYS
                    self._handles.append(
                        module.register_forward_pre_hook(
                            self._make_pre_hook(key, watch), with_kwargs=True
                        )
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
                        module.register_forward_hook(self._make_layout_hook(layout))
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

    def _make_pre_hook(self, key: int, watch: int) -> Any:
        def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not self._stack:
                if _recomputing():
                    # Gradient checkpointing re-runs a forward during backward: it was
                    # counted when it first ran, so its recomputation is not a pass.
                    return
                if self._training_only and not module.training:
                    return  # an evaluation pass inside a training loop
                # The outermost call of this model: a new forward pass starts.
                self._namer.new_pass()
                self._layout = None
                self._samples += _batch_size(args, kwargs, self._batch_axis)
            entered = watch == _ALWAYS or (watch == _IF_HANDED_CODE and hands_code(args, kwargs))
            self._stack.append(key)
            self._entered.append(entered)
            if entered:
                self._watch.enter()

        return pre_hook

    def _make_post_hook(self, key: int, layout: Layout | None) -> Any:
        family = self._family[key]

        def post_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            stack = self._stack
            if not stack or stack[-1] != key:
                return
            if family and isinstance(output, torch.Tensor) and args:
                call = module_call(module)
                counted = args[0] if call.kind == "PReLU" else output
                if isinstance(counted, torch.Tensor):
                    self._observe(call, counted, output)
            stack.pop()
            if self._entered.pop():
                self._watch.exit()
            if layout is not None:
                self._layout = layout

        return post_hook

    def _make_layout_hook(self, layout: Layout) -> Any:
        def layout_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self._layout = layout

        return layout_hook

    # -- counting ----------------------------------------------------------

    def _intercepted(
        self, call: ActivationCall, x: torch.Tensor, output: torch.Tensor | None
    ) -> None:
        """A functional call seen by the function mode."""
        if call.kind in self._kinds and self._stack and not self._family[self._stack[-1]]:
            self._observe(call, x, output)
        # Inside an activation module, its own forward hook does the counting.

    def _place(self, call: ActivationCall) -> SitePlace:
        """Where the call at the top of the stack is: its module, function and caller."""
        stack = self._stack
        path = self._paths[stack[-1]]
        if not self._family[stack[-1]]:  # a functional call, made by this module's code
            return SitePlace(module=path, function=call.function, caller=path)
        caller = self._paths[stack[-2]] if len(stack) >= 2 else None
        return SitePlace(module=path, function=None, caller=caller)

    def _axis_override(self, place: SitePlace, index: int) -> int | None:
        """The unit axis the user gave for this site (by ``base#index`` first, then ``base``)."""
        site = self._namer.site(place, index)
        given = sorted(
            (key == site.base, axis) for key, axis in self._unit_axis.items() if site.matches(key)
        )
        return given[0][1] if given else None

    def _observe(
        self, call: ActivationCall, x: torch.Tensor, output: torch.Tensor | None = None
    ) -> None:
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
                    self._counters[key] = SiteCounter.create(
                        call,
                        x,
                        layout=self._layout,
                        axis=self._axis_override(place, index),
                        dormant=self._dormant,
                        output=output,
                    )
                else:
                    counter.add(call, x, output)
        except Exception as error:  # never break the user's forward pass
            self._places.setdefault(key, place)
            self._problems.setdefault(key, f"{type(error).__name__}: {error}")

    # -- results -----------------------------------------------------------

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
        from deadcheck.distributed import is_distributed

        if reduce is None:
            reduce = is_distributed()
        sites, samples = collect(self._named_counters(), self._samples, reduce=reduce)
        uncounted = tuple(
            UncountedSite(self._site(key), why) for key, why in self._problems.items()
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
        """``analyze(self.stats(), **thresholds)``: the :class:`~deadcheck.analysis.Report`."""
        from deadcheck.analysis import analyze

        return analyze(self.stats(), **thresholds)


def record(
    model: nn.Module,
    *,
    unit_axis: Mapping[str, int] | None = None,
    target: str | None = None,
    batch_axis: int | None = None,
    activations: str = "relu",
    dormant: bool = False,
) -> Recorder:
    """A :class:`Recorder` for ``model``; attach it with ``with record(model) as rec:``.

    Hooks and the function mode are removed when the block ends, even when the
    model's forward raises. The model's weights, buffers and training flag are
    never touched, and nothing is stored on it.

    ``batch_axis``: the axis of the first input tensor that counts samples,
    where it is not axis 0 (e.g. 1 for a ``batch_first=False`` transformer fed
    (T, N, E)). Without it, a list of rank-3 tensors (C, H, W images, as
    torchvision's detectors take) counts one sample per tensor.
    Forward passes that gradient checkpointing recomputes during backward
    are not counted again.

    ``activations="all"`` also records GELU, SiLU, Mish, ELU, CELU, SELU,
    Hardswish, Softplus, Tanh and Sigmoid (modules and functional forms; bare
    ``torch.tanh``/``torch.sigmoid`` calls are gates, not units, and are left
    out). ``dormant=True`` also sums each unit's |output| for ReDo's dormant
    score (on for every site under ``"all"``); it costs one more read of each
    activation, so it is off by default.
    """
    return Recorder(
        model,
        unit_axis=unit_axis,
        target=target,
        batch_axis=batch_axis,
        activations=activations,
        dormant=dormant,
    )
