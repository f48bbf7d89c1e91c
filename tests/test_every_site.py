"""Every site is counted, on its true unit axis, or the report says it could not be.

Each pattern below once lost its sites silently (issue 20). Every model here
is recorded twice, by the default recorder (the function mode scoped to code
that may call an activation) and by one that watches every module
(``scoped=False``): the stats must be equal, and equal to the planted counts.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import deadcheck
from deadcheck.core.errors import RecordingError

#: Unit 0 and 3 never fire, 1 and 2 always do.
BIAS = (-100.0, 100.0, 1.0, -1.0)


def planted() -> nn.Linear:
    """A Linear(4, 4) whose output is its bias whatever the input."""
    layer = nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor(BIAS))
    return layer


def expected_zeros(positions: int) -> tuple[int, ...]:
    return tuple(positions if b <= 0 else 0 for b in BIAS)


Run = Callable[[nn.Module, torch.Tensor], None]


def passes(n: int) -> Run:
    def run(model: nn.Module, x: torch.Tensor) -> None:
        for _ in range(n):
            model(x)

    return run


def both(build: Callable[[], nn.Module], run: Run, **options: object):
    """The stats of the default recorder and of one that watches everywhere, same passes."""
    results = []
    for scoped in (True, False):
        torch.manual_seed(0)
        model = build()
        x = torch.randn(5, 4)
        rec = deadcheck.Recorder(model, scoped=scoped, **options)  # type: ignore[arg-type]
        with rec:
            run(model, x)
        results.append(rec.stats())
    return results


# -- forward code that once lost its sites ------------------------------------------


class Layer(nn.Module):
    def __init__(self, act: object) -> None:
        super().__init__()
        self.fc = planted()
        self.act = act


class LoopMLP(nn.Module):
    """Each layer's stored activation, None on the last layer."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Layer(F.relu), Layer(F.relu), Layer(None)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer.fc(x)
            x = layer.act(x) if layer.act is not None else x
        return x


class MixedBlocks(nn.Module):
    """Blocks holding a module, a function and another function under one name."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Layer(nn.ReLU()), Layer(F.relu), Layer(F.leaky_relu)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block.act(block.fc(x))
        return x


class Child(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()
        self.func = F.relu  # ``func`` is also a name torch defines (torch.func)


class TorchNamed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.child = Child()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.child.func(self.child.fc(x))


class SequentialOwnForward(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for module in self:
            x = module(x)
        return F.relu(x)


class ModuleListOwnForward(nn.ModuleList):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self:
            x = module(x)
        return torch.relu(x)


def plain_wraps(forward: Callable) -> Callable:
    @functools.wraps(forward)
    def call(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return forward(self, x)

    return call


class DecoratedAttribute(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()
        self.act = F.relu

    @plain_wraps
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class Unregistered(nn.Module):
    """An activation module kept out of the registry: it has no hooks of ours."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()
        object.__setattr__(self, "act", nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class InAList(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()
        self.acts = [nn.ReLU()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.acts[0](self.fc(x))


class OwnCall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return F.relu(super().__call__(x))


class CallsOwnCall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = OwnCall()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1.0


def qat_linear_relu() -> nn.Module:
    from torch.ao.nn.intrinsic.qat import LinearReLU
    from torch.ao.quantization import get_default_qat_qconfig

    module = LinearReLU(4, 4, qconfig=get_default_qat_qconfig("fbgemm"))
    with torch.no_grad():
        module.weight.zero_()
        module.bias.copy_(torch.tensor(BIAS))
    return nn.Sequential(module)


PATTERNS = [
    ("loop-over-layers-stored-activation", LoopMLP, 2),
    ("blocks-with-module-function-and-leaky", MixedBlocks, 3),
    ("torch-defined-attribute-name", TorchNamed, 1),
    ("sequential-subclass-with-forward", lambda: SequentialOwnForward(planted()), 1),
    ("modulelist-subclass-with-forward", lambda: ModuleListOwnForward([planted()]), 1),
    ("functools-wraps-forward", DecoratedAttribute, 1),
    ("activation-module-out-of-registry", Unregistered, 1),
    ("activation-module-in-a-list", InAList, 1),
    ("relu-in-overridden-call", CallsOwnCall, 1),
    ("qat-fused-linear-relu", qat_linear_relu, 1),
]


@pytest.mark.parametrize(
    ("build", "sites"), [p[1:] for p in PATTERNS], ids=[p[0] for p in PATTERNS]
)
def test_every_pattern_is_counted_exactly(build, sites) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notes
        scoped, everywhere = both(build, passes(3))
    assert scoped.to_dict() == everywhere.to_dict()
    assert len(scoped.sites) == sites, scoped.names
    assert not scoped.uncounted
    for site in scoped.sites:
        assert site.positions == 15 and site.units == 4
        if site.kind == "ReLU":
            assert site.zeros == expected_zeros(15), site.name


def test_torch_ao_qat_fused_conv_bn_relu_is_counted() -> None:
    from torch.ao.nn.intrinsic.qat import ConvBnReLU2d, ConvReLU2d
    from torch.ao.quantization import get_default_qat_qconfig

    qconfig = get_default_qat_qconfig("fbgemm")
    x = torch.randn(2, 3, 8, 8)
    results = []
    for scoped in (True, False):
        torch.manual_seed(0)  # the same model twice: training updates its observers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = nn.Sequential(
                ConvBnReLU2d(3, 6, 3, padding=1, qconfig=qconfig),
                ConvReLU2d(6, 5, 1, qconfig=qconfig),
            )
        with deadcheck.Recorder(model, scoped=scoped) as rec:
            model(x)
            model(x)
            model(x)
        results.append(rec.stats())
    assert results[0].to_dict() == results[1].to_dict()
    assert [(s.name, s.units, s.unit_axis) for s in results[0].sites] == [
        ("0:relu", 6, 1),
        ("1:relu", 5, 1),
    ]
    assert results[0].sites[0].positions == 3 * 2 * 64


# -- code rebound after the recorder attached ----------------------------------------


class Optional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()
        self.act = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        return self.act(x) if self.act is not None else x


class Root(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Optional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


GLOBAL_ACT: Callable[[torch.Tensor], torch.Tensor] = torch.abs


class UsesGlobal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GLOBAL_ACT(self.fc(x))


def rebind_attribute(model: nn.Module) -> None:
    model.block.act = F.relu


def replace_instance_forward(model: nn.Module) -> None:
    block = model.block
    block.forward = lambda x: F.relu(block.fc(x))


def patch_class_forward(model: nn.Module) -> None:
    cls = type("Patched", (Optional,), {})
    model.block.__class__ = cls  # a fresh class, so the patch stays in this test
    cls.forward = lambda self, x: torch.relu(self.fc(x))


def rebind_global(model: nn.Module) -> None:
    global GLOBAL_ACT
    GLOBAL_ACT = F.relu


REBINDS = [
    ("attribute-set-after-attach", Root, rebind_attribute),
    ("instance-forward-replaced", Root, replace_instance_forward),
    ("class-forward-patched", Root, patch_class_forward),
    ("global-rebound", UsesGlobal, rebind_global),
]


@pytest.mark.parametrize(("build", "rebind"), [r[1:] for r in REBINDS], ids=[r[0] for r in REBINDS])
def test_code_rebound_after_attach_is_counted_from_the_next_pass(build, rebind) -> None:
    """Passes 1-5 make no activation call; the code is rebound; passes 6-8 each make one."""
    global GLOBAL_ACT

    def run(model: nn.Module, x: torch.Tensor) -> None:
        global GLOBAL_ACT
        GLOBAL_ACT = torch.abs
        for _ in range(5):
            model(x)
        rebind(model)
        for _ in range(3):
            model(x)

    try:
        scoped, everywhere = both(build, run)
    finally:
        GLOBAL_ACT = torch.abs
    assert scoped.to_dict() == everywhere.to_dict()
    (site,) = scoped.sites
    assert (site.positions, site.zeros) == (15, expected_zeros(15))
    assert not scoped.uncounted


class Sneaky(nn.Module):
    """Code the scan cannot see change: a function's code object swapped after attach."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return helper(self.fc(x))


def helper(x: torch.Tensor) -> torch.Tensor:
    return x * 1.0


def relu_helper(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x)


def test_a_call_the_scan_could_not_foresee_is_found_by_an_audit_and_reported() -> None:
    """The audit pass (8) finds it; the report names the site as counted from there on."""
    model = Sneaky()
    original = helper.__code__
    x = torch.randn(5, 4)
    try:
        with deadcheck.record(model) as rec:
            for _ in range(5):
                model(x)
            helper.__code__ = relu_helper.__code__
            for _ in range(5):
                model(x)  # passes 6..10: 6 and 7 unwatched, 8 is an audit
    finally:
        helper.__code__ = original
    stats = rec.stats()
    (site,) = stats.sites
    assert site.positions == 3 * 5  # passes 8, 9, 10
    (late,) = stats.uncounted
    assert late.site.name == site.name and "first seen on pass 8 of 10" in late.why
    report = rec.report()
    assert report.incomplete
    assert any(f.code == "uncounted-site" and f.site == site.name for f in report.findings)


def test_a_scripted_submodule_with_children_is_a_recording_error() -> None:
    model = nn.Sequential(planted(), torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU())))
    with pytest.raises(RecordingError, match="TorchScript"):
        deadcheck.record(model).attach()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


# -- the unit axis comes from the tensor the activation received ----------------------


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(8, 8)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, c = y.shape[:2]
        scale = torch.sigmoid(self.fc(y.mean((2, 3)))).view(b, c, 1, 1)
        return self.relu(y * scale)


class LayerNormedConv(nn.Module):
    """Wav2Vec2's feat_extract_norm="layer": conv, transpose, LayerNorm, transpose, act."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 16, 2)
        self.norm = nn.LayerNorm(16)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x).transpose(-2, -1)).transpose(-2, -1)
        return self.act(y)


AXES = [
    ("squeeze-excitation-with-linear", SqueezeExcite, [(2, 3, 5, 12), (2, 3, 7, 9)], 8, 1),
    ("conv-transpose-layernorm-transpose", LayerNormedConv, [(2, 1, 80), (3, 1, 41)], 16, 1),
]


@pytest.mark.parametrize(
    ("build", "shapes", "units", "axis"), [a[1:] for a in AXES], ids=[a[0] for a in AXES]
)
def test_units_come_from_the_module_whose_output_the_activation_received(
    build, shapes, units, axis
) -> None:
    model = build()
    with deadcheck.record(model) as rec:
        for shape in shapes:
            model(torch.randn(shape))
    stats = rec.stats()
    (site,) = stats.sites
    assert (site.units, site.unit_axis) == (units, axis)
    assert "conv" in (site.axis_source or "") and not site.axis_assumed
    assert not stats.uncounted


def test_huggingface_wav2vec2_with_layer_norm_features_counts_channels() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        feat_extract_norm="layer",
        feat_extract_activation="relu",
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    model = transformers.Wav2Vec2Model(config).eval()
    with torch.no_grad(), deadcheck.record(model) as rec:
        model(torch.randn(2, 400))
    features = [s for s in rec.stats().sites if "feature_extractor" in s.name]
    assert [(s.units, s.unit_axis) for s in features] == [(16, 1), (16, 1)]


def test_an_axis_no_producer_decides_is_named_as_assumed() -> None:
    model = nn.Sequential(nn.Linear(4, 24), nn.Unflatten(1, (6, 2, 2)), nn.ReLU())
    with deadcheck.record(model) as rec:
        model(torch.randn(3, 4))
    (site,) = rec.stats().sites
    assert (site.units, site.unit_axis) == (6, 1)
    assert site.axis_assumed and "assumed" in rec.report().to_dict()["sites"][0]["unit_axis_source"]


# -- models whose activations were silent ---------------------------------------------


def test_a_torch_export_module_is_counted() -> None:
    model = nn.Sequential(planted(), nn.ReLU())
    exported = torch.export.export(model, (torch.randn(5, 4),)).module()
    with deadcheck.record(exported) as rec:
        exported(torch.randn(5, 4))
        exported(torch.randn(5, 4))
    (site,) = rec.stats().sites
    assert (site.kind, site.positions, site.zeros) == ("ReLU", 10, expected_zeros(10))


def test_an_int8_converted_model_says_its_fused_relu_is_uncounted() -> None:
    from torch.ao.quantization import DeQuantStub, QuantStub, get_default_qconfig

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.conv, self.relu = QuantStub(), nn.Conv2d(3, 4, 1), nn.ReLU()
            self.dequant = DeQuantStub()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dequant(self.relu(self.conv(self.quant(x))))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Net().eval()
        model.qconfig = get_default_qconfig("fbgemm")
        torch.ao.quantization.fuse_modules(model, [["conv", "relu"]], inplace=True)
        torch.ao.quantization.prepare(model, inplace=True)
        model(torch.randn(2, 3, 4, 4))
        torch.ao.quantization.convert(model, inplace=True)
    rec = deadcheck.record(model)
    for _ in range(2):  # attached twice: still one uncounted site
        with rec:
            model(torch.randn(2, 3, 4, 4))
    report = rec.report()
    assert report.incomplete
    (finding,) = [f for f in report.findings if f.code == "uncounted-site"]
    assert finding.site == "conv" and "int8" in finding.message


def test_transformers_composite_gelus_are_sites_under_all() -> None:
    activations = pytest.importorskip("transformers.activations")
    model = nn.Sequential(
        nn.Linear(4, 6),
        activations.NewGELUActivation(),
        nn.Linear(6, 5),
        activations.QuickGELUActivation(),
    )
    with deadcheck.record(model, activations="all") as rec:
        model(torch.randn(3, 4))
    assert [(s.name, s.kind, s.units) for s in rec.stats().sites] == [
        ("1", "GELU", 6),
        ("3", "GELU", 5),
    ]


class CEntryPoints(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = planted()
        self.clip = nn.Hardtanh(0.0, 6.0)
        self.other = nn.Hardtanh(-1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return (
            torch._C._nn.leaky_relu(y, 0.1) + torch._C._nn.relu6(y) + self.clip(y) + self.other(y)
        )


def test_entry_points_outside_the_list_are_sites() -> None:
    scoped, everywhere = both(CEntryPoints, passes(2))
    assert scoped.to_dict() == everywhere.to_dict()
    assert [(s.name, s.kind) for s in scoped.sites] == [
        (":leaky_relu", "LeakyReLU"),
        (":relu6", "ReLU6"),
        ("clip", "ReLU6"),
    ]
    assert scoped.sites[0].slope == pytest.approx(0.1)
    assert scoped.sites[2].zeros == expected_zeros(10)


def test_torchvision_detection_targets_need_no_backbone_download(monkeypatch) -> None:
    import torch.hub

    from deadcheck.workflows.loading import load_target

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    target = load_target("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn")
    assert isinstance(target.model, nn.Module)
    target = load_target("torchvision:fcn_resnet50")
    assert isinstance(target.model, nn.Module)


# -- the property: scoped stats equal watching everywhere ----------------------------

#: Block bodies, each ``(self, x) -> tensor`` on a block with a planted ``fc``.
BODIES: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "module": lambda self, x: self.relu(self.fc(x)),
    "functional": lambda self, x: F.relu(self.fc(x)),
    "stored": lambda self, x: self.act(self.fc(x)) if self.act is not None else self.fc(x),
    "method": lambda self, x: self.fc(x).relu(),
    "leaky": lambda self, x: F.leaky_relu(self.fc(x), 0.2),
    "none": lambda self, x: self.fc(x) * 2.0,
    "child-attribute": lambda self, x: self.fc(x) + 0.0,
}

ACTS: dict[str, object] = {"none": None, "relu": F.relu, "module": nn.ReLU()}


def make_block(body: str, act: str) -> nn.Module:
    cls = type(f"Block_{body}", (nn.Module,), {"forward": BODIES[body]})
    block = cls()
    block.fc = planted()
    block.relu = nn.ReLU()
    block.act = ACTS[act] if act != "module" else nn.ReLU()
    return block


class Chain(nn.Module):
    def __init__(self, blocks: list[nn.Module], via_loop: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.via_loop = via_loop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x) if self.via_loop else block.forward(x)
        return x


@settings(max_examples=25, deadline=None)
@given(
    blocks=st.lists(
        st.tuples(st.sampled_from(sorted(BODIES)), st.sampled_from(sorted(ACTS))),
        min_size=1,
        max_size=4,
    ),
    via_loop=st.booleans(),
    rebind=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.sampled_from(sorted(ACTS)))),
    n=st.integers(1, 10),
)
def test_scoped_stats_equal_watching_everywhere(blocks, via_loop, rebind, n) -> None:
    def build() -> nn.Module:
        return Chain([make_block(b, a) for b, a in blocks], via_loop)

    def run(model: nn.Module, x: torch.Tensor) -> None:
        for i in range(n):
            if rebind is not None and i == n // 2:
                which, act = rebind
                block = model.blocks[which % len(model.blocks)]
                value = ACTS[act]
                if isinstance(value, nn.Module) or isinstance(block._modules.get("act"), nn.Module):
                    continue  # swapping registered modules after attach is not code rebinding
                block.act = value
            model(x)

    scoped, everywhere = both(build, run)
    assert scoped.to_dict() == everywhere.to_dict()
    assert not scoped.uncounted


# -- third-party architectures: scoped stats equal watching everywhere ---------------


def _torchvision(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torchvision.models.get_model(name, weights=None, **kwargs).eval()

    return build


def _bert() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
    )
    return transformers.BertModel(config).eval()


ZOO = [
    ("resnet18", _torchvision("resnet18"), lambda: torch.randn(2, 3, 32, 32)),
    ("googlenet", _torchvision("googlenet", init_weights=False, aux_logits=False), None),
    ("mobilenet_v3_small", _torchvision("mobilenet_v3_small"), None),
    ("raft_small", _torchvision("raft_small"), None),
    ("r3d_18", _torchvision("r3d_18"), lambda: torch.randn(1, 3, 4, 32, 32)),
    (
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        _torchvision("fasterrcnn_mobilenet_v3_large_320_fpn", weights_backbone=None),
        lambda: [torch.rand(3, 64, 64)],
    ),
    (
        "transformer-encoder",
        lambda: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2, enable_nested_tensor=False
        ).eval(),
        lambda: torch.randn(5, 2, 8),
    ),
    ("bert-relu", _bert, lambda: torch.randint(0, 50, (2, 7))),
]


def _inputs(name: str, make: Callable[[], object] | None) -> tuple[object, ...]:
    if name == "raft_small":
        return (torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128))
    return (make() if make else torch.randn(2, 3, 64, 64),)


@pytest.mark.parametrize(("build", "make"), [z[1:] for z in ZOO], ids=[z[0] for z in ZOO])
def test_third_party_models_count_the_same_scoped_and_watched_everywhere(
    request, build, make
) -> None:
    name = request.node.callspec.id
    results = []
    for scoped in (True, False):
        torch.manual_seed(0)
        model = build()
        torch.manual_seed(1)
        inputs = _inputs(name, make)
        with torch.no_grad(), deadcheck.Recorder(model, scoped=scoped) as rec:
            for _ in range(3):
                model(*inputs)
        results.append(rec.stats())
    assert results[0].sites
    assert results[0].to_dict() == results[1].to_dict()
    assert not results[0].uncounted


def test_attaching_again_keeps_what_was_read_while_it_holds() -> None:
    """A recorder attached around each pass (a Monitor, a benchmark) stays scoped, and exact."""
    import torchvision

    model = torchvision.models.resnet18().eval()
    rec = deadcheck.Recorder(model)
    modes: list[int] = []
    probe = model.conv1.register_forward_pre_hook(
        lambda *_: modes.append(len(torch.overrides._get_current_function_mode_stack()))
    )
    x = torch.randn(1, 3, 32, 32)
    try:
        with torch.no_grad():
            for _ in range(3):
                with rec:
                    model(x)
    finally:
        probe.remove()
    assert modes == [1, 1, 0]  # pass 1 watched (first call), 2 an audit, 3 unwatched
    block = Root()
    rec = deadcheck.Recorder(block)
    x = torch.randn(5, 4)
    for i in range(6):
        if i == 3:
            rebind_attribute(block)  # while detached
        with rec:
            block(x)
    (site,) = rec.stats().sites
    assert (site.positions, site.zeros) == (15, expected_zeros(15))
    assert not rec.stats().uncounted


def test_the_table_and_markdown_say_where_an_axis_was_assumed() -> None:
    model = nn.Sequential(nn.Linear(4, 24), nn.Unflatten(1, (6, 2, 2)), nn.ReLU())
    report = deadcheck.scan(model, torch.randn(3, 4))
    table = deadcheck.render(report, "table").replace("\n", " ")
    assert "unit axis assumed from the rank at 2" in table
    assert "unit axis assumed from the rank at 2" in deadcheck.render(report, "markdown")
    decided = deadcheck.scan(nn.Sequential(planted(), nn.ReLU()), torch.randn(3, 4))
    assert "assumed" not in deadcheck.render(decided, "table")
