"""Free loopback TCP port allocation for test servers."""

import socket

# Never hand out the well-known MQTT port: a system broker may own it, and tests
# must never talk to a broker they did not start.
_FORBIDDEN = {1883, 8883}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _FORBIDDEN:
            return port
