"""The design document's secure connection example (보안 연결), as written there: user name and
password over TLS, a will, and a retained status message.

From the environment: EQ1_EXAMPLE_HOST (default localhost), EQ1_EXAMPLE_TLS_PORT (default
8883), EQ1_EXAMPLE_CA (the CA certificate file, default /path/to/ca.crt), EQ1_EXAMPLE_USER and
EQ1_EXAMPLE_PASSWORD (defaults: the design's mqtt_user / secure_password).
"""

import os

from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig

# RFC 준수: 인증 및 TLS 보안 설정
config = MQTTConfig(
    broker_address=os.environ.get("EQ1_EXAMPLE_HOST", "localhost"),
    port=int(os.environ.get("EQ1_EXAMPLE_TLS_PORT", "8883")),  # TLS 포트
    username=os.environ.get("EQ1_EXAMPLE_USER", "mqtt_user"),
    password=os.environ.get("EQ1_EXAMPLE_PASSWORD", "secure_password"),
    ca_certs=os.environ.get("EQ1_EXAMPLE_CA", "/path/to/ca.crt"),
    timeout=30
)

mqtt = MQTTProtocol(config)

# RFC 준수: Will Message 설정
mqtt.set_will(
    topic="device/status",
    payload="offline",
    qos=1,
    retain=True
)

mqtt.connect()

# RFC 준수: Retained Message 발행
mqtt.publish("device/status", "online", qos=1, retain=True)

mqtt.disconnect()
print("published the retained status 'online'")
