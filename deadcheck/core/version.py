"""The version, in one place (the package root and the CLI read it)."""

__version__ = "0.1.0"
