"""Builds deadcheck's optional counting kernel; everything else is in pyproject.toml.

The kernel is optional: where no C compiler is found the install goes on, and
deadcheck counts with pure torch, with identical counts (deadcheck/kernel.py).
"""

import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    flags, link = ["/O2", "/openmp"], []
elif sys.platform == "darwin":  # Apple's clang has no OpenMP: the kernel runs on one thread
    flags, link = ["-O3", "-fopenmp-simd", "-fno-trapping-math"], []
else:
    flags, link = ["-O3", "-fopenmp", "-fno-trapping-math"], ["-fopenmp"]

setup(
    ext_modules=[
        Extension(
            "deadcheck.recording._countkernel",
            sources=["deadcheck/recording/_countkernel.c"],
            extra_compile_args=flags,
            extra_link_args=link,
            optional=True,
        )
    ]
)
