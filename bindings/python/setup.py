"""Builds libeq1 with cargo and bundles it in the package, so that
`pip install ./bindings/python` (or a wheel built from it) works without $EQ1_LIBRARY.

The library is a plain C-ABI cdylib loaded through ctypes, not a Python extension module: it
does not link libpython, so the wheel is tagged py3-none-<platform> (one wheel serves every
Python 3 on that platform) and the file is named libeq1.so, where the loader looks first after
$EQ1_LIBRARY. Everything else about the package lives in pyproject.toml.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

HERE = Path(__file__).resolve().parent
# The crate is the repository root; $EQ1_CARGO_MANIFEST points elsewhere (a source copy).
MANIFEST = Path(os.environ.get("EQ1_CARGO_MANIFEST", HERE.parent.parent / "Cargo.toml"))
if not MANIFEST.is_file():
    raise SystemExit(f"libeq1's Cargo.toml not found at {MANIFEST}: build the package from a "
                     "checkout of the repository, or set EQ1_CARGO_MANIFEST")


class build_libeq1(build_rust):
    """setuptools-rust names a no-binding library like an extension module
    (libeq1.cpython-311-x86_64-linux-gnu.so); ours keeps its C library name."""

    def get_dylib_ext_path(self, ext: RustExtension, target_fname: str) -> str:
        path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(path), "libeq1.so")


class bdist_wheel_any_python(bdist_wheel):
    """The bundled library does not depend on the Python version or ABI."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    rust_extensions=[
        RustExtension(
            "communicator.libeq1",
            path=str(MANIFEST),
            binding=Binding.NoBinding,
            # Debug info stays in the repository's build; the wheel keeps the symbols that
            # name frames in a backtrace.
            strip=Strip.Debug,
        )
    ],
    cmdclass={"build_rust": build_libeq1, "bdist_wheel": bdist_wheel_any_python},
    zip_safe=False,
)
