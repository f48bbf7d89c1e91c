"""Build the wheel and the sdist, and check what each must hold.

The wheel must hold the compiled counting kernel (a C compiler is on CI's
machines) and ``py.typed``; the sdist the kernel's C source and ``setup.py``,
so an install from it can build the kernel. Run by ``.ci/run``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "build", "--outdir", out, str(ROOT)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wheels = list(Path(out).glob("torch_deadcheck-*.whl"))
        sdists = list(Path(out).glob("torch_deadcheck-*.tar.gz"))
        assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in Path(out).iterdir())
        names = zipfile.ZipFile(wheels[0]).namelist()
        kernel = [n for n in names if n.startswith("deadcheck/recording/_countkernel")]
        assert any(n.endswith((".so", ".pyd")) for n in kernel), f"no compiled kernel: {kernel}"
        assert "deadcheck/py.typed" in names, "no py.typed in the wheel"
        assert not any(n.startswith(("tests/", "examples/")) for n in names), "tests in the wheel"
        with tarfile.open(sdists[0]) as sdist:
            members = [m.split("/", 1)[1] for m in sdist.getnames() if "/" in m]
        for needed in ("deadcheck/recording/_countkernel.c", "setup.py", "pyproject.toml"):
            assert needed in members, f"the sdist lacks {needed}"
        print(f"deadcheck CI: built {wheels[0].name} (kernel {kernel[-1]}) and {sdists[0].name}")


if __name__ == "__main__":
    main()
