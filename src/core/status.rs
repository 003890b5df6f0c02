//! The status table: every way a call can end, each with its stable number, its C name, its
//! family and its text, written once below. The C face (`src/ffi/status.rs`), the generated
//! header (`tests/header.rs` renders both enums from here) and the bindings (which ask the
//! library at run time) all read it from this file.

use crate::core::error::Error;
use std::ffi::CStr;

/// Declares an enum with explicit numbers plus `ALL` and `doc()`, so the header can be
/// rendered from the Rust values instead of from a second, hand-kept list.
macro_rules! numbered_enum {
    (
        $(#[doc = $type_doc:literal])*
        pub enum $name:ident { $( $(#[doc = $doc:literal])* $variant:ident = $number:literal, )* }
    ) => {
        $(#[doc = $type_doc])*
        #[repr(i32)] // fixed width: the C boundary hands it to C as an `int`-sized enum
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[doc = $doc])* $variant = $number, )* }

        impl $name {
            /// Every value, in the order of the table.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The type's documentation, for the generated header.
            pub const DOC: &'static str = concat!($($type_doc, "\n"),*);

            /// The stable number.
            pub const fn number(self) -> i32 {
                self as i32
            }

            /// The value's documentation, for the generated header.
            pub const fn doc(self) -> &'static str {
                match self { $( $name::$variant => concat!($($doc, "\n"),*), )* }
            }
        }
    };
}

numbered_enum! {
    /// What kind of cause a status has; bindings choose their exception class from it
    /// (`eq1_status_family_of`), so they never classify status numbers by hand.
    pub enum Family {
        /// Success: only `EQ1_STATUS_OK`.
        Ok = 0,
        /// The call, one of its arguments or the configuration is invalid, or the broker refused
        /// this one request (a publish, a subscription, the client id). Retrying the same call
        /// will not help; changing it may.
        Validation = 1,
        /// The network, TLS on the broker's side, a time-out, the broker refusing the
        /// connection, or work the connection took with it when it ended. Retrying later may help.
        Connection = 2,
        /// The broker rejected who we are: user name or password, authorization, our client
        /// certificate.
        Authentication = 3,
        /// The peer sent data that could not be decoded (it broke the protocol).
        Decode = 4,
        /// The call was made from a place where it is not allowed (inside the client's own
        /// callback): a bug in the caller, not in its arguments.
        Usage = 5,
        /// A bug in the library: please report it with the detail message.
        Internal = 6,
        /// Not a status number of this library (e.g. one from a newer version).
        Unknown = 7,
    }
}

/// One row of the table, for the C face and the bindings.
#[derive(Debug, Clone, Copy)]
pub struct StatusInfo {
    /// The C constant, e.g. `EQ1_STATUS_TIMEOUT`. Static C strings, because the C face hands
    /// them out without copying.
    pub name: &'static CStr,
    /// `"<name>: <text>"`, what `eq1_status_str` returns.
    pub described: &'static CStr,
    pub family: Family,
}

/// The status table. Each row: Rust variant = number, C name, family, text (after the doc
/// comment, which becomes the header's). Numbers are ABI: never reuse or change one.
macro_rules! status_table {
    (
        $(#[doc = $type_doc:literal])*
        pub enum Status {
            $( $(#[doc = $doc:literal])* $variant:ident = $number:literal,
               $c_name:literal, $family:ident, $text:literal; )*
        }
    ) => {
        numbered_enum! {
            $(#[doc = $type_doc])*
            pub enum Status { $( $(#[doc = $doc])* $variant = $number, )* }
        }

        impl Status {
            /// The row of this status.
            pub const fn info(self) -> StatusInfo {
                match self {
                    $( Status::$variant => StatusInfo {
                        name: c_str(concat!($c_name, "\0")),
                        described: c_str(concat!($c_name, ": ", $text, "\0")),
                        family: Family::$family,
                    }, )*
                }
            }
        }
    };
}

/// A `concat!`-built literal as a C string; a bad literal fails the build, not a call.
const fn c_str(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(text) => text,
        Err(_) => panic!("a status table string contains a NUL byte"),
    }
}

// Families worth knowing (the bindings' exception classes follow them):
//  - TLS_CLIENT_CERT_REJECTED is authentication: the broker refused *who we are*, exactly like a
//    wrong password, and retrying will not help.
//  - TLS_CONFIG (a CA/certificate/key file that cannot be read or parsed, a wrong key password)
//    is validation: it is our own configuration, not the network or the broker.
//  - TLS_KEY_PASSWORD (a missing or wrong key password) is validation, like TLS_CONFIG.
//  - TLS_CERT_REVOKED (the broker's certificate is on our CRL) is connection, like an
//    unknown issuer; TLS_CLIENT_CERT_REVOKED (the broker refused ours as revoked) and
//    TLS_SIGNER_FAILED (our signing callback could not prove who we are) are authentication.
//  - QUEUE_FULL is validation: the publish itself was refused (the design's "publish failed").
//  - INVALID_UTF8 from a call is validation (an argument); received data that is not UTF-8 is
//    raised by the Python binding as a decode error with that status.
//  - INVALID_CLIENT_ID is validation even when the broker rejected the id: it is our setting.
//  - NOT_CONNECTED, DISCONNECTED and DROPPED are connection: the connection, not the message,
//    was the cause.
//  - AUTH_FAILED is authentication (the exchange proved we are not who the broker accepts, or
//    the broker not who we accept); AUTH_NOT_CONFIGURED is validation (our configuration).
//  - STORE_LOCKED and STORE_FULL are validation, like QUEUE_FULL: the publish (or the
//    configuration's directory) was refused. STORE_IO and STORE_READ_ONLY are connection: like
//    the network, the disk failed under us and retrying later (a remount, a replaced disk)
//    may help.
//    STORE_CORRUPT is decode: data, on disk this time, that cannot be decoded.
//  - UNSUPPORTED_PROTOCOL_VERSION is connection, like BROKER_REFUSED: the broker refused the
//    connection; a fallback to an older version may succeed.
status_table! {
    /// Result of every fallible function. 0 is success; the numbers are stable across releases.
    /// After a failure, `eq1_last_error_message()` on the same thread gives the detail.
    /// `eq1_status_family_of()` tells the kind of cause.
    pub enum Status {
    /// Success.
    Ok = 0, "EQ1_STATUS_OK", Ok, "success";
    /// A required pointer argument was NULL.
    NullArgument = 1, "EQ1_STATUS_NULL_ARGUMENT", Validation, "a required pointer was NULL";
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 2, "EQ1_STATUS_INVALID_UTF8", Validation, "a string is not valid UTF-8";
    /// A topic name is empty, too long, contains a wildcard (`+`, `#`) or NUL.
    InvalidTopic = 3, "EQ1_STATUS_INVALID_TOPIC", Validation, "invalid topic name";
    /// A topic filter breaks the wildcard rules (e.g. `a/#/b`, `a+`, `#/a`).
    InvalidFilter = 4, "EQ1_STATUS_INVALID_FILTER", Validation, "invalid topic filter";
    /// A QoS outside 0..2.
    InvalidQos = 5, "EQ1_STATUS_INVALID_QOS", Validation, "QoS must be 0, 1 or 2";
    /// The PUBLISH would exceed the maximum packet size (ours or the broker's).
    PayloadTooLarge = 6, "EQ1_STATUS_PAYLOAD_TOO_LARGE", Validation,
        "packet exceeds the maximum packet size";
    /// Any other argument out of its documented range.
    InvalidArgument = 7, "EQ1_STATUS_INVALID_ARGUMENT", Validation, "argument out of range";
    /// The client id is invalid, or the broker rejected it.
    InvalidClientId = 8, "EQ1_STATUS_INVALID_CLIENT_ID", Validation,
        "invalid client identifier";
    /// The call does not fit the client's state (e.g. set_will while connected).
    InvalidState = 9, "EQ1_STATUS_INVALID_STATE", Validation,
        "not allowed in the client's current state";
    /// The call is not allowed from inside the client's own callback (e.g. freeing it).
    CalledFromCallback = 10, "EQ1_STATUS_CALLED_FROM_CALLBACK", Usage,
        "not allowed inside the client's own callback";
    /// The offline queue (outbox) is full and the policy refuses new messages.
    QueueFull = 11, "EQ1_STATUS_QUEUE_FULL", Validation, "the offline queue is full";
    /// The client is not connected.
    NotConnected = 12, "EQ1_STATUS_NOT_CONNECTED", Connection, "the client is not connected";
    /// The broker's Maximum QoS (MQTT 5.0) is below the QoS asked for; nothing was sent.
    QosNotSupported = 13, "EQ1_STATUS_QOS_NOT_SUPPORTED", Validation,
        "the broker does not support this QoS";
    /// The broker announced it lacks what the call needs (MQTT 5.0: retain, wildcard, shared
    /// subscriptions or subscription identifiers not available); nothing was sent.
    FeatureNotSupported = 14, "EQ1_STATUS_FEATURE_NOT_SUPPORTED", Validation,
        "the broker does not support this feature";
    /// The operation did not complete within its timeout.
    Timeout = 20, "EQ1_STATUS_TIMEOUT", Connection, "timed out";
    /// The broker's host refused the TCP connection (nothing listening).
    ConnectionRefused = 21, "EQ1_STATUS_CONNECTION_REFUSED", Connection, "connection refused";
    /// The broker's host name could not be resolved.
    DnsFailed = 22, "EQ1_STATUS_DNS_FAILED", Connection, "host name could not be resolved";
    /// Another network error (unreachable, reset...).
    NetworkError = 23, "EQ1_STATUS_NETWORK_ERROR", Connection, "network error";
    /// The connection was lost (closed by the broker, keep-alive timeout, broker DISCONNECT).
    ConnectionLost = 24, "EQ1_STATUS_CONNECTION_LOST", Connection, "connection lost";
    /// A TLS error not covered by a more specific status.
    TlsError = 30, "EQ1_STATUS_TLS_ERROR", Connection, "TLS error";
    /// The broker's certificate is not signed by a trusted CA ("unknown issuer").
    TlsUnknownIssuer = 31, "EQ1_STATUS_TLS_UNKNOWN_ISSUER", Connection,
        "certificate verify failed: unknown issuer";
    /// The broker's certificate does not name the host connected to.
    TlsHostnameMismatch = 32, "EQ1_STATUS_TLS_HOSTNAME_MISMATCH", Connection,
        "certificate verify failed: hostname mismatch";
    /// The broker's certificate has expired (or is not valid yet).
    TlsCertExpired = 33, "EQ1_STATUS_TLS_CERT_EXPIRED", Connection,
        "certificate verify failed: certificate expired";
    /// The broker rejected our client certificate, or required one we did not send.
    TlsClientCertRejected = 34, "EQ1_STATUS_TLS_CLIENT_CERT_REJECTED", Authentication,
        "broker rejected or required a client certificate";
    /// A TLS file could not be read or parsed (CA, certificate, key, key password).
    TlsConfig = 35, "EQ1_STATUS_TLS_CONFIG", Validation,
        "TLS file could not be read or parsed";
    /// The broker refused the connection: bad user name or password.
    BadCredentials = 40, "EQ1_STATUS_BAD_CREDENTIALS", Authentication,
        "bad user name or password";
    /// The broker refused the connection: not authorized.
    NotAuthorized = 41, "EQ1_STATUS_NOT_AUTHORIZED", Authentication, "not authorized";
    /// The broker refused the connection for another reason (protocol version, unavailable...).
    BrokerRefused = 42, "EQ1_STATUS_BROKER_REFUSED", Connection,
        "broker refused the connection";
    /// The broker refused a subscription (SUBACK 0x80 or a v5 failure reason).
    SubscribeRefused = 43, "EQ1_STATUS_SUBSCRIBE_REFUSED", Validation,
        "broker refused the subscription";
    /// The broker refused a publish (v5 PUBACK/PUBREC failure reason).
    PublishRefused = 44, "EQ1_STATUS_PUBLISH_REFUSED", Validation, "broker refused the publish";
    /// The broker broke the protocol (malformed or unexpected packet); the connection closed.
    ProtocolError = 45, "EQ1_STATUS_PROTOCOL_ERROR", Decode, "MQTT protocol violation";
    /// The message was still unacknowledged when the user disconnected.
    Disconnected = 46, "EQ1_STATUS_DISCONNECTED", Connection,
        "client disconnected before completion";
    /// The message was dropped from the full offline queue (drop-oldest policy).
    Dropped = 47, "EQ1_STATUS_DROPPED", Connection, "dropped from the full offline queue";
    /// The broker does not support the protocol version asked for (e.g. MQTT 5.0 to a
    /// 3.1.1-only broker); see `eq1_mqtt_options_set_protocol_fallback`.
    UnsupportedProtocolVersion = 48, "EQ1_STATUS_UNSUPPORTED_PROTOCOL_VERSION", Connection,
        "the broker does not support this protocol version";
    /// An MQTT 5.0 message whose Message Expiry Interval passed before it could be sent (it
    /// waited in the offline queue); it was dropped.
    Expired = 49, "EQ1_STATUS_EXPIRED", Connection, "message expired before it was sent";
    /// The MQTT 5.0 broker refused the connection with 0x9C "use another server" or 0x9D
    /// "server moved"; the detail names its Server Reference (when it sent one).
    ServerMoved = 50, "EQ1_STATUS_SERVER_MOVED", Connection,
        "the broker sent the client to another server";
    /// The MQTT 5.0 enhanced-authentication exchange failed: the broker refused it (bad
    /// authentication method 0x8C, not authorized 0x87, or it closed the connection during
    /// re-authentication), the authentication callback answered failure (e.g. the broker's
    /// final data did not verify), or no callback was installed to answer a challenge.
    AuthFailed = 53, "EQ1_STATUS_AUTH_FAILED", Authentication,
        "enhanced authentication failed";
    /// Enhanced authentication was asked for (`eq1_mqtt_client_reauthenticate`) but no
    /// authentication method is configured (`eq1_mqtt_options_set_auth_method`).
    AuthNotConfigured = 54, "EQ1_STATUS_AUTH_NOT_CONFIGURED", Validation,
        "no authentication method is configured";
    /// The broker refused to remove a subscription (MQTT 5.0 UNSUBACK failure reason such as
    /// 0x87 not authorized; 0x11 "no subscription existed" is not a failure).
    UnsubscribeRefused = 56, "EQ1_STATUS_UNSUBSCRIBE_REFUSED", Validation,
        "broker refused the unsubscribe";
    /// The call asks for what only MQTT 5.0 has (no-local, retain-as-published, retain
    /// handling, SUBSCRIBE/UNSUBSCRIBE user properties, request/response) on a client that
    /// speaks MQTT 3.1.1; nothing was sent.
    Mqtt5Required = 57, "EQ1_STATUS_MQTT5_REQUIRED", Validation,
        "this needs MQTT 5.0; the client speaks MQTT 3.1.1";
    /// A response was asked for a message that has no response topic (it is not a request).
    NoResponseTopic = 59, "EQ1_STATUS_NO_RESPONSE_TOPIC", Validation,
        "the message has no response topic";
    /// As many requests as allowed (`eq1_mqtt_options_set_max_pending_requests`) are waiting
    /// for their replies; nothing was sent.
    TooManyRequests = 60, "EQ1_STATUS_TOO_MANY_REQUESTS", Validation,
        "too many requests are waiting for replies";
    /// The persistence directory is in use by another client (in this or another process):
    /// each store has one owner at a time.
    StoreLocked = 62, "EQ1_STATUS_STORE_LOCKED", Validation,
        "the persistence directory is in use by another client";
    /// The message was not stored: the store reached its maximum size, or its disk is full
    /// (ENOSPC); the detail says which. Room comes back as deliveries complete or space is
    /// freed.
    StoreFull = 63, "EQ1_STATUS_STORE_FULL", Validation, "the persistent store is full";
    /// The persistent store's disk failed (EIO, permissions), or the store stopped after a
    /// failed fdatasync (it takes nothing more until the client is made again); the detail
    /// names the file and the error.
    StoreIo = 64, "EQ1_STATUS_STORE_IO", Connection, "the persistent store's disk failed";
    /// The persistent store cannot be read: a format version this library does not know, or
    /// damage in an older segment where its records cannot be located. Move it aside.
    StoreCorrupt = 65, "EQ1_STATUS_STORE_CORRUPT", Decode,
        "the persistent store cannot be read";
    /// The persistence directory (`eq1_mqtt_options_set_persistence`) holds the session of
    /// another client id: one store belongs to one client id. Nothing was changed in it.
    StoreClientMismatch = 66, "EQ1_STATUS_STORE_CLIENT_MISMATCH", Validation,
        "the store belongs to another client id";
    /// The persistent store's file system is read-only (EROFS): mounted read-only, or turned
    /// read-only by the kernel after an error (ext4's errors=remount-ro). The message was not
    /// stored; the store takes nothing until the client is made again on a writable store.
    StoreReadOnly = 67, "EQ1_STATUS_STORE_READ_ONLY", Connection,
        "the persistent store's file system is read-only";
    /// The proxy (`eq1_mqtt_options_set_proxy`, or one from the environment) could not be
    /// reached, refused to open the tunnel to the broker (HTTP status other than 2xx, SOCKS5
    /// reply other than success: e.g. not allowed by its rules, host unreachable), or broke its
    /// protocol. The detail names the proxy and its answer.
    ProxyFailed = 70, "EQ1_STATUS_PROXY_FAILED", Connection,
        "the proxy failed or refused the connection to the broker";
    /// The proxy refused our proxy credentials (HTTP 407, SOCKS5 user/password failure), or
    /// required credentials none were given for.
    ProxyAuthFailed = 71, "EQ1_STATUS_PROXY_AUTH_FAILED", Authentication,
        "the proxy refused the proxy user name or password";
    /// The WebSocket upgrade failed: the server answered with another HTTP status (a wrong
    /// path, no WebSocket listener) or without the `mqtt` subprotocol.
    WebsocketFailed = 72, "EQ1_STATUS_WEBSOCKET_FAILED", Connection,
        "the WebSocket handshake failed";
    /// The outgoing socket could not be bound to the local address
    /// (`eq1_mqtt_options_set_bind_address`: not an address of this host) or interface
    /// (`eq1_mqtt_options_set_bind_interface`: no such interface, or no permission: it needs
    /// CAP_NET_RAW).
    BindFailed = 73, "EQ1_STATUS_BIND_FAILED", Validation,
        "the socket could not be bound to the local address or interface";
    /// The broker's certificate, or a certificate of its chain, is revoked by a certificate
    /// revocation list given with `eq1_mqtt_options_set_tls_crl_file` / `_crl_data`.
    TlsCertRevoked = 76, "EQ1_STATUS_TLS_CERT_REVOKED", Connection,
        "certificate verify failed: certificate revoked";
    /// The broker refused our client certificate as revoked (TLS alert certificate_revoked,
    /// e.g. mosquitto's `crlfile`).
    TlsClientCertRevoked = 77, "EQ1_STATUS_TLS_CLIENT_CERT_REVOKED", Authentication,
        "broker refused the client certificate as revoked";
    /// The private key is encrypted and no password was given, or the password is wrong.
    TlsKeyPassword = 78, "EQ1_STATUS_TLS_KEY_PASSWORD", Validation,
        "private key password missing or wrong";
    /// The signing callback (`eq1_mqtt_options_set_tls_client_signer`) failed during the TLS
    /// handshake (it returned false or an empty or oversized signature).
    TlsSignerFailed = 79, "EQ1_STATUS_TLS_SIGNER_FAILED", Authentication,
        "the TLS signing callback failed";
    /// A protocol of this name is registered already (a built-in, or a plugin loaded
    /// before): `eq1_protocol_load_plugin` never replaces one; nothing was registered.
    ProtocolExists = 80, "EQ1_STATUS_PROTOCOL_EXISTS", Validation,
        "a protocol of this name is registered already";
    /// The protocol kind behind an `eq1_protocol` handle does not support this operation
    /// (e.g. publish on TCP, send on a plugin without a send function); nothing was done.
    UnsupportedOperation = 82, "EQ1_STATUS_UNSUPPORTED_OPERATION", Validation,
        "the protocol does not support this operation";
    /// No protocol of this name is registered (built in or loaded from a plugin).
    UnknownProtocol = 83, "EQ1_STATUS_UNKNOWN_PROTOCOL", Validation,
        "no protocol of this name is registered";
    /// A plugin's shared object could not be loaded (missing file, not a shared object,
    /// unresolved dependencies).
    PluginLoad = 84, "EQ1_STATUS_PLUGIN_LOAD", Validation, "the plugin could not be loaded";
    /// A plugin's shared object does not export `eq1_plugin_entry`, or its vtable lacks a
    /// required function (name, open, close).
    PluginSymbol = 85, "EQ1_STATUS_PLUGIN_SYMBOL", Validation,
        "the plugin lacks a required symbol or function";
    /// A plugin's vtable has another `abi_version` than `EQ1_PLUGIN_ABI_VERSION`.
    PluginVersion = 86, "EQ1_STATUS_PLUGIN_VERSION", Validation,
        "the plugin was built for another plugin ABI version";
    /// The peer sent a frame above the maximum frame size (length prefix too large, or no
    /// delimiter within the maximum); the connection was closed, since the stream is no
    /// longer in step.
    FrameTooLarge = 87, "EQ1_STATUS_FRAME_TOO_LARGE", Decode,
        "the peer sent a frame above the maximum frame size";
    /// A serial device could not be opened or configured (missing, busy, no permission,
    /// unsupported setting), or failed while in use.
    SerialError = 88, "EQ1_STATUS_SERIAL_ERROR", Connection, "serial device error";
    /// A plugin's function failed (it returned a status other than `EQ1_STATUS_OK`); the
    /// detail names the plugin, the function and the status it returned.
    PluginFailed = 89, "EQ1_STATUS_PLUGIN_FAILED", Connection, "the plugin reported a failure";
    /// Modbus exception 0x01 "illegal function": the server does not support the request's
    /// function code.
    ModbusIllegalFunction = 90, "EQ1_STATUS_MODBUS_ILLEGAL_FUNCTION", Validation,
        "Modbus exception 0x01: illegal function";
    /// Modbus exception 0x02 "illegal data address": the address range is not in the server's
    /// map.
    ModbusIllegalDataAddress = 91, "EQ1_STATUS_MODBUS_ILLEGAL_DATA_ADDRESS", Validation,
        "Modbus exception 0x02: illegal data address";
    /// Modbus exception 0x03 "illegal data value": a value in the request is not allowed.
    ModbusIllegalDataValue = 92, "EQ1_STATUS_MODBUS_ILLEGAL_DATA_VALUE", Validation,
        "Modbus exception 0x03: illegal data value";
    /// Modbus exception 0x04 "server device failure" (also 0x08 "memory parity error" and
    /// codes outside the specification; the detail names the code).
    ModbusServerDeviceFailure = 93, "EQ1_STATUS_MODBUS_SERVER_DEVICE_FAILURE", Connection,
        "Modbus exception 0x04: server device failure";
    /// Modbus exception 0x05 "acknowledge": accepted, but the work takes long; ask again later.
    ModbusAcknowledge = 94, "EQ1_STATUS_MODBUS_ACKNOWLEDGE", Connection,
        "Modbus exception 0x05: acknowledge (still processing)";
    /// Modbus exception 0x06 "server device busy": retry later.
    ModbusServerBusy = 95, "EQ1_STATUS_MODBUS_SERVER_BUSY", Connection,
        "Modbus exception 0x06: server device busy";
    /// Modbus exception 0x0A "gateway path unavailable".
    ModbusGatewayPathUnavailable = 96, "EQ1_STATUS_MODBUS_GATEWAY_PATH_UNAVAILABLE", Connection,
        "Modbus exception 0x0A: gateway path unavailable";
    /// Modbus exception 0x0B "gateway target device failed to respond".
    ModbusGatewayTargetFailed = 97, "EQ1_STATUS_MODBUS_GATEWAY_TARGET_FAILED", Connection,
        "Modbus exception 0x0B: gateway target device failed to respond";
    /// A Modbus response that did not decode, after the call's retries: bad CRC (RTU), bad
    /// framing, or a transaction id, unit id or function code that does not match the request.
    ModbusBadFrame = 98, "EQ1_STATUS_MODBUS_BAD_FRAME", Decode,
        "Modbus response did not decode (bad CRC or framing)";
    /// An internal error (a bug): please report it with the detail message.
    Internal = 99, "EQ1_STATUS_INTERNAL", Internal, "internal error";
    }
}

impl Status {
    /// The status with this number, if the table has one.
    pub fn from_number(number: i32) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| s.number() == number)
    }

    /// The family of any number: `Family::Unknown` for one not in the table.
    pub fn family_of(number: i32) -> Family {
        Status::from_number(number).map_or(Family::Unknown, |s| s.info().family)
    }
}

/// Every error has its own status. Exhaustive, so a new `Error` variant does not compile until
/// it has a place in the table.
impl From<&Error> for Status {
    fn from(error: &Error) -> Status {
        use Status as S;
        match error {
            Error::NullArgument(_) => S::NullArgument,
            Error::InvalidUtf8(_) => S::InvalidUtf8,
            Error::InvalidTopic(_) => S::InvalidTopic,
            Error::InvalidFilter(_) => S::InvalidFilter,
            Error::InvalidQos(_) => S::InvalidQos,
            Error::PayloadTooLarge(_) => S::PayloadTooLarge,
            Error::InvalidArgument(_) => S::InvalidArgument,
            Error::InvalidClientId(_) => S::InvalidClientId,
            Error::InvalidState(_) => S::InvalidState,
            Error::CalledFromCallback(_) => S::CalledFromCallback,
            Error::QueueFull(_) => S::QueueFull,
            Error::NotConnected(_) => S::NotConnected,
            Error::QosNotSupported(_) => S::QosNotSupported,
            Error::FeatureNotSupported(_) => S::FeatureNotSupported,
            Error::UnsupportedProtocolVersion(_) => S::UnsupportedProtocolVersion,
            Error::Timeout(_) => S::Timeout,
            Error::ConnectionRefused(_) => S::ConnectionRefused,
            Error::DnsFailed(_) => S::DnsFailed,
            Error::Network(_) => S::NetworkError,
            Error::ConnectionLost(_) => S::ConnectionLost,
            Error::Tls(_) => S::TlsError,
            Error::TlsUnknownIssuer(_) => S::TlsUnknownIssuer,
            Error::TlsHostnameMismatch(_) => S::TlsHostnameMismatch,
            Error::TlsCertExpired(_) => S::TlsCertExpired,
            Error::TlsClientCertRejected(_) => S::TlsClientCertRejected,
            Error::TlsConfig(_) => S::TlsConfig,
            Error::TlsCertRevoked(_) => S::TlsCertRevoked,
            Error::TlsClientCertRevoked(_) => S::TlsClientCertRevoked,
            Error::TlsKeyPassword(_) => S::TlsKeyPassword,
            Error::TlsSignerFailed(_) => S::TlsSignerFailed,
            Error::BadCredentials(_) => S::BadCredentials,
            Error::NotAuthorized(_) => S::NotAuthorized,
            Error::BrokerRefused(_) => S::BrokerRefused,
            Error::AuthFailed(_) => S::AuthFailed,
            Error::AuthNotConfigured(_) => S::AuthNotConfigured,
            Error::SubscribeRefused(_) => S::SubscribeRefused,
            Error::PublishRefused(_) => S::PublishRefused,
            Error::UnsubscribeRefused(_) => S::UnsubscribeRefused,
            Error::Mqtt5Required(_) => S::Mqtt5Required,
            Error::Protocol(_) => S::ProtocolError,
            Error::Disconnected(_) => S::Disconnected,
            Error::Dropped(_) => S::Dropped,
            Error::NoResponseTopic(_) => S::NoResponseTopic,
            Error::TooManyRequests(_) => S::TooManyRequests,
            Error::Expired(_) => S::Expired,
            Error::ServerMoved(_) => S::ServerMoved,
            Error::StoreLocked(_) => S::StoreLocked,
            Error::StoreFull(_) => S::StoreFull,
            Error::StoreIo(_) => S::StoreIo,
            Error::StoreReadOnly(_) => S::StoreReadOnly,
            Error::StoreCorrupt(_) => S::StoreCorrupt,
            Error::StoreClientMismatch(_) => S::StoreClientMismatch,
            Error::ProxyFailed(_) => S::ProxyFailed,
            Error::ProxyAuthFailed(_) => S::ProxyAuthFailed,
            Error::WebSocketFailed(_) => S::WebsocketFailed,
            Error::BindFailed(_) => S::BindFailed,
            Error::UnsupportedOperation(_) => S::UnsupportedOperation,
            Error::UnknownProtocol(_) => S::UnknownProtocol,
            Error::ProtocolExists(_) => S::ProtocolExists,
            Error::PluginLoad(_) => S::PluginLoad,
            Error::PluginSymbol(_) => S::PluginSymbol,
            Error::PluginVersion(_) => S::PluginVersion,
            Error::FrameTooLarge(_) => S::FrameTooLarge,
            Error::SerialError(_) => S::SerialError,
            Error::PluginFailed(_) => S::PluginFailed,
            Error::ModbusIllegalFunction(_) => S::ModbusIllegalFunction,
            Error::ModbusIllegalDataAddress(_) => S::ModbusIllegalDataAddress,
            Error::ModbusIllegalDataValue(_) => S::ModbusIllegalDataValue,
            Error::ModbusServerDeviceFailure(_) => S::ModbusServerDeviceFailure,
            Error::ModbusAcknowledge(_) => S::ModbusAcknowledge,
            Error::ModbusServerBusy(_) => S::ModbusServerBusy,
            Error::ModbusGatewayPathUnavailable(_) => S::ModbusGatewayPathUnavailable,
            Error::ModbusGatewayTargetFailed(_) => S::ModbusGatewayTargetFailed,
            Error::ModbusBadFrame(_) => S::ModbusBadFrame,
            Error::Internal(_) => S::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_and_names_are_unique() {
        let numbers: HashSet<i32> = Status::ALL.iter().map(|s| s.number()).collect();
        let names: HashSet<&CStr> = Status::ALL.iter().map(|s| s.info().name).collect();
        assert_eq!(numbers.len(), Status::ALL.len());
        assert_eq!(names.len(), Status::ALL.len());
        // Ascending, as `eq1_status_at` documents.
        assert!(Status::ALL
            .windows(2)
            .all(|w| w[0].number() < w[1].number()));
    }

    #[test]
    fn every_name_is_a_c_constant_and_starts_its_description() {
        for status in Status::ALL {
            let info = status.info();
            let name = info.name.to_str().unwrap_or_default();
            assert!(name.starts_with("EQ1_STATUS_"), "{status:?}: {name}");
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
            let described = info.described.to_str().unwrap_or_default();
            assert!(
                described.starts_with(&format!("{name}: ")),
                "{status:?}: {described}"
            );
            assert!(
                !status.doc().trim().is_empty(),
                "{status:?} has no documentation"
            );
        }
    }

    #[test]
    fn only_ok_is_in_the_ok_family_and_no_status_is_unknown() {
        for status in Status::ALL {
            let family = status.info().family;
            assert_eq!(family == Family::Ok, *status == Status::Ok, "{status:?}");
            assert_ne!(family, Family::Unknown, "{status:?}");
        }
    }

    #[test]
    fn numbers_outside_the_table_are_of_the_unknown_family() {
        assert_eq!(Status::family_of(-1), Family::Unknown);
        assert_eq!(Status::family_of(15), Family::Unknown);
        assert_eq!(Status::family_of(i32::MAX), Family::Unknown);
        assert_eq!(Status::family_of(20), Family::Connection);
    }

    #[test]
    fn broker_limits_are_validation_and_a_refused_version_is_connection() {
        assert_eq!(Status::QosNotSupported.info().family, Family::Validation);
        assert_eq!(
            Status::FeatureNotSupported.info().family,
            Family::Validation
        );
        assert_eq!(
            Status::UnsupportedProtocolVersion.info().family,
            Family::Connection
        );
    }

    #[test]
    fn every_error_maps_onto_a_status_that_is_not_ok() {
        // The match in `From<&Error>` is exhaustive; this checks no error claims success.
        let samples = [
            Error::NullArgument(String::new()),
            Error::Timeout(String::new()),
            Error::Internal(String::new()),
            Error::UnsupportedProtocolVersion(String::new()),
        ];
        for error in &samples {
            assert_ne!(Status::from(error), Status::Ok, "{error:?}");
        }
    }
}
