"""TCP (and TLS) request/response over libeq1: ``TCPProtocol``, its ``TCPConfig`` and
``TCPStats``."""

from communicator.protocols.tcp.tcp_protocol import FRAMINGS, TCPConfig, TCPProtocol, TCPStats

__all__ = ["FRAMINGS", "TCPConfig", "TCPProtocol", "TCPStats"]
