"""A pymodbus server with a known register map, run as its own process by the Modbus tests:
``python3 -m harness.modbus_server tcp PORT`` or ``... rtu DEVICE BAUD``. Addresses 0..99 of
each table exist (others answer exception 0x02):

  coils[i] = i % 2 == 0, discrete inputs[i] = i % 3 == 0,
  holding registers[i] = 1000 + i, input registers[i] = 2000 + i.

``MAP_SIZE``, ``coil``, ``discrete``, ``holding`` and ``input_register`` give the same values
to the tests."""

from __future__ import annotations

import sys

MAP_SIZE = 100


def coil(i: int) -> bool:
    return i % 2 == 0


def discrete(i: int) -> bool:
    return i % 3 == 0


def holding(i: int) -> int:
    return 1000 + i


def input_register(i: int) -> int:
    return 2000 + i


def _context():  # type: ignore[no-untyped-def]
    from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                    ModbusSlaveContext)

    # pymodbus adds 1 to every address before it looks in a block: a block starting at 1
    # holds Modbus address 0 at index 0.
    def block(values: list) -> ModbusSequentialDataBlock:  # type: ignore[type-arg]
        return ModbusSequentialDataBlock(1, values)

    slave = ModbusSlaveContext(
        co=block([coil(i) for i in range(MAP_SIZE)]),
        di=block([discrete(i) for i in range(MAP_SIZE)]),
        hr=block([holding(i) for i in range(MAP_SIZE)]),
        ir=block([input_register(i) for i in range(MAP_SIZE)]),
    )
    return ModbusServerContext(slaves=slave, single=True)


def main(argv: list[str]) -> None:
    from pymodbus.server import StartSerialServer, StartTcpServer

    mode = argv[1]
    if mode == "tcp":
        StartTcpServer(context=_context(), address=("127.0.0.1", int(argv[2])))
    elif mode == "rtu":
        from pymodbus.framer import FramerType

        StartSerialServer(context=_context(), framer=FramerType.RTU, port=argv[2],
                          baudrate=int(argv[3]), bytesize=8, parity="N", stopbits=1,
                          timeout=0.005)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)


class ModbusServer:
    """The server above as a separate process on 127.0.0.1:<port> (tcp) or a serial device
    (rtu); ``stop`` kills it, ``start`` starts it again on the same port or device."""

    def __init__(self, mode: str = "tcp", port: int | None = None, device: str = "",
                 baud: int = 19200) -> None:
        from .ports import free_port

        self.mode = mode
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.device = device
        self.baud = baud
        self.proc = None  # type: ignore[var-annotated]
        self.start()

    def start(self) -> None:
        import os
        import subprocess
        from pathlib import Path

        from .procutil import die_with_parent

        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        args = ([str(self.port)] if self.mode == "tcp" else [self.device, str(self.baud)])
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.modbus_server", self.mode,
                                      *args], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=die_with_parent)
        if self.mode == "tcp":
            self._wait_listening()

    def _wait_listening(self, timeout: float = 30.0) -> None:
        import socket
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"pymodbus server exited: {err[-3000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pymodbus server not listening on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
