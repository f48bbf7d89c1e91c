"""From what users have to a report: checkpoints, hub models and real data, in one command.

Everything is made here: models from configs with random weights, PNG files,
saved tensors, a tokenizer from a vocabulary file, a save_pretrained folder,
safetensors files and a fake torch hub cache entry. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn

import deadcheck
from deadcheck.cli import main
from deadcheck.core.errors import InputError
from deadcheck.workflows.checkpoints import load_weights
from deadcheck.workflows.data import data_batches

ROOT = Path(__file__).resolve().parent.parent
T = "tests/targets"


def run(*args: str, cwd: Path = ROOT) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _planted() -> nn.Module:
    import sys

    sys.path.insert(0, str(ROOT / T))
    try:
        from planted import Planted
    finally:
        sys.path.pop(0)
    return Planted()


# -- checkpoints --------------------------------------------------------------


def test_a_safetensors_file_loads_as_weights(tmp_path: Path) -> None:
    model = _planted()
    with torch.no_grad():
        model.hidden.bias.fill_(1.0)  # act2 alive in these weights
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    code, out, err = run("scan", f"{T}/planted.py", "--weights", str(path), "--format", "json")
    assert code == 0, err
    sites = {s["name"]: s for s in json.loads(out)["sites"]}
    assert sites["act2"]["dead_units"] == []  # the file's weights, not the target's own


def _bert_config(**extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_act="relu",
        max_position_embeddings=16,
        **extra,
    )


def _same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("shard", [None, "20KB"], ids=["one-file", "sharded"])
def test_a_save_pretrained_folder_loads_as_weights(tmp_path: Path, shard: str | None) -> None:
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    saved = BertForSequenceClassification(_bert_config())
    kwargs = {"max_shard_size": shard} if shard else {}
    saved.save_pretrained(tmp_path / "ckpt", **kwargs)
    if shard:
        assert (tmp_path / "ckpt" / "model.safetensors.index.json").is_file()
    torch.manual_seed(1)
    fresh = BertForSequenceClassification(_bert_config())
    assert not _same_parameters(saved, fresh)
    load_weights(fresh, tmp_path / "ckpt")
    assert _same_parameters(saved, fresh)


def test_tied_weights_absent_from_the_file_are_not_missing(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=30, n_positions=16)
    torch.manual_seed(0)
    saved = GPT2LMHeadModel(config)
    saved.save_pretrained(tmp_path / "gpt")
    fresh = GPT2LMHeadModel(config)
    load_weights(fresh, tmp_path / "gpt")
    assert torch.equal(fresh.lm_head.weight, saved.transformer.wte.weight)


class Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())


@pytest.mark.parametrize("direction", ["add-prefix", "drop-prefix"])
def test_a_base_model_prefix_is_fitted(tmp_path: Path, direction: str) -> None:
    torch.manual_seed(0)
    wrapped = Wrapper()
    source, target = (
        (wrapped.net, Wrapper()) if direction == "add-prefix" else (wrapped, Wrapper().net)
    )
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    load_weights(target, path)
    assert _same_parameters(source, target)


def test_a_folder_without_weights_names_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        InputError, match=r"a folder with no weights \(looked for model.safetensors"
    ):
        load_weights(_planted(), tmp_path / "empty")


# -- targets ------------------------------------------------------------------


def _tokenizer_folder(folder: Path) -> None:
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(45))]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)


@pytest.fixture
def bert_folder(tmp_path: Path) -> Path:
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    folder = tmp_path / "bert"
    model = BertForSequenceClassification(_bert_config())
    with torch.no_grad():  # planted: the first FFN's ReLU is dead on every input
        model.bert.encoder.layer[0].intermediate.dense.bias.fill_(-100.0)
    model.save_pretrained(folder)
    _tokenizer_folder(folder)
    return folder


def test_hf_folder_target_scans_on_random_token_ids(bert_folder: Path) -> None:
    code, out, err = run("scan", f"hf:{bert_folder}", "--format", "json", "--batches", "2")
    assert code == 0, err
    report = json.loads(out)
    assert report["samples"] == 4  # 2 batches of (2, 16): ids below the config's 50
    dead = {s["name"]: len(s["dead_units"]) for s in report["sites"]}
    assert dead["bert.encoder.layer.0.intermediate.intermediate_act_fn"] == 32
    assert "random token ids of shape (2, 16) below 50" in err


def test_hf_target_reads_a_text_file_with_its_own_tokenizer(bert_folder: Path, tmp_path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text(" ".join(f"w{i % 45}" for i in range(100)))  # 100 tokens
    code, out, err = run(
        "scan",
        f"hf:{bert_folder}",
        "--data",
        str(text),
        "--seq-len",
        "8",
        "--batch-size",
        "4",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["samples"] == 12  # 100 // 8 chunks
    assert f"all 12 chunks of 8 tokens of {text}, in batches of 4" in err


def test_hf_name_not_in_the_cache_is_one_line_naming_the_download_flag(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run("scan", "hf:nobody/no-such-model-here")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not a folder here nor in the local Hugging Face cache" in err
    assert "--allow-download" in err


def test_timm_target_with_an_image_folder_uses_timms_preprocessing(tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs", {"cat": 3, "dog": 2})
    code, out, err = run(
        "scan", "timm:resnet10t", "--data", str(folder), "--batch-size", "2", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["samples"] == 5
    assert "all 5 images" in err and "in 2 class folder(s), the model's own preprocessing" in err


def test_timm_unknown_name_suggests(tmp_path: Path) -> None:
    code, _, err = run("scan", "timm:resnet18x")
    assert code == 2 and "did you mean" in err and "resnet18" in err


def test_torchvision_weight_names_read_the_local_hub_cache(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = run("scan", "torchvision:resnet18", "--weights", "IMAGENET1K_V1")
    assert code == 2 and len(err.strip().splitlines()) == 1
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    assert f"{cache / 'resnet18-f37072fd.pth'} is missing" in err
    # A cache entry whose name carries its own hash prefix, as torchvision's do.
    torch.manual_seed(3)
    state = torchvision.models.resnet18().state_dict()
    cache.mkdir(parents=True)
    staged = cache / "staged.pth"
    torch.save(state, staged)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()[:8]
    staged.rename(cache / f"resnet18-{digest}.pth")
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.value
    monkeypatch.setattr(weights, "url", f"https://example.invalid/resnet18-{digest}.pth")
    code, _, err = run(
        "scan",
        "torchvision:resnet18",
        "--weights",
        "IMAGENET1K_V1",
        "--input-shape",
        "1,3,32,32",
        "--batches",
        "1",
        "--format",
        "json",
    )
    assert code == 0, err
    (cache / f"resnet18-{digest}.pth").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run("scan", "torchvision:resnet18", "--weights", "IMAGENET1K_V1")
    assert code == 2 and "does not match its name's hash" in err


def test_a_pickled_model_target_needs_unsafe_pickle(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), path)
    code, _, err = run("scan", str(path), "--input-shape", "4,2")
    assert code == 2 and "pass --unsafe-pickle only if you trust it" in err
    code, out, err = run(
        "scan", str(path), "--input-shape", "4,2", "--unsafe-pickle", "--format", "json"
    )
    assert code == 0, err
    assert [s["name"] for s in json.loads(out)["sites"]] == ["1"]


# -- data ---------------------------------------------------------------------


def _images(folder: Path, classes: dict[str, int] | None = None, flat: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in (classes or {}).items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(flat):
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(
            folder / f"f{i}.png"
        )
    return folder


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"classes": {"a": 2, "b": 3}}, (5, "all 5 images", "in 2 class folder(s)")),
        ({"flat": 3}, (3, "all 3 images", "")),
    ],
    ids=["class-subfolders", "flat"],
)
def test_an_image_folder_is_read_whole_and_said(tmp_path: Path, layout, expected) -> None:
    folder = _images(tmp_path / "imgs", **layout)
    data = data_batches(folder, batch_size=2, image_size=32)
    batches = list(data.batches)
    samples, part, kinds = expected
    assert data.samples == samples == sum(b.shape[0] for b in batches)
    assert [b.shape[1:] for b in batches] == [(3, 32, 32)] * len(batches)
    assert part in data.description and kinds in data.description
    assert "ImageNet-normalised" in data.description
    limited = data_batches(folder, batch_size=2, image_size=32, limit=1)
    assert limited.samples == 2 and f"the first 2 of {samples}" in limited.description


def _tensor_files(tmp_path: Path) -> dict[str, Path]:
    x = torch.arange(20.0).reshape(10, 2)
    files = {"pt": tmp_path / "x.pt", "npy": tmp_path / "x.npy", "st": tmp_path / "x.safetensors"}
    torch.save(x, files["pt"])
    np.save(files["npy"], x.numpy())
    save_file({"x": x}, str(files["st"]))
    torch.save((x, torch.zeros(10, dtype=torch.long)), tmp_path / "pair.pt")
    files["pair"] = tmp_path / "pair.pt"
    return files


@pytest.mark.parametrize("kind", ["pt", "npy", "st", "pair"])
def test_a_tensor_file_is_split_into_batches(tmp_path: Path, kind: str) -> None:
    path = _tensor_files(tmp_path)[kind]
    data = data_batches(path, batch_size=4)
    batches = list(data.batches)
    assert data.count == 3 and data.samples == 10
    first = batches[0]["x"] if kind == "st" else batches[0]
    assert torch.equal(first, torch.arange(8.0).reshape(4, 2))
    if kind == "pair":
        assert "the first of its 2 tensors: the inputs" in data.description


def test_cli_scans_a_tensor_file_and_counts_its_samples(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save(torch.randn(10, 1), path)
    code, out, err = run("scan", f"{T}/planted.py", "--data", str(path), "--batch-size", "4")
    assert code == 0, err
    assert "10 samples" in out and f"fed all 10 samples of {path}, in batches of 4" in err


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nowhere.pt", "no such file or folder"),
        ("tests/targets/planted.py", "neither an image folder nor a tensor file"),
    ],
    ids=["missing", "not-data"],
)
def test_bad_data_is_one_line(path: str, message: str) -> None:
    code, _, err = run("scan", f"{T}/planted.py", "--data", path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_random_token_ids_for_an_embedding_model(tmp_path: Path) -> None:
    model_file = tmp_path / "embed.py"
    model_file.write_text(
        "from torch import nn\n"
        "model = nn.Sequential(nn.Embedding(30, 4), nn.Linear(4, 4), nn.ReLU())\n"
    )
    code, out, err = run("scan", str(model_file), "--input-shape", "2,5", "--format", "json")
    assert code == 3 and "Long, Int" in err  # float inputs into an Embedding
    assert "--input-dtype long" in err  # the hint says how to feed token ids
    code, out, err = run(
        "scan", str(model_file), "--input-shape", "2,5", "--input-dtype", "long", "--format", "json"
    )
    assert code == 0, err
    assert "below 30" in err and len(json.loads(out)["sites"]) == 1
    code, _, err = run(
        "scan", str(model_file), "--input-shape", "2,5", "--input-dtype", "long", "--vocab", "3"
    )
    assert code == 0 and "below 3" in err


def test_scan_of_one_tensor_is_one_batch() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    report = deadcheck.scan(model, torch.randn(7, 2))
    assert report.samples == 7


def test_an_error_inside_library_code_says_so(bert_folder: Path) -> None:
    code, _, err = run("scan", f"hf:{bert_folder}", "--vocab", "1000", "--batches", "1")
    assert code == 3  # ids beyond the 50 embeddings: raised inside transformers and torch
    assert "the model's library code raised an error while forward pass on batch 0" in err
