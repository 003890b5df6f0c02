"""The design document's quick start (설계 문서의 빠른 시작), as written there.

Only where the broker is comes from the environment, so the same file runs against any broker:
EQ1_EXAMPLE_HOST (default localhost) and EQ1_EXAMPLE_PORT (default 1883).
"""

import os

from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig

# 1. 설정 객체 생성
config = MQTTConfig(
    broker_address=os.environ.get("EQ1_EXAMPLE_HOST", "localhost"),
    port=int(os.environ.get("EQ1_EXAMPLE_PORT", "1883")),
    timeout=60
)

# 2. MQTT 프로토콜 인스턴스 생성
mqtt = MQTTProtocol(config)

# 3. 연결
mqtt.connect()


# 4. 메시지 콜백 정의
def message_callback(topic: str, payload: bytes):
    print(f"Received: [{topic}] {payload.decode()}")


# 5. 토픽 구독
mqtt.subscribe("test/topic", message_callback, qos=1)

# 6. 메시지 발행
mqtt.publish("test/topic", "Hello MQTT!", qos=1)

# 7. 연결 해제 (returns after the callbacks of messages that arrived before it)
mqtt.disconnect()
