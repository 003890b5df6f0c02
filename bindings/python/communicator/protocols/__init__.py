"""Protocol implementations (MQTT today; TCP, serial, Modbus later)."""
