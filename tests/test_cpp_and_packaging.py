"""The C++ wrapper (bindings/cpp/eq1.hpp) against a real broker, and the packaging: the CMake
build with its CTest suite, and an installed tree that still works after being moved, found by
find_package(eq1) and by pkg-config."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from harness import cprog

REPO = cprog.repo_root()
CPP_INCLUDE = ("-I", str(REPO / "bindings" / "cpp"))
CMAKE_TIMEOUT = 1800  # the CMake build runs cargo, which may have real work to do
STEP_TIMEOUT = 300


def cargo_version() -> str:
    text = (REPO / "Cargo.toml").read_text()
    match = re.search(r'^version\s*=\s*"(\d+\.\d+\.\d+)', text, re.MULTILINE)
    assert match, "no version in Cargo.toml"
    return match.group(1)


def run_ok(cmd, *, timeout=STEP_TIMEOUT, env=None, cwd=None):
    """Run a tool (bounded, process group killed on timeout); fail with its output."""
    r = cprog.run(cmd[0], cmd[1:], env=env, timeout=timeout, cwd=cwd)
    assert r.returncode == 0, (f"{' '.join(map(str, cmd))} exited {r.returncode}\n"
                               f"--- stdout ---\n{r.stdout[-8000:]}\n--- stderr ---\n{r.stderr[-8000:]}")
    return r


def compile_cpp(path: str) -> Path:
    return cprog.compile_cxx([REPO / path], extra_flags=CPP_INCLUDE)


# ---------------------------------------------------------------- the C++ wrapper

def test_cpp_example_receives_its_own_message(built_library, broker):
    exe = compile_cpp("bindings/cpp/example.cpp")
    r = cprog.run(exe, [broker.host, broker.port], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Received: [test/topic] Hello MQTT!" in r.stdout
    assert "Published (token " in r.stdout
    assert r.stdout.rstrip().endswith("Disconnected")


def test_cpp_wrapper_round_trips_moves_and_exception_families(built_library, broker):
    exe = compile_cpp("tests/cpp/test_cpp_wrapper.cpp")
    r = cprog.run(exe, [broker.host, broker.port], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = re.search(r"^SUMMARY: (\d+) checks, (\d+) failed$", r.stdout, re.MULTILINE)
    assert summary and summary.group(2) == "0" and int(summary.group(1)) > 50, r.stdout
    for check in ("QoS 0 round trip arrives", "QoS 1 round trip arrives",
                  "QoS 2 round trip arrives", "publish to a/# throws ValidationError",
                  "connect to a closed port throws ConnectionError",
                  "publish at QoS 3 throws ValidationError"):
        assert f"ok   - {check}" in r.stdout, r.stdout


@pytest.mark.valgrind
@pytest.mark.timeout(600)
def test_cpp_wrapper_is_clean_under_valgrind(built_library, broker):
    exe = compile_cpp("tests/cpp/test_cpp_wrapper.cpp")
    r = cprog.run(exe, [broker.host, broker.port], timeout=480, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr[-8000:]
    assert "SUMMARY:" in r.stdout and ", 0 failed" in r.stdout, r.stdout
    cprog.assert_valgrind_clean(r)


def test_cpp_header_is_self_contained_and_strict(built_library, tmp_path):
    # Included twice, first thing in the unit, under extra warnings a user may turn on.
    src = tmp_path / "twice.cpp"
    src.write_text('#include "eq1.hpp"\n#include "eq1.hpp"\n'
                   "int main() { return eq1::version_matches() ? 0 : 1; }\n")
    exe = cprog.compile_cxx([src], extra_flags=(*CPP_INCLUDE, "-Wshadow", "-Wconversion",
                                                "-Wold-style-cast", "-Wnon-virtual-dtor"))
    assert cprog.run(exe, timeout=30).returncode == 0


# ---------------------------------------------------------------- CMake build and CTest

@pytest.fixture(scope="module")
def cmake_build(built_library, tmp_path_factory) -> Path:
    """The CMake project configured and built in a temp dir, reusing the library the session
    built (the repo's cargo target dir, or EQ1_LIB_DIR when the suite runs on a prebuilt one)."""
    build = tmp_path_factory.mktemp("cmake-build")
    if os.environ.get("EQ1_LIB_DIR"):
        reuse = f"-DEQ1_PREBUILT_LIB_DIR={cprog.library_dir()}"
    else:
        reuse = f"-DEQ1_CARGO_TARGET_DIR={REPO / 'target'}"
    run_ok(["cmake", "-S", REPO, "-B", build, reuse, "-DCMAKE_BUILD_TYPE=Debug"])
    run_ok(["cmake", "--build", build, "-j", str(min(8, os.cpu_count() or 2))],
           timeout=CMAKE_TIMEOUT)
    return build


@pytest.mark.timeout(900)
def test_ctest_runs_every_program_against_its_own_broker(cmake_build):
    listed = run_ok(["ctest", "-N"], cwd=cmake_build).stdout
    for name in ("eq1.broker.available", "example.c.quickstart", "example.cpp",
                 "cpp.test_cpp_wrapper", "header.c.version.static", "header.cpp.version.shared"):
        assert f": {name}\n" in listed, listed
    c_tests = sorted(p.stem for p in (REPO / "tests" / "c").glob("test_*.c"))
    for name in c_tests:
        assert f": c.{name}\n" in listed, listed
    r = run_ok(["ctest", "--output-on-failure", "-j", "4", "--timeout", "600"],
               cwd=cmake_build, timeout=800)
    assert "100% tests passed" in r.stdout, r.stdout


def test_build_tree_stages_the_versioned_library(cmake_build):
    lib = cmake_build / "lib"
    version = cargo_version()
    assert (lib / f"libeq1.so.{version}").is_file()
    assert not (lib / f"libeq1.so.{version}").is_symlink()
    assert os.readlink(lib / "libeq1.so.0") == f"libeq1.so.{version}"
    assert os.readlink(lib / "libeq1.so") == "libeq1.so.0"
    assert (lib / "libeq1.a").is_file()


# ---------------------------------------------------------------- install, move, consume

@pytest.fixture(scope="module")
def installed(cmake_build, tmp_path_factory) -> dict:
    """`cmake --install` into a temp prefix, which is then MOVED elsewhere: consumers only
    ever see the moved tree, so anything that remembered a path breaks them."""
    root = tmp_path_factory.mktemp("install")
    original = root / "first-prefix"
    run_ok(["cmake", "--install", cmake_build, "--prefix", original])
    moved = root / "elsewhere" / "moved-prefix"
    moved.parent.mkdir()
    shutil.move(str(original), str(moved))
    assert not original.exists()
    return {"prefix": moved, "original": original, "build": cmake_build}


def test_install_layout(installed):
    p = installed["prefix"]
    version = cargo_version()
    for f in (f"lib/libeq1.so.{version}", "lib/libeq1.a", "include/eq1.h", "include/eq1.hpp",
              "lib/cmake/eq1/eq1Config.cmake", "lib/cmake/eq1/eq1ConfigVersion.cmake",
              "lib/pkgconfig/eq1.pc"):
        assert (p / f).is_file(), f"missing {f}"
    assert os.readlink(p / "lib/libeq1.so.0") == f"libeq1.so.{version}"
    assert os.readlink(p / "lib/libeq1.so") == "libeq1.so.0"
    assert os.access(p / f"lib/libeq1.so.{version}", os.X_OK)
    assert f'PACKAGE_VERSION "{version}"' in (p / "lib/cmake/eq1/eq1ConfigVersion.cmake").read_text()
    assert f"Version: {version}\n" in (p / "lib/pkgconfig/eq1.pc").read_text()


def test_installed_package_files_name_no_absolute_path(installed):
    p = installed["prefix"]
    forbidden = {str(installed["build"]), str(installed["original"]), str(p), str(REPO),
                 str(installed["build"].resolve()), str(REPO.resolve())}
    text_files = [p / "lib/cmake/eq1/eq1Config.cmake", p / "lib/cmake/eq1/eq1ConfigVersion.cmake",
                  p / "lib/pkgconfig/eq1.pc", p / "include/eq1.h", p / "include/eq1.hpp"]
    for f in text_files:
        text = f.read_text()
        for path in forbidden:
            assert path not in text, f"{f} names {path}"
    config = (p / "lib/cmake/eq1/eq1Config.cmake").read_text()
    assert 'get_filename_component(_eq1_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)' \
        in config
    pc = (p / "lib/pkgconfig/eq1.pc").read_text()
    assert "prefix=${pcfiledir}/../..\n" in pc
    # No path-valued pkg-config variable starts at the file system root.
    assert not re.search(r"^\w+=/", pc, re.MULTILINE), pc


@pytest.mark.timeout(600)
def test_find_package_consumer_builds_and_round_trips_from_moved_prefix(installed, broker,
                                                                        tmp_path):
    build = tmp_path / "consumer"
    run_ok(["cmake", "-S", REPO / "tests/consumers/find_package", "-B", build,
            f"-DCMAKE_PREFIX_PATH={installed['prefix']}"])
    cache = (build / "CMakeCache.txt").read_text()
    assert f"eq1_DIR:PATH={installed['prefix']}/lib/cmake/eq1" in cache
    run_ok(["cmake", "--build", build])
    for program in ("consumer", "consumer_static"):
        r = cprog.run(build / program, [broker.host, broker.port], timeout=60)
        assert r.returncode == 0, f"{program}: {r.stdout}{r.stderr}"
        assert "round trip OK" in r.stdout


def test_find_package_refuses_an_incompatible_version(installed, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    major, minor, _ = (int(x) for x in cargo_version().split("."))
    wanted = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}.0"
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(wants_other C)\n"
        f"find_package(eq1 {wanted} REQUIRED)\n")
    r = cprog.run("cmake", ["-S", src, "-B", tmp_path / "b",
                            f"-DCMAKE_PREFIX_PATH={installed['prefix']}"], timeout=STEP_TIMEOUT)
    assert r.returncode != 0 and "eq1" in r.stderr, r.stdout + r.stderr


@pytest.mark.timeout(600)
def test_pkg_config_consumer_builds_and_round_trips_from_moved_prefix(installed, broker,
                                                                      tmp_path):
    env = {"PKG_CONFIG_PATH": installed["prefix"] / "lib" / "pkgconfig"}
    flags = run_ok(["pkg-config", "--cflags", "--libs", "eq1"], env=env).stdout
    assert str(installed["prefix"]) in flags and "-leq1" in flags, flags
    assert str(installed["original"]) not in flags
    version = run_ok(["pkg-config", "--modversion", "eq1"], env=env).stdout.strip()
    assert version == cargo_version()

    work = tmp_path / "pkg_config"
    shutil.copytree(REPO / "tests/consumers/pkg_config", work)
    (work / "consumer").unlink(missing_ok=True)
    run_ok(["make", "-C", work], env=env)
    r = cprog.run(work / "consumer", [broker.host, broker.port], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "round trip OK" in r.stdout
