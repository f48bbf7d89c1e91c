"""The counting kernel under UndefinedBehaviorSanitizer and AddressSanitizer (issue 22).

The kernel is built again with ``-fsanitize=address,undefined`` and the kernel
tests run against that build in a fresh process; any report of undefined
behaviour or a bad memory access fails. Where the compiler or its sanitizer
runtimes are missing, the test is skipped and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _runtime(name: str) -> str | None:
    """The path of a sanitizer runtime the compiler ships, or None."""
    try:
        found = subprocess.run(
            ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return found if os.path.isabs(found) and os.path.exists(found) else None


def test_the_kernel_tests_pass_under_sanitizers(tmp_path: Path) -> None:
    if shutil.which("gcc") is None or sys.platform != "linux":
        pytest.skip("no gcc on Linux here: the sanitizer build needs one")
    asan = _runtime("libasan.so")
    if asan is None or _runtime("libubsan.so") is None:
        pytest.skip("gcc's sanitizer runtimes (libasan, libubsan) are not installed")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    built = tmp_path / f"_countkernel{suffix}"
    compile_ = subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fopenmp",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer",
            f"-I{sysconfig.get_paths()['include']}",
            str(ROOT / "deadcheck" / "recording" / "_countkernel.c"),
            "-o",
            str(built),
        ],
        capture_output=True,
        text=True,
    )
    if compile_.returncode != 0:
        pytest.skip(f"the sanitizer build did not compile here: {compile_.stderr[-300:]}")
    env = {
        **os.environ,
        "DEADCHECK_KERNEL_PATH": str(built),
        "LD_PRELOAD": asan,
        # Python and torch keep memory for the process's life: leaks are not the question.
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    env.pop("DEADCHECK_KERNEL", None)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import deadcheck.recording.kernel as k, sys; print(k._native.__file__, k.status()); "
            "import pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
            "'tests/test_kernel.py', '-k', 'not recording_with_and_without']))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    if "ASan runtime does not come first" in output or "interceptors" in output[:2000]:
        pytest.skip(f"AddressSanitizer cannot be preloaded here: {output[:300]}")
    assert str(built) in run.stdout, output[-2000:]
    assert "runtime error" not in output and "AddressSanitizer" not in output, output[-3000:]
    assert run.returncode == 0, output[-3000:]
    # The sanitizers are live: the raw kernel handed misaligned data is reported, while
    # count_into declines that tensor and pure torch counts it.
    probe = (
        "import torch, deadcheck.recording.kernel as k\n"
        "x = torch.frombuffer(bytearray(28), dtype=torch.float32, offset=1, count=6).view(2, 3)\n"
        "w = torch.zeros(3)\n"
        "assert not k.count_into(x, 1, w, None, None)\n"
        "print('declined', flush=True)\n"
        "k._native.count(x.data_ptr(), 4, 2, 3, 1, w.data_ptr(), 0, 0, 2139095040, False, 1)\n"
    )
    raw = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert "declined" in raw.stdout, raw.stderr[-2000:]
    assert "misaligned address" in raw.stderr, raw.stderr[-2000:]
