"""Serial lines (RS-232/485 adapters, pseudo-terminals) over libeq1."""

from communicator.protocols.serial.serial_protocol import SerialConfig, SerialProtocol, SerialStats

__all__ = ["SerialConfig", "SerialProtocol", "SerialStats"]
