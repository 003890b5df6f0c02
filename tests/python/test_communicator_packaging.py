"""Packaging and loading: where communicator looks for libeq1, the error when it finds none,
and `pip install ./bindings/python` / a wheel built from it into fresh virtual environments:
the build compiles libeq1 with cargo and bundles it, so nothing else is needed to connect."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from communicator_testutil import BINDINGS, PACKAGE_IGNORE, REPO, copy_package_source, pip
from harness.broker import TEST_PASSWORD, TEST_USER

IGNORE = PACKAGE_IGNORE


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


@pytest.fixture(scope="module")
def package_source(tmp_path_factory) -> Path:
    """A copy of what the package build needs (see copy_package_source). One copy for the
    module: the second build finds cargo's artefacts of the first up to date."""
    return copy_package_source(tmp_path_factory.mktemp("source"))


def _fresh_venv(path: Path) -> str:
    """A virtual environment without the system's site-packages: nothing of ours leaks in."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return str(path / "bin" / "python")


def _run_example(python: str, name: str, env_extra: dict[str, str],
                 cwd: Path) -> subprocess.CompletedProcess:
    """Runs bindings/python/examples/<name> with the venv's interpreter and no $EQ1_LIBRARY."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("EQ1_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run([python, str(BINDINGS / "examples" / name)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pip_install_builds_the_library_and_runs_the_design_examples(
        tmp_path, package_source, broker, tls_broker, pki):
    package = package_source
    python = _fresh_venv(tmp_path / "venv")
    pip(python, "install", "--quiet", str(package))

    # The installed package carries its own libeq1 and loads it without $EQ1_LIBRARY.
    r = _run("""
        import sys
        from pathlib import Path
        import communicator
        here = Path(communicator.__file__).resolve().parent
        assert str(here).startswith(sys.prefix), (here, sys.prefix)
        assert (here / "py.typed").is_file()
        print(communicator.library_path())
        print(communicator.library_version())
        """, {}, None, python=python, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    site = Path(r.stdout.split()[0]).parent
    assert r.stdout.split() == [str(site / "libeq1.so"), "0.1.0"]
    assert str(site).startswith(str(tmp_path / "venv"))

    # The design's two examples, unchanged but for where the brokers are.
    quick = _run_example(python, "quick_start.py", {
        "EQ1_EXAMPLE_HOST": broker.host, "EQ1_EXAMPLE_PORT": str(broker.port)}, tmp_path)
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert quick.stdout == "Received: [test/topic] Hello MQTT!\n"

    secure = _run_example(python, "secure_connection.py", {
        "EQ1_EXAMPLE_HOST": "localhost", "EQ1_EXAMPLE_TLS_PORT": str(tls_broker.port),
        "EQ1_EXAMPLE_CA": str(pki.ca_crt), "EQ1_EXAMPLE_USER": TEST_USER,
        "EQ1_EXAMPLE_PASSWORD": TEST_PASSWORD}, tmp_path)
    assert secure.returncode == 0, secure.stdout + secure.stderr
    assert secure.stdout == "published the retained status 'online'\n"
    # What the example published is on the broker: a late subscriber gets the retained status.
    r = _run("""
        import sys
        import time
        from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig
        got = []
        config = MQTTConfig(broker_address="localhost", port=int(sys.argv[1]),
                            username=sys.argv[2], password=sys.argv[3], ca_certs=sys.argv[4])
        with MQTTProtocol(config) as m:
            m.subscribe("device/status", lambda topic, payload: got.append(payload))
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
        print(got)
        """, {}, None, python=python, cwd=tmp_path,
        args=(str(tls_broker.port), TEST_USER, TEST_PASSWORD, str(pki.ca_crt)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["[b'online']"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_wheel_bundles_the_library_and_installs_into_a_fresh_venv(
        tmp_path, communicator_wheel, broker):
    built = sorted(communicator_wheel.parent.glob("*.whl"))
    # One wheel for every Python 3 on this platform: the library does not link libpython.
    assert [w.name for w in built] == [f"eq1_communicator-0.1.0-py3-none-{_platform_tag()}.whl"]
    with zipfile.ZipFile(built[0]) as wheel:
        names = wheel.namelist()
        assert "communicator/libeq1.so" in names and "communicator/py.typed" in names
        library = wheel.read("communicator/libeq1.so")
    assert library[:4] == b"\x7fELF" and b"eq1_mqtt_client_new" in library

    python = _fresh_venv(tmp_path / "venv")
    pip(python, "install", "--quiet", "--no-index", str(built[0]))
    r = _run("""
        import sys
        import communicator
        from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig
        got = []
        with MQTTProtocol(MQTTConfig(broker_address="127.0.0.1", port=int(sys.argv[1]))) as m:
            m.subscribe("wheel/t", lambda topic, payload: got.append(payload))
            m.publish("wheel/t", "from the wheel", qos=1, wait=True)
            m.disconnect(timeout=5)
        print(communicator.library_path().startswith(sys.prefix), got)
        """, {}, None, python=python, cwd=tmp_path, args=(str(broker.port),))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["True", "[b'from", "the", "wheel']"]


def _platform_tag() -> str:
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")
