"""A small Modbus-to-MQTT gateway: polls holding registers of a Modbus TCP device every 100 ms
and publishes each change to MQTT as JSON, with a retained will for the gateway's own status.

    python3 modbus_gateway.py MODBUS_HOST MODBUS_PORT MQTT_HOST MQTT_PORT [ADDRESS COUNT [POLLS]]

Publishes ``gateway/registers`` = {"address": A, "values": [...]} (QoS 1, on change) and
``gateway/status`` = {"status": "online" | "offline" | "modbus-error", ...} (retained; the will
is "offline"). POLLS (default 0 = forever) stops it after that many polls.
"""

import json
import sys
import time

from communicator.common.exceptions import ProtocolError, status_name
from communicator.protocols.modbus import ModbusConfig, ModbusProtocol
from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

STATUS_TOPIC = "gateway/status"
REGISTERS_TOPIC = "gateway/registers"


def main(argv: list) -> int:
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    address = int(argv[5]) if len(argv) > 5 else 0
    count = int(argv[6]) if len(argv) > 6 else 10
    polls = int(argv[7]) if len(argv) > 7 else 0

    modbus = ModbusProtocol(ModbusConfig(host=argv[1], port=int(argv[2]), timeout_ms=500))
    mqtt = MQTTProtocol(MQTTConfig(broker_address=argv[3], port=int(argv[4]),
                                   client_id="modbus-gateway-py", timeout=10))
    offline = json.dumps({"status": "offline"})
    mqtt.set_will(STATUS_TOPIC, offline, qos=1, retain=True)
    mqtt.connect()
    mqtt.publish(STATUS_TOPIC, json.dumps({"status": "online"}), qos=1, retain=True)
    try:
        modbus.connect()
    except ProtocolError as e:  # the device may come later: every poll reconnects
        print(f"modbus connect: {e}", file=sys.stderr)

    last = None
    failing = False
    n = 0
    while polls == 0 or n < polls:
        n += 1
        try:
            values = modbus.read_holding_registers(address, count)
        except ProtocolError as e:
            if not failing:
                error = status_name(e.status) if e.status is not None else "UNKNOWN"
                mqtt.publish(STATUS_TOPIC, json.dumps({"status": "modbus-error",
                                                       "error": f"EQ1_STATUS_{error}"}),
                             qos=1, retain=True)
                failing = True
        else:
            if failing:
                mqtt.publish(STATUS_TOPIC, json.dumps({"status": "online"}), qos=1, retain=True)
                failing = False
            if values != last:
                document = json.dumps({"address": address, "values": values})
                mqtt.publish(REGISTERS_TOPIC, document, qos=1)
                print(f"published {document}", flush=True)
                last = values
        time.sleep(0.1)

    # A clean leaver says "offline" itself: the broker drops the will on DISCONNECT.
    mqtt.publish(STATUS_TOPIC, offline, qos=1, retain=True)
    mqtt.disconnect()
    modbus.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
