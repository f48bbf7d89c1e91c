"""The Triton counting kernel is exact: checked on the CPU under Triton's interpreter.

The check runs in a process of its own (tests/gpu_kernel_property.py), since
``TRITON_INTERPRET`` must be set before Triton compiles anything. On a
machine with a GPU, ``benchmarks/gpu.py`` runs the CUDA tests and times it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_the_triton_kernel_counts_what_pure_torch_and_brute_force_count() -> None:
    pytest.importorskip("triton")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gpu_kernel_property.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "EXAMPLES": "100"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_recording_counts_with_the_triton_kernel_as_with_pure_torch() -> None:
    import deadcheck
    from deadcheck.recording import gpu_kernel

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU6()).cuda()
    x = torch.randn(4, 3, 16, 16, device="cuda") * 3
    with_kernel = deadcheck.scan(model, [x])
    assert gpu_kernel.available()
    os.environ["DEADCHECK_KERNEL"] = "torch"
    try:
        pure = deadcheck.scan(model, [x])
    finally:
        del os.environ["DEADCHECK_KERNEL"]
    # counts exactly; the |output| sums add atomically, in another order than torch's
    for a, b in zip(with_kernel.sites, pure.sites, strict=True):
        assert a.figures["dead_units"] == b.figures["dead_units"]
        assert a.figures["zero_fraction"] == b.figures["zero_fraction"]
        assert a.figures["max_input"] == b.figures["max_input"]
        assert torch.allclose(
            torch.tensor(a.figures["mean_abs"]), torch.tensor(b.figures["mean_abs"]), rtol=1e-5
        )
