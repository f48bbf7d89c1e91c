"""Regenerate the pictures in docs/images, each by the command its entry names.

Run from the repository root: ``python docs/images/make.py [NAME ...] [--out DIR]``
(every picture when no NAME is given; ``--out`` writes elsewhere, as the test
does). The entries are listed in docs/images/README.md; a test checks that
every picture there has one and that the quick ones run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _deadcheck(*args: str) -> list[str]:
    return [sys.executable, "-c", "from deadcheck.cli import main; main()", *args]


def _run(command: list[str], **env: str) -> None:
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, **env})


def dying_mlp(out: Path) -> None:
    _run(_deadcheck("scan", "examples/dying_mlp.py", "--plot", str(out), "--force", "-q"))


def resnet50(out: Path) -> None:
    _run(_deadcheck("scan", "torchvision:resnet50", "--plot", str(out), "--force", "-q"))


def continual_digits(out: Path) -> None:
    _run([sys.executable, "examples/continual_digits.py", str(out)])


def _training_events(folder: Path) -> Path:
    _run([sys.executable, "examples/training_monitor.py", str(folder)])
    return folder


def _training_pictures(out: Path, which: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory() as tmp:
        events = EventAccumulator(str(_training_events(Path(tmp))), size_guidance={"images": 0})
        events.Reload()
        if which == "dead_share":
            fig, ax = plt.subplots(figsize=(7, 3.2))
            for tag in sorted(t for t in events.Tags()["scalars"] if "dead_fraction/" in t):
                points = events.Scalars(tag)
                ax.plot([p.step for p in points], [p.value for p in points], label=tag[23:])
            ax.axvline(60, color="grey", linestyle=":", label="learning rate x10")
            ax.set(xlabel="step", ylabel="dead share", ylim=(-0.02, 1.02))
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(out, dpi=110)
            plt.close(fig)
            return
        image = events.Images("deadcheck/zero_fraction_heatmap")[-1]
        import io

        from PIL import Image

        picture = Image.open(io.BytesIO(image.encoded_image_string))
        scaled = picture.resize((picture.width * 8, picture.height * 8), Image.NEAREST)
        scaled.save(out)


def training_dead_share(out: Path) -> None:
    _training_pictures(out, "dead_share")


def training_heatmap(out: Path) -> None:
    _training_pictures(out, "heatmap")


def tensorboard(out: Path) -> None:
    if out != ROOT / "docs" / "images" / "tensorboard.png":
        raise SystemExit("tensorboard.png is the browser test's screenshot: it writes docs/images")
    _run([sys.executable, "-m", "pytest", "-q", "tests/test_browser.py", "--update-golden"])


#: Every picture in docs/images, by name, and what makes it (docs/images/README.md lists them).
IMAGES: dict[str, Callable[[Path], None]] = {
    "dying_mlp": dying_mlp,
    "resnet50": resnet50,
    "continual_digits": continual_digits,
    "training_dead_share": training_dead_share,
    "training_heatmap": training_heatmap,
    "tensorboard": tensorboard,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(IMAGES))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in IMAGES]
    if unknown:
        parser.error(f"no picture {unknown[0]!r}; there are {', '.join(IMAGES)}")
    for name in args.names or IMAGES:
        IMAGES[name](args.out / f"{name}.png")
        print(f"wrote {args.out / name}.png")


if __name__ == "__main__":
    main()
