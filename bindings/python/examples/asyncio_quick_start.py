"""The quick start with asyncio: AsyncMQTTProtocol over the same native client.

The broker comes from EQ1_EXAMPLE_HOST (default localhost) and EQ1_EXAMPLE_PORT (default 1883).
"""

import asyncio
import os

from communicator.protocols.mqtt import AsyncMQTTProtocol
from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig


async def main() -> None:
    config = MQTTConfig(
        broker_address=os.environ.get("EQ1_EXAMPLE_HOST", "localhost"),
        port=int(os.environ.get("EQ1_EXAMPLE_PORT", "1883")),
        timeout=60,
    )
    async with AsyncMQTTProtocol(config) as mqtt:
        # Leaving the `async with` block of a stream unsubscribes it.
        async with mqtt.messages("sensors/#", qos=1) as stream:
            # Each await returns once the broker acknowledged the message (QoS 1).
            await mqtt.publish("sensors/t1", "21.5", qos=1)
            await mqtt.publish("sensors/t2", "19.0", qos=1)
            received = 0
            async for message in stream:
                print(f"Received: [{message.topic}] {message.payload.decode()}")
                received += 1
                if received == 2:
                    break


asyncio.run(main())
