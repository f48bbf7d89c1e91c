"""scikit-learn's handwritten digits, shared by the examples, with a one-line hint when missing."""

from __future__ import annotations

from typing import Any


def load_digits() -> Any:
    """``sklearn.datasets.load_digits()``: 1,797 real 8x8 scans shipped inside scikit-learn."""
    try:
        from sklearn.datasets import load_digits as load
    except ImportError:
        raise SystemExit('this example needs scikit-learn: pip install -e ".[examples]"') from None
    return load()
