"""asyncio face of the MQTT client: ``AsyncMQTTProtocol`` over the same native client as
``MQTTProtocol``.

    async with AsyncMQTTProtocol(config) as mqtt:
        await mqtt.publish("sensors/t1", "21.5", qos=1)
        async with mqtt.messages("sensors/#") as stream:
            async for message in stream:
                print(message.topic, message.payload)

The native client does the protocol work on its own threads, exactly as for ``MQTTProtocol``.
What it reports on its dispatcher thread (messages, delivery reports) is handed to the event
loop with ``loop.call_soon_threadsafe``, so awaiting never blocks the loop. Calls that wait for
the broker (connect, subscribe, unsubscribe, disconnect, request) run in the loop's default
executor.

Flow control: each message stream holds at most ``queue_size`` messages. When a stream is full,
the client's dispatcher thread waits for the reader (nothing is dropped); meanwhile the client
stops taking messages from the broker once its own inbound bound is reached, and the
acknowledgements of your own publishes wait behind them too. So a loop that reads a stream must
not, while the stream is full, await a QoS 1/2 publish: use ``publish_nowait`` there.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Optional

from communicator.common.exceptions import ProtocolValidationError, Status
from communicator.interfaces.protocol import Payload
from communicator.protocols.mqtt.mqtt_protocol import (
    DeliveryReport,
    MessageProperties,
    MQTTConfig,
    MQTTProtocol,
    SubscribeOptions,
)

__all__ = ["AsyncMQTTProtocol", "Message", "MessageStream"]

#: How often a dispatcher thread waiting for room in a full stream checks whether the stream
#: was closed meanwhile (seconds).
_ROOM_POLL = 0.05


@dataclass(frozen=True)
class Message:
    """One received message. ``properties`` are the MQTT 5.0 PUBLISH properties (None under
    MQTT 3.1.1)."""

    topic: str
    payload: bytes
    properties: Optional[MessageProperties] = None


class _End:
    """Marks the end of a stream in its queue."""


_END = _End()


class MessageStream:
    """The messages of one subscription, as an async iterator. Created by
    ``AsyncMQTTProtocol.messages()``; subscribes on first use (``async with`` or the first
    ``async for`` step) and unsubscribes on ``aclose()`` / leaving ``async with``. Ends
    (StopAsyncIteration) when closed or when its client is closed."""

    def __init__(self, client: "AsyncMQTTProtocol", topic: str, qos: Optional[int],
                 options: Optional[SubscribeOptions], queue_size: int) -> None:
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ProtocolValidationError(
                f"queue_size must be an integer >= 1, not {queue_size!r}",
                Status.INVALID_ARGUMENT)
        self.topic = topic
        self._client = client
        self._qos = qos
        self._options = options
        self._queue: asyncio.Queue[Message | _End] = asyncio.Queue()
        # The bound: a place is taken by the dispatcher thread before a message is queued
        # and given back when the reader takes it, so the queue never holds more.
        self._room = threading.Semaphore(queue_size)
        self._closed = threading.Event()
        self._started = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def __aenter__(self) -> "MessageStream":
        await self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __aiter__(self) -> "MessageStream":
        return self

    async def __anext__(self) -> Message:
        if not self._started:
            await self._start()
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later step ends too
            raise StopAsyncIteration
        self._room.release()
        return item

    async def aclose(self) -> None:
        """Unsubscribes (when this was the filter's last stream) and ends the stream."""
        if self._closed.is_set():
            return
        self._end()
        if self._started:
            await self._client._stream_closed(self)

    async def _start(self) -> None:
        if self._closed.is_set():
            raise ProtocolValidationError("the message stream is closed", Status.INVALID_STATE)
        self._loop = asyncio.get_running_loop()
        self._started = True
        try:
            await self._client._stream_opened(self, self._qos, self._options)
        except BaseException:
            self._end()
            raise

    def _end(self) -> None:
        """Ends the stream (any thread): readers see StopAsyncIteration, a dispatcher thread
        waiting for room gives up."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._hand_over(_END)

    def _push(self, message: Message) -> None:
        """On the dispatcher thread: queues ``message``, waiting while the stream is full."""
        while not self._room.acquire(timeout=_ROOM_POLL):
            if self._closed.is_set():
                return
        if self._closed.is_set():
            return
        self._hand_over(message)

    def _hand_over(self, item: Message | _End) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody can read any more
            self._closed.set()


class AsyncMQTTProtocol:
    """MQTT 3.1.1 / 5.0 for asyncio. Takes the same ``MQTTConfig`` as ``MQTTProtocol``; the
    synchronous client underneath is ``sync`` (for what this class does not wrap: wills,
    authentication callbacks, statistics...). Use one event loop per client."""

    def __init__(self, config: Optional[MQTTConfig] = None) -> None:
        self.sync = MQTTProtocol(config)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pending: dict[int, asyncio.Future[DeliveryReport]] = {}
        self._streams: dict[str, list[MessageStream]] = {}
        self._streams_lock = threading.Lock()
        self._subscribe_lock: Optional[asyncio.Lock] = None

    @property
    def config(self) -> MQTTConfig:
        return self.sync.config

    @property
    def is_connected(self) -> bool:
        return self.sync.is_connected

    async def __aenter__(self) -> "AsyncMQTTProtocol":
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._subscribe_lock = asyncio.Lock()
            self.sync.on_delivery_report = self._report_from_dispatcher
        elif self._loop is not loop:
            raise ProtocolValidationError("this AsyncMQTTProtocol belongs to another event loop",
                                          Status.INVALID_STATE)
        return loop

    async def _in_executor(self, call: Callable[..., Any], *args: Any) -> Any:
        loop = self._bind_loop()
        return await loop.run_in_executor(None, lambda: call(*args))

    # ------------------------------------------------------------------ connection

    async def connect(self) -> bool:
        """Connects; returns True once the broker accepted. Raises like MQTTProtocol.connect."""
        return bool(await self._in_executor(self.sync.connect))

    async def disconnect(self, timeout: Optional[float] = None) -> None:
        """Disconnects cleanly (queued messages are sent first, within ``timeout``)."""
        await self._in_executor(lambda: self.sync.disconnect(timeout))

    async def close(self) -> None:
        """Disconnects, ends every message stream, fails publishes still awaited, and frees
        the native client; idempotent."""
        with self._streams_lock:
            streams = [s for group in self._streams.values() for s in group]
            self._streams.clear()
        for stream in streams:
            stream._end()
        await self._in_executor(self.sync.close)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ProtocolValidationError(
                    "the client was closed before the publish completed", Status.INVALID_STATE))
        self._pending.clear()

    # ------------------------------------------------------------------ publish

    async def publish(self, topic: str, message: Payload, qos: Optional[int] = None,
                      retain: bool = False, *,
                      properties: Optional[MessageProperties] = None) -> DeliveryReport:
        """Queues the message and returns its report once it completed (QoS 1/2:
        acknowledged by the broker; QoS 0: written), raising its failure (e.g.
        PUBLISH_REFUSED with the broker's reason code). Raises at once what
        MQTTProtocol.publish_async raises (bad topic, full outbox...)."""
        loop = self._bind_loop()
        token = self.sync.publish_async(topic, message, qos, retain, properties=properties)
        # Registered before the loop runs anything else: the report, handed over with
        # call_soon_threadsafe, cannot be processed before this line.
        future: asyncio.Future[DeliveryReport] = loop.create_future()
        self._pending[token] = future
        try:
            report = await future
        finally:
            self._pending.pop(token, None)
        if report.error is not None:
            raise report.error
        return report

    def publish_nowait(self, topic: str, message: Payload, qos: Optional[int] = None,
                       retain: bool = False, *,
                       properties: Optional[MessageProperties] = None) -> int:
        """Queues the message and returns its delivery token without waiting for the
        outcome (for loops that must not wait for acknowledgements, see the module's notes on
        flow control)."""
        self._bind_loop()
        return self.sync.publish_async(topic, message, qos, retain, properties=properties)

    def _report_from_dispatcher(self, report: DeliveryReport) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._complete, report)
        except RuntimeError:  # the loop is closed: nobody awaits any more
            pass

    def _complete(self, report: DeliveryReport) -> None:
        future = self._pending.get(report.token)
        if future is not None and not future.done():
            future.set_result(report)

    # ------------------------------------------------------------------ subscribe

    def messages(self, topic: str, qos: Optional[int] = None, *,
                 options: Optional[SubscribeOptions] = None,
                 queue_size: int = 1000) -> MessageStream:
        """A stream of the messages matching the filter ``topic``: ``async for message in
        mqtt.messages("a/#")``, or ``async with mqtt.messages("a/#") as stream`` to unsubscribe
        when the block ends. Several streams of one filter each receive every message."""
        return MessageStream(self, topic, qos, options, queue_size)

    async def _stream_opened(self, stream: MessageStream, qos: Optional[int],
                             options: Optional[SubscribeOptions]) -> None:
        self._bind_loop()
        assert self._subscribe_lock is not None
        async with self._subscribe_lock:
            with self._streams_lock:
                group = self._streams.get(stream.topic)
                if group is not None:
                    group.append(stream)
                    return
                self._streams[stream.topic] = [stream]
            try:
                await self._in_executor(lambda: self.sync.subscribe(
                    stream.topic, self._fan_out_callback(stream.topic), qos,
                    with_properties=True, options=options))
            except BaseException:
                with self._streams_lock:
                    self._streams.pop(stream.topic, None)
                raise

    async def _stream_closed(self, stream: MessageStream) -> None:
        assert self._subscribe_lock is not None
        async with self._subscribe_lock:
            with self._streams_lock:
                group = self._streams.get(stream.topic)
                if group is None or stream not in group:
                    return
                group.remove(stream)
                if group:
                    return
                del self._streams[stream.topic]
            if self.sync.is_connected:
                await self._in_executor(lambda: self.sync.unsubscribe(stream.topic))

    def _fan_out_callback(self, topic_filter: str) -> Callable[..., None]:
        def deliver(topic: str, payload: bytes,
                    properties: Optional[MessageProperties] = None) -> None:
            message = Message(topic, payload, properties)
            with self._streams_lock:
                group = list(self._streams.get(topic_filter, ()))
            for stream in group:
                stream._push(message)
        return deliver

    # ------------------------------------------------------------------ request/response

    async def request(self, topic: str, payload: Payload,
                      timeout: Optional[float] = None) -> bytes:
        """MQTT 5.0 request/response (see MQTTProtocol.request)."""
        return bytes(await self._in_executor(lambda: self.sync.request(topic, payload,
                                                                       timeout)))
