"""Modbus TCP and RTU over libeq1."""

from communicator.protocols.modbus.modbus_protocol import ModbusConfig, ModbusProtocol, ModbusStats

__all__ = ["ModbusConfig", "ModbusProtocol", "ModbusStats"]
