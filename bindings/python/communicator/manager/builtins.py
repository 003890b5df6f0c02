"""Factories of the protocols built into the package, for ``ProtocolManager.create``. Each is
imported only when its protocol is created, so listing them loads neither the protocol's module
nor libeq1. A factory takes the protocol's config object, or the config's fields as keywords."""

from __future__ import annotations

from typing import Any, Optional

from communicator.interfaces.protocol import BaseProtocol

#: Built-in name -> "module:attribute" of its factory (a class or a function).
BUILTINS: dict[str, str] = {
    "mqtt": "communicator.manager.builtins:mqtt",
    # Written beside this one (communicator/protocols/tcp); imported when "tcp" is created.
    "tcp": "communicator.protocols.tcp:TCPProtocol",
    "serial": "communicator.protocols.serial:SerialProtocol",
    "modbus-tcp": "communicator.manager.builtins:modbus_tcp",
    "modbus-rtu": "communicator.manager.builtins:modbus_rtu",
}


def mqtt(config: Optional[Any] = None, **fields: Any) -> BaseProtocol:
    """``MQTTProtocol(config)``, or ``MQTTProtocol(MQTTConfig(**fields))``."""
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    return MQTTProtocol(config if config is not None else MQTTConfig(**fields))


def modbus_tcp(config: Optional[Any] = None, **fields: Any) -> BaseProtocol:
    """``ModbusProtocol(config)``, or a TCP ``ModbusConfig(**fields)`` (host, port, ...)."""
    from communicator.protocols.modbus import ModbusConfig, ModbusProtocol

    return ModbusProtocol(config if config is not None else ModbusConfig(**fields))


def modbus_rtu(config: Optional[Any] = None, **fields: Any) -> BaseProtocol:
    """``ModbusProtocol(config)``, or an RTU ``ModbusConfig``: ``device`` (or
    ``serial_device``), baud, data_bits, parity, stop_bits, unit_id, ..."""
    from communicator.protocols.modbus import ModbusConfig, ModbusProtocol

    if config is None:
        if "device" in fields:
            fields["serial_device"] = fields.pop("device")
        config = ModbusConfig(**fields)
        if config.serial_device is None:
            from communicator.common.exceptions import ProtocolValidationError

            raise ProtocolValidationError("modbus-rtu needs a device (the serial line)")
    return ModbusProtocol(config)
