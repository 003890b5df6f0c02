"""Packaging and loading: where communicator looks for libeq1, the error when it finds none,
and `pip install ./bindings/python` into a fresh virtual environment."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from communicator_testutil import BINDINGS

IGNORE = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "libeq1.so*")


def _copy_package(dest: Path) -> Path:
    """A copy of the communicator package alone (no library beside it) under dest."""
    shutil.copytree(BINDINGS / "communicator", dest / "communicator", ignore=IGNORE)
    return dest


def _run(code: str, env_extra: dict[str, str], pythonpath: Path | None,
         python: str = sys.executable, cwd: Path | None = None,
         args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EQ1_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(env_extra)
    return subprocess.run([python, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.skipif(bool(ctypes.util.find_library("eq1")),
                    reason="a system-wide libeq1 is installed: the loader would find it")
def test_missing_library_error_lists_every_path_tried(tmp_path):
    pkg = _copy_package(tmp_path / "pkg")
    missing = tmp_path / "nowhere" / "libeq1.so"
    r = _run("""
        import communicator
        from communicator import LibraryNotFoundError, MQTTProtocol
        try:
            MQTTProtocol()
        except LibraryNotFoundError as e:
            assert isinstance(e, OSError)
            print(e)
        else:
            raise SystemExit("no error")
        """, {"EQ1_LIBRARY": str(missing)}, pkg, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "libeq1 could not be loaded; tried:" in out
    assert f"{missing}: no such file" in out
    beside = pkg / "communicator"
    assert f"{beside / 'libeq1.so'}: no such file" in out
    assert f"{beside / 'libeq1.so.0'}: no such file" in out
    assert "find_library('eq1'): not found" in out
    assert "libeq1.so.0: " in out.replace(str(beside / "libeq1.so.0"), "")
    assert "EQ1_LIBRARY" in out and "LIBRARY_NOT_FOUND" in out


def test_import_does_not_need_the_library(tmp_path):
    pkg = _copy_package(tmp_path / "pkg")
    r = _run("import communicator; from communicator.protocols.mqtt.mqtt_protocol import "
             "MQTTConfig; MQTTConfig(port=1884); print('ok')",
             {"EQ1_LIBRARY": str(tmp_path / "missing.so")}, pkg, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_a_library_that_is_not_libeq1_is_refused(tmp_path):
    pkg = _copy_package(tmp_path / "pkg")
    libm = ctypes.util.find_library("m")
    if not libm:
        pytest.skip("no libm to stand in for a wrong library")
    r = _run("""
        from communicator import _native
        try:
            _native.load()
        except _native.LibraryNotFoundError as e:
            print(e)
        """, {"EQ1_LIBRARY": libm}, pkg, cwd=tmp_path)
    # The missing functions are listed in the header's order; any of them names the problem.
    refusal = f"{libm} is not a usable libeq1: missing function(s) "
    assert refusal in r.stdout, r.stdout + r.stderr
    missing = r.stdout.split(refusal, 1)[1].splitlines()[0].split(", ")
    assert "eq1_mqtt_client_new" in missing, r.stdout


def test_library_beside_the_package_is_found(tmp_path, eq1_library):
    pkg = _copy_package(tmp_path / "pkg")
    shutil.copy(eq1_library, pkg / "communicator" / "libeq1.so")
    r = _run("import communicator; print(communicator.library_path()); "
             "print(communicator.library_version())", {}, pkg, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == [str(pkg / "communicator" / "libeq1.so"), "0.1.0"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pip_install_into_a_venv(tmp_path, eq1_library, broker):
    source = tmp_path / "src"
    shutil.copytree(BINDINGS, source, ignore=IGNORE)  # pip builds in-tree: keep ours clean
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)
    python = str(venv / "bin" / "python")
    r = subprocess.run([python, "-m", "pip", "install", "--no-input", "--quiet", str(source)],
                       capture_output=True, text=True, timeout=800)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run("""
        import sys
        from pathlib import Path
        import communicator
        from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig
        here = Path(communicator.__file__).resolve().parent
        assert str(here).startswith(sys.prefix), (here, sys.prefix)
        assert (here / "py.typed").is_file()
        got = []
        with MQTTProtocol(MQTTConfig(broker_address="127.0.0.1", port=int(sys.argv[1]))) as m:
            m.subscribe("venv/t", lambda topic, payload: got.append(payload))
            m.publish("venv/t", "installed", wait=True)
        print(communicator.library_version(), communicator.library_path(), got)
        """, {"EQ1_LIBRARY": str(eq1_library)}, None, python=python, cwd=tmp_path,
        args=(str(broker.port),))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["0.1.0", str(eq1_library), "[b'installed']"]
