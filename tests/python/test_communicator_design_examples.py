"""The original design document's examples, as written there; only the broker address, port,
CA path and credentials point at the harness's private brokers."""

from __future__ import annotations

import inspect

from communicator_testutil import Inbox
from harness.broker import TEST_PASSWORD, TEST_USER


def test_design_quick_start(broker, capsys):
    from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig

    # 1. 설정 객체 생성
    config = MQTTConfig(
        broker_address=broker.host,
        port=broker.port,
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

    # 7. 연결 해제
    mqtt.disconnect()

    # disconnect() returns after the callbacks of messages that arrived before it.
    assert capsys.readouterr().out == "Received: [test/topic] Hello MQTT!\n"
    mqtt.close()


def test_design_secure_connection(tls_broker, pki):
    from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig

    # RFC 준수: 인증 및 TLS 보안 설정
    config = MQTTConfig(
        broker_address="localhost",
        port=tls_broker.port,  # TLS 포트
        username=TEST_USER,
        password=TEST_PASSWORD,
        ca_certs=pki.ca_crt,
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

    # A late subscriber gets the retained "online"; the clean disconnect sent no will.
    late = MQTTProtocol(MQTTConfig(broker_address="localhost", port=tls_broker.port,
                                   username=TEST_USER, password=TEST_PASSWORD,
                                   ca_certs=pki.ca_crt, timeout=30))
    inbox = Inbox()
    with late:
        late.subscribe("device/status", inbox)
        assert inbox.wait_for(1) == [("device/status", b"online")]
    late.close()
    mqtt.close()


def test_design_extension_examples():
    from communicator.interfaces.protocol import PubSubProtocol, ReqResProtocol

    class TCPProtocol(ReqResProtocol):
        def __init__(self, host: str, port: int):
            self.host = host
            self.port = port
            self.socket = None

        def connect(self) -> bool:
            # TCP 연결 구현
            pass

        def disconnect(self):
            # TCP 연결 해제 구현
            pass

        def send(self, data: bytes) -> bool:
            # 데이터 전송 구현
            pass

        def receive(self, buffer_size: int = 1024) -> bytes:
            # 데이터 수신 구현
            pass

    class RedisProtocol(PubSubProtocol):
        def publish(self, topic: str, message: str, qos: int = 0, retain: bool = False) -> bool:
            # Redis pub/sub 구현
            pass

        def subscribe(self, topic: str, callback, qos: int = 0) -> bool:
            # Redis 구독 구현
            pass

    tcp = TCPProtocol("127.0.0.1", 9)
    assert isinstance(tcp, ReqResProtocol) and tcp.host == "127.0.0.1"
    # The design's Redis sketch leaves out connect()/disconnect(), which every BaseProtocol
    # must implement: it stays abstract until they are added.
    assert inspect.isabstract(RedisProtocol)
    assert RedisProtocol.__abstractmethods__ == {"connect", "disconnect"}
