//! The one error type of the library. Every variant carries a detail message naming the cause;
//! `core::status` maps each variant onto its own status (a stable number) in the status table.

/// An error raised by the library, with a human-readable detail message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NullArgument(String),
    #[error("{0}")]
    InvalidUtf8(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidFilter(String),
    #[error("{0}")]
    InvalidQos(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidClientId(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    CalledFromCallback(String),
    #[error("{0}")]
    QueueFull(String),
    #[error("{0}")]
    NotConnected(String),
    /// The broker announced a Maximum QoS below the one asked for (MQTT 5.0).
    #[error("{0}")]
    QosNotSupported(String),
    /// The broker announced that it lacks a feature the call needs (retain, wildcards, shared
    /// subscriptions, subscription identifiers: MQTT 5.0).
    #[error("{0}")]
    FeatureNotSupported(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    ConnectionRefused(String),
    #[error("{0}")]
    DnsFailed(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    ConnectionLost(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    TlsUnknownIssuer(String),
    #[error("{0}")]
    TlsHostnameMismatch(String),
    #[error("{0}")]
    TlsCertExpired(String),
    #[error("{0}")]
    TlsClientCertRejected(String),
    #[error("{0}")]
    TlsConfig(String),
    /// The broker's certificate (or one of its chain) is on a configured CRL.
    #[error("{0}")]
    TlsCertRevoked(String),
    /// The broker refused our client certificate as revoked (alert certificate_revoked).
    #[error("{0}")]
    TlsClientCertRevoked(String),
    /// An encrypted private key without its password, or with a wrong one.
    #[error("{0}")]
    TlsKeyPassword(String),
    /// The application's signing callback failed during the handshake.
    #[error("{0}")]
    TlsSignerFailed(String),
    #[error("{0}")]
    BadCredentials(String),
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    BrokerRefused(String),
    /// The broker does not speak the protocol version we asked for.
    #[error("{0}")]
    UnsupportedProtocolVersion(String),
    /// The enhanced-authentication exchange (MQTT 5.0 AUTH) failed: the broker refused it
    /// (bad authentication method, not authorized), our callback answered failure, or the
    /// broker's final data did not verify.
    #[error("{0}")]
    AuthFailed(String),
    /// Enhanced authentication was asked for (re-authentication) but no authentication
    /// method is configured.
    #[error("{0}")]
    AuthNotConfigured(String),
    #[error("{0}")]
    SubscribeRefused(String),
    #[error("{0}")]
    PublishRefused(String),
    /// The broker refused to remove a subscription (v5 UNSUBACK failure reason).
    #[error("{0}")]
    UnsubscribeRefused(String),
    /// The call uses what only MQTT 5.0 has (e.g. no-local) on an MQTT 3.1.1 client.
    #[error("{0}")]
    Mqtt5Required(String),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Disconnected(String),
    #[error("{0}")]
    Dropped(String),
    /// A reply was asked for a message that named no response topic (request/response).
    #[error("{0}")]
    NoResponseTopic(String),
    /// As many requests as allowed are waiting for their replies.
    #[error("{0}")]
    TooManyRequests(String),
    /// An MQTT 5.0 message whose Message Expiry Interval passed before it could be sent.
    #[error("{0}")]
    Expired(String),
    /// An MQTT 5.0 CONNACK 0x9C / 0x9D: the broker sent the client to another server.
    #[error("{0}")]
    ServerMoved(String),
    /// The persistent store's directory is held by another store (another process).
    #[error("{0}")]
    StoreLocked(String),
    /// The persistent store is full: its size bound, or no space left on its disk.
    #[error("{0}")]
    StoreFull(String),
    /// The persistent store's disk failed (EIO, permissions, an earlier failed fdatasync).
    #[error("{0}")]
    StoreIo(String),
    /// The persistent store's file system is read-only (EROFS).
    #[error("{0}")]
    StoreReadOnly(String),
    /// The persistent store cannot be read (unknown format version, damage beyond recovery).
    #[error("{0}")]
    StoreCorrupt(String),
    /// The persistence directory holds the session of another client id.
    #[error("{0}")]
    StoreClientMismatch(String),
    /// Modbus exception 0x01: the server does not support the function code.
    #[error("{0}")]
    ModbusIllegalFunction(String),
    /// Modbus exception 0x02: the address range is not in the server's map.
    #[error("{0}")]
    ModbusIllegalDataAddress(String),
    /// Modbus exception 0x03: a value in the request is not allowed.
    #[error("{0}")]
    ModbusIllegalDataValue(String),
    /// Modbus exception 0x04 (also 0x08 and codes outside the specification).
    #[error("{0}")]
    ModbusServerDeviceFailure(String),
    /// Modbus exception 0x05: accepted, the work takes long.
    #[error("{0}")]
    ModbusAcknowledge(String),
    /// Modbus exception 0x06: the server is busy.
    #[error("{0}")]
    ModbusServerBusy(String),
    /// Modbus exception 0x0A: the gateway has no path to the target.
    #[error("{0}")]
    ModbusGatewayPathUnavailable(String),
    /// Modbus exception 0x0B: the gateway's target did not respond.
    #[error("{0}")]
    ModbusGatewayTargetFailed(String),
    /// A Modbus response that did not decode: bad CRC (RTU), bad framing, a header or
    /// function code that does not match the request.
    #[error("{0}")]
    ModbusBadFrame(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    UnknownProtocol(String),
    /// A protocol of this name is registered already.
    #[error("{0}")]
    ProtocolExists(String),
    #[error("{0}")]
    PluginLoad(String),
    #[error("{0}")]
    PluginSymbol(String),
    #[error("{0}")]
    PluginVersion(String),
    #[error("{0}")]
    FrameTooLarge(String),
    #[error("{0}")]
    SerialError(String),
    #[error("{0}")]
    PluginFailed(String),
    /// The proxy could not be reached, refused the tunnel to the server, or broke its
    /// protocol.
    #[error("{0}")]
    ProxyFailed(String),
    /// The proxy refused our proxy credentials (or required some we did not have).
    #[error("{0}")]
    ProxyAuthFailed(String),
    /// The WebSocket upgrade was refused (HTTP status, missing `mqtt` subprotocol).
    #[error("{0}")]
    WebSocketFailed(String),
    /// The outgoing socket could not be bound to the local address or interface.
    #[error("{0}")]
    BindFailed(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The detail message, without the variant.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

pub type Result<T> = std::result::Result<T, Error>;
