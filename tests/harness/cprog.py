"""Build the library and compile/run C and C++ test programs against it (optionally under valgrind)."""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Sequence

from .procutil import die_with_parent

COMPILE_TIMEOUT = 300
BUILD_TIMEOUT = 1800
KILL_GRACE = 5

C_FLAGS = ("-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g")
CXX_FLAGS = ("-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g")
VALGRIND_FLAGS = ("--error-exitcode=99", "--leak-check=full",
                  "--errors-for-leak-kinds=definite,indirect",
                  "--show-leak-kinds=definite,indirect", "--track-fds=no")
VALGRIND_ERROR_EXIT = 99

_cache_dir: Path | None = None
_cache_lock = threading.Lock()
_build_lock = threading.Lock()
_built: Path | None = None


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def library_dir() -> Path:
    """Directory holding libeq1.so/.a: $EQ1_LIB_DIR, else <repo>/target/release."""
    env = os.environ.get("EQ1_LIB_DIR")
    return Path(env).resolve() if env else repo_root() / "target" / "release"


def include_dir() -> Path:
    return repo_root() / "include"


def suppressions_file() -> Path:
    return Path(__file__).resolve().parent / "valgrind.supp"


def build_library(timeout: float = BUILD_TIMEOUT) -> Path:
    """`cargo build --release` once per process (skipped when EQ1_LIB_DIR is set)."""
    global _built
    with _build_lock:
        if _built is not None:
            return _built
        if not os.environ.get("EQ1_LIB_DIR"):
            root = repo_root()
            # flock: parallel pytest workers (xdist) share one build, not N.
            lock_path = root / "target" / ".eq1-test-build.lock"
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                r = _run_bounded(["cargo", "build", "--release"], cwd=root, timeout=timeout)
            if r.returncode != 0:
                raise RuntimeError(f"cargo build --release failed ({r.returncode}):\n"
                                   f"{r.stdout[-6000:]}\n{r.stderr[-10000:]}")
        lib = library_dir()
        if not any((lib / n).exists() for n in ("libeq1.so", "libeq1.a")):
            raise RuntimeError(f"no libeq1.so or libeq1.a in {lib}")
        # The library's SONAME is libeq1.so.0: programs linked here look for that name.
        soname = lib / "libeq1.so.0"
        if (lib / "libeq1.so").exists() and not soname.exists():
            soname.symlink_to("libeq1.so")
        _built = lib
        return lib


def _session_cache() -> Path:
    global _cache_dir
    with _cache_lock:
        if _cache_dir is None:
            _cache_dir = Path(tempfile.mkdtemp(prefix="eq1-cprog-"))
            atexit.register(shutil.rmtree, _cache_dir, True)
        return _cache_dir


def _cache_key(cmd_head: Sequence[str], sources: Sequence[Path],
               extra_flags: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update("\0".join(list(cmd_head) + list(extra_flags)).encode())
    # Headers count too: a changed eq1.h must force a rebuild of every program.
    headers = sorted(include_dir().rglob("*.h")) if include_dir().exists() else []
    for p in list(sources) + headers:
        st = p.stat()
        h.update(f"{p}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
    return h.hexdigest()[:20]


def _compile(compiler: str, std_flags: Sequence[str], sources: Iterable, out,
             extra_flags: Sequence[str]) -> Path:
    srcs = [Path(s).resolve() for s in sources]
    libdir = library_dir()
    head = [compiler, *std_flags, "-I", str(include_dir())]
    key = _cache_key(head + [str(libdir)], srcs, extra_flags)
    cached = _session_cache() / f"{srcs[0].stem}-{key}"
    if not cached.exists():
        cmd = [*head, "-o", str(cached), *map(str, srcs), "-L", str(libdir), "-leq1",
               "-lpthread", f"-Wl,-rpath,{libdir}", *extra_flags]
        r = _run_bounded(cmd, timeout=COMPILE_TIMEOUT)
        if r.returncode != 0:
            cached.unlink(missing_ok=True)
            raise RuntimeError(f"compile failed ({r.returncode}): {' '.join(cmd)}\n"
                               f"{r.stdout}{r.stderr}")
    if out is None:
        return cached
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cached, out)
    return out


def compile_c(sources: Sequence, out=None, extra_flags: Sequence[str] = ()) -> Path:
    """Compile C11 sources against libeq1; returns the executable (cached per session).

    extra_flags go last, so they may hold libraries (-lm) as well as -D options.
    With `out=None` the cached executable itself is returned.
    """
    return _compile(os.environ.get("CC", "cc"), C_FLAGS, sources, out, extra_flags)


def compile_cxx(sources: Sequence, out=None, extra_flags: Sequence[str] = ()) -> Path:
    """Like compile_c, with c++ -std=c++17."""
    return _compile(os.environ.get("CXX", "c++"), CXX_FLAGS, sources, out, extra_flags)


def compile_plugin(source, out, defines: Sequence[str] = ()) -> Path:
    """A C11 source as a shared object (a protocol plugin): needs eq1.h, not libeq1.
    `defines` are NAME or NAME=VALUE, as for -D."""
    cmd = [os.environ.get("CC", "cc"), *C_FLAGS, "-fPIC", "-shared", "-I", str(include_dir()),
           *(f"-D{d}" for d in defines), "-o", str(out), str(source)]
    r = _run_bounded(cmd, timeout=COMPILE_TIMEOUT)
    if r.returncode != 0:
        raise RuntimeError(f"compile failed ({r.returncode}): {' '.join(cmd)}\n"
                           f"{r.stdout}{r.stderr}")
    return Path(out)


class ProgramTimeout(subprocess.TimeoutExpired):
    """TimeoutExpired whose message shows what the program printed before it hung."""

    def __str__(self) -> str:
        return (f"{super().__str__()}\n--- stdout ---\n{(self.stdout or '')[-4000:]}"
                f"\n--- stderr ---\n{(self.stderr or '')[-4000:]}")


def _run_bounded(cmd: Sequence[str], *, timeout: float, env=None, cwd=None,
                 input: str | None = None) -> subprocess.CompletedProcess:
    # Own process group so a timeout kills the program and anything it spawned.
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            text=True, errors="replace", env=env, cwd=cwd,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise ProgramTimeout(list(cmd), timeout, out, err) from None
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def valgrind_command() -> list[str]:
    cmd = ["valgrind", *VALGRIND_FLAGS]
    if suppressions_file().exists():
        cmd.append(f"--suppressions={suppressions_file()}")
    return cmd


def run(prog, args: Sequence = (), env: dict | None = None, timeout: float = 120,
        valgrind: bool = False, input: str | None = None, cwd=None
        ) -> subprocess.CompletedProcess:
    """Run a program with text output; `env` entries are added to os.environ.

    Raises ProgramTimeout (after killing the process group) if it runs too long.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    cmd = [str(prog), *map(str, args)]
    if valgrind:
        cmd = valgrind_command() + cmd
    return _run_bounded(cmd, timeout=timeout, env=full_env, cwd=cwd, input=input)


def assert_all_passed(result: subprocess.CompletedProcess) -> None:
    """Fail unless a test program (tests/c/test_util.h's checks) exited 0 with
    "SUMMARY: <n> checks, 0 failed"."""
    assert result.returncode == 0 and "SUMMARY:" in result.stdout and \
        ", 0 failed" in result.stdout, (
            f"exit {result.returncode}\n{result.stdout[-8000:]}\n{result.stderr[-6000:]}")


def assert_valgrind_clean(result: subprocess.CompletedProcess) -> None:
    """Fail unless a valgrind run reported no errors and no definite/indirect leaks."""
    assert result.returncode != VALGRIND_ERROR_EXIT and \
        "ERROR SUMMARY: 0 errors" in result.stderr, (
            f"valgrind reported problems (exit {result.returncode}):\n{result.stderr[-12000:]}")
