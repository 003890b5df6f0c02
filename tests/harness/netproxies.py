"""Real proxy servers for the transport tests, each a private process on a free loopback port:
tinyproxy (HTTP CONNECT with BasicAuth) and microsocks (SOCKS5 with RFC 1929 user/password).
They die with the test process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .ports import free_port
from .procutil import die_with_parent

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
MICROSOCKS = shutil.which("microsocks") or "/usr/bin/microsocks"

PROXY_USER = "proxy_user"
PROXY_PASSWORD = "proxy_secret"


class ProxyStartError(RuntimeError):
    """The proxy did not come up; the message carries its output."""


class _Server:
    """A child process serving on 127.0.0.1:port; `close()` stops it."""

    host = "127.0.0.1"

    def __init__(self, args: list[str], workdir: Path, port: int, name: str):
        self.port = port
        self.name = name
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.output_path = self.dir / f"{name}.out"
        with open(self.output_path, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir,
                                         start_new_session=True, preexec_fn=die_with_parent)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProxyStartError(f"{self.name} exited with {self.proc.returncode}:\n"
                                      + self.output())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise ProxyStartError(f"{self.name} not listening on {self.port}:\n" + self.output())

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)

    def __repr__(self) -> str:
        return f"<{self.name} 127.0.0.1:{self.port}>"


class TinyProxy(_Server):
    """tinyproxy: HTTP CONNECT, with BasicAuth PROXY_USER/PROXY_PASSWORD when `auth`, and
    CONNECT allowed only to `connect_ports` (another port is refused with 403)."""

    def __init__(self, workdir: Path, connect_ports: list[int], auth: bool = True):
        port = free_port()
        self.log_path = workdir / "tinyproxy.log"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            f"LogFile \"{self.log_path}\"",
            "LogLevel Info",
            "MaxClients 50",
            "Allow 127.0.0.1",
            *[f"ConnectPort {p}" for p in connect_ports],
        ]
        if auth:
            conf.append(f"BasicAuth {PROXY_USER} {PROXY_PASSWORD}")
        conf_path = workdir / "tinyproxy.conf"
        conf_path.write_text("\n".join(conf) + "\n")
        super().__init__([TINYPROXY, "-d", "-c", str(conf_path)], workdir, port, "tinyproxy")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class MicroSocks(_Server):
    """microsocks: SOCKS5 requiring PROXY_USER/PROXY_PASSWORD (RFC 1929) when `auth`."""

    def __init__(self, workdir: Path, auth: bool = True):
        port = free_port()
        args = [MICROSOCKS, "-i", "127.0.0.1", "-p", str(port)]
        if auth:
            args += ["-u", PROXY_USER, "-P", PROXY_PASSWORD]
        super().__init__(args, workdir, port, "microsocks")

