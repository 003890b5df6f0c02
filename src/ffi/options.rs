//! `eq1_mqtt_options`: the C view of `mqtt::Options`. Created by `_new`, released by `_free`;
//! a client copies what it needs, so options may be freed (or reused) after `client_new`.

use crate::ffi::boundary::{c_str, call, call_value, handle_mut, optional_c_str};
use crate::ffi::status::eq1_status;
use crate::mqtt::options::TlsVersion;
use crate::mqtt::{Options, ProtocolVersion, QueueFullPolicy};
use std::ffi::{c_char, c_int};

/// Opaque client options. Not thread-safe: configure from one thread.
pub struct eq1_mqtt_options {
    pub(crate) inner: Options,
}

/// `eq1_mqtt_options_set_offline_queue` policy: refuse the new message when the queue is full
/// (publish returns `EQ1_STATUS_QUEUE_FULL`).
pub const EQ1_QUEUE_REJECT_NEW: c_int = 0;
/// `eq1_mqtt_options_set_offline_queue` policy: drop the oldest queued message; its delivery
/// callback reports `EQ1_STATUS_DROPPED`.
pub const EQ1_QUEUE_DROP_OLDEST: c_int = 1;
/// `eq1_mqtt_options_set_protocol_version`: MQTT 3.1 (protocol name `MQIsdp`, level 3), for
/// brokers older than 3.1.1; client ids are limited to 23 bytes.
pub const EQ1_MQTT_V31: c_int = 3;
/// `eq1_mqtt_options_set_protocol_version`: MQTT 3.1.1.
pub const EQ1_MQTT_V311: c_int = 4;
/// `eq1_mqtt_options_set_protocol_version`: MQTT 5.0.
pub const EQ1_MQTT_V5: c_int = 5;
/// `eq1_mqtt_options_set_tls_min_version`: TLS 1.2.
pub const EQ1_TLS_1_2: c_int = 12;
/// `eq1_mqtt_options_set_tls_min_version`: TLS 1.3.
pub const EQ1_TLS_1_3: c_int = 13;
/// The largest packet MQTT can frame (1 + 4 length bytes + 268,435,455), the upper bound of
/// `eq1_mqtt_options_set_max_packet_size`.
pub const EQ1_MQTT_MAX_PACKET_SIZE: u32 = 268_435_460;
/// The longest UTF-8 string MQTT can encode (topics, client ids, user names, passwords).
pub const EQ1_MQTT_MAX_STRING_LEN: usize = 65_535;

// One value, two names: the C constant is the Rust one.
const _: () = assert!(EQ1_MQTT_MAX_PACKET_SIZE == crate::mqtt::options::MQTT_MAX_PACKET_SIZE);
const _: () = assert!(EQ1_MQTT_MAX_STRING_LEN == crate::mqtt::validate::MAX_STRING_LEN);

/// ==========================================================================================
/// Section: Options
///
/// What a client is made from: brokers, identity and credentials, session, timeouts and limits,
/// TLS, reconnection, the outbound and inbound queues. Options are not thread-safe (configure
/// them from one thread); `eq1_mqtt_client_new` copies them. Setters check their values at once;
/// a refused value leaves the options as they were. The MQTT 5.0 options are in their own
/// section below.
/// ==========================================================================================
///
/// New options with the defaults: broker localhost:1883, MQTT 3.1.1, keep-alive 60 s, clean
/// session, connect timeout 10 s, inflight window 20, automatic reconnect 0.5 s .. 30 s,
/// offline queue of 100,000 messages / 64 MiB refusing new messages when full.
///
/// Returns: the new options, to free with `eq1_mqtt_options_free`; NULL only on a bug in the
/// library (a caught panic).
///
/// See also: `eq1_mqtt_client_new`.
#[no_mangle]
pub extern "C" fn eq1_mqtt_options_new() -> *mut eq1_mqtt_options {
    call_value(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(eq1_mqtt_options {
            inner: Options::default(),
        }))
    })
}

/// Releases options. NULL is a no-op. A client made from them keeps its own copy.
///
/// Returns: nothing.
///
/// See also: `eq1_mqtt_options_new`.
///
/// # Safety
/// `options` is NULL or came from `eq1_mqtt_options_new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_free(options: *mut eq1_mqtt_options) {
    call_value((), || {
        if !options.is_null() {
            // SAFETY: created by Box::into_raw in eq1_mqtt_options_new, released once.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// Runs a setter on the options behind `options`.
pub(crate) fn with_options(
    options: *mut eq1_mqtt_options,
    set: impl FnOnce(&mut Options) -> crate::Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: the caller passes NULL or a live options handle (header contract).
        let options = unsafe { handle_mut(options, "options") }?;
        set(&mut options.inner)
    })
}

/// Sets the one broker to connect to (replaces the list). `port` 1..65535. TLS is used for it
/// when `eq1_mqtt_options_set_tls` was called before.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `host` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `host` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `host` is empty or `port` is outside 1..65535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_add_broker`.
///
/// # Safety
/// `options` is NULL or live; `host` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_broker(
    options: *mut eq1_mqtt_options,
    host: *const c_char,
    port: c_int,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.set_broker(unsafe { c_str(host, "host") }?, port)
    })
}

/// Appends a failover broker; the first call replaces the default localhost:1883. The client
/// tries the brokers in order and moves to the next when one fails. A list that mixes TLS and
/// plaintext brokers while credentials are set is refused by `eq1_mqtt_client_new` (see
/// `eq1_mqtt_options_set_allow_plaintext_fallback`).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `host` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `host` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `host` is empty or `port` is outside 1..65535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_broker`.
///
/// # Safety
/// As for `eq1_mqtt_options_set_broker`.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_add_broker(
    options: *mut eq1_mqtt_options,
    host: *const c_char,
    port: c_int,
    tls: bool,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.add_broker(unsafe { c_str(host, "host") }?, port, tls)
    })
}

/// Sets the client id; NULL or "" makes the library generate one ("eq1-" + 16 hex digits).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `client_id` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_CLIENT_ID` when `client_id` is longer than 65,535 bytes.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_get_id`.
///
/// # Safety
/// `options` is NULL or live; `client_id` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_client_id(
    options: *mut eq1_mqtt_options,
    client_id: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let id = unsafe { optional_c_str(client_id, "client id") }?;
        o.set_client_id(id.unwrap_or(""))
    })
}

/// Sets user name and password (`password` may be NULL: user name only).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `username` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `username` or `password` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `username` or `password` is longer than 65,535 bytes.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_allow_plaintext_fallback`.
///
/// # Safety
/// `options` is NULL or live; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_credentials(
    options: *mut eq1_mqtt_options,
    username: *const c_char,
    password: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let username = unsafe { c_str(username, "username") }?;
        // SAFETY: per this function's contract.
        let password = unsafe { optional_c_str(password, "password") }?;
        o.set_credentials(username, password.map(str::as_bytes))
    })
}

/// Keep-alive in seconds, 0..65535 (0 turns it off). A broker that stops answering is
/// detected within 1.5 x keep-alive.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `seconds` is outside 0..65535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_keep_alive(
    options: *mut eq1_mqtt_options,
    seconds: c_int,
) -> eq1_status {
    with_options(options, |o| o.set_keep_alive(seconds))
}

/// Clean session (3.1.1) / clean start (5.0). Default true.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_session_expiry`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_clean_session(
    options: *mut eq1_mqtt_options,
    clean: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.clean_session = clean;
        Ok(())
    })
}

/// Protocol version: `EQ1_MQTT_V311` (4, default), `EQ1_MQTT_V5` (5) or `EQ1_MQTT_V31` (3,
/// MQTT 3.1 for old brokers: CONNECT says `MQIsdp` level 3, every other packet is as in
/// 3.1.1; the client id must then be 1 to 23 bytes, which `eq1_mqtt_client_new` checks and
/// refuses with `EQ1_STATUS_INVALID_CLIENT_ID`; a generated id fits).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `version` is not 3, 4 or 5.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_protocol_fallback` and the other MQTT 5.0 options.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_protocol_version(
    options: *mut eq1_mqtt_options,
    version: c_int,
) -> eq1_status {
    with_options(options, |o| {
        match version {
            EQ1_MQTT_V31 => o.set_mqtt31(),
            EQ1_MQTT_V311 => o.set_protocol_version(ProtocolVersion::V311),
            EQ1_MQTT_V5 => o.set_protocol_version(ProtocolVersion::V5),
            other => {
                return Err(crate::Error::InvalidArgument(format!(
                    "protocol version {other} is not supported; use 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5 (MQTT 5.0)"
                )))
            }
        }
        Ok(())
    })
}

/// Timeout of one connection attempt (DNS + TCP + TLS + CONNACK) in ms, > 0. Used by
/// reconnects and by `eq1_mqtt_client_connect` with timeout 0.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is not positive.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_connect`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_connect_timeout(
    options: *mut eq1_mqtt_options,
    timeout_ms: c_int,
) -> eq1_status {
    with_options(options, |o| o.set_connect_timeout(timeout_ms))
}

/// Maximum QoS 1/2 publishes awaiting acknowledgement at once, 1..65535 (default 20, the
/// default of mosquitto's max_inflight_messages: an MQTT 3.1.1 broker cannot announce its
/// limit, and mosquitto silently discards QoS 2 messages beyond it). MQTT 5.0 brokers announce
/// theirs (receive maximum) and the smaller of the two applies.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `window` is outside 1..65535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_inflight_window(
    options: *mut eq1_mqtt_options,
    window: c_int,
) -> eq1_status {
    with_options(options, |o| o.set_inflight_window(window))
}

/// Largest packet sent or accepted, in bytes (16 .. 268435460, the MQTT maximum, default).
/// Once set, MQTT 5.0 CONNECTs announce it as our Maximum Packet Size (not sent otherwise).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `bytes` is outside 16..268435460.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_max_packet_size(
    options: *mut eq1_mqtt_options,
    bytes: i64,
) -> eq1_status {
    with_options(options, |o| o.set_max_packet_size(bytes))
}

/// Turns TLS on for every broker. `ca_file`: PEM file of trusted CAs, or NULL for the
/// system's trust store. Hostname verification is on unless turned off. The file is only
/// checked for being readable here; it is parsed when the client connects.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `ca_file` is not valid UTF-8.
/// - `EQ1_STATUS_TLS_CONFIG` when `ca_file` cannot be read.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_client_cert`, `eq1_mqtt_options_set_tls_min_version`.
///
/// # Safety
/// `options` is NULL or live; `ca_file` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls(
    options: *mut eq1_mqtt_options,
    ca_file: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.enable_tls(unsafe { optional_c_str(ca_file, "CA file") }?)
    })
}

/// Client certificate and key files (PEM or DER). The key may be in any format
/// `eq1_mqtt_options_set_tls_client_cert_data` takes (PKCS#8, encrypted PKCS#8, traditional
/// RSA/EC, OpenSSL's traditional encryption); an encrypted one needs `key_password`,
/// otherwise pass NULL. Call after `eq1_mqtt_options_set_tls`. The files are only checked for
/// being readable here; they are parsed when the client connects, where a missing or wrong
/// password fails the connect with `EQ1_STATUS_TLS_KEY_PASSWORD` and an unreadable file with
/// `EQ1_STATUS_TLS_CONFIG`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options`, `cert_file` or `key_file` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when a path or `key_password` is not valid UTF-8.
/// - `EQ1_STATUS_TLS_CONFIG` when `cert_file` or `key_file` cannot be read.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls`.
///
/// # Safety
/// `options` is NULL or live; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_client_cert(
    options: *mut eq1_mqtt_options,
    cert_file: *const c_char,
    key_file: *const c_char,
    key_password: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract (three times).
        let cert = unsafe { c_str(cert_file, "certificate file") }?;
        // SAFETY: as above.
        let key = unsafe { c_str(key_file, "key file") }?;
        // SAFETY: as above.
        let password = unsafe { optional_c_str(key_password, "key password") }?;
        o.set_client_certificate(cert, key, password)
    })
}

/// Hostname verification (default on). Off still verifies the chain.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_insecure`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_verify_hostname(
    options: *mut eq1_mqtt_options,
    verify: bool,
) -> eq1_status {
    with_options(options, |o| o.set_verify_hostname(verify))
}

/// Accept any server certificate. For tests only: it removes TLS's protection.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_tls_verify_hostname`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_insecure(
    options: *mut eq1_mqtt_options,
    insecure: bool,
) -> eq1_status {
    with_options(options, |o| o.set_insecure(insecure))
}

/// Minimum TLS version: `EQ1_TLS_1_2` (12, default) or `EQ1_TLS_1_3` (13).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `version` is neither 12 nor 13.
/// - `EQ1_STATUS_INVALID_STATE` when TLS is not on yet (`eq1_mqtt_options_set_tls` first).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_tls_min_version(
    options: *mut eq1_mqtt_options,
    version: c_int,
) -> eq1_status {
    with_options(options, |o| {
        o.set_tls_min_version(match version {
            EQ1_TLS_1_2 => TlsVersion::V1_2,
            EQ1_TLS_1_3 => TlsVersion::V1_3,
            other => {
                return Err(crate::Error::InvalidArgument(format!(
                    "TLS version {other} is not supported; use 12 (TLS 1.2) or 13 (TLS 1.3)"
                )))
            }
        })
    })
}

/// Accepts a broker list that mixes brokers with and without TLS while credentials are set
/// (default false). Without it, `eq1_mqtt_client_new` refuses such options with
/// `EQ1_STATUS_TLS_CONFIG`: after a failover to a plaintext broker, the username and password
/// would be sent in clear.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_add_broker`, `eq1_mqtt_options_set_credentials`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_allow_plaintext_fallback(
    options: *mut eq1_mqtt_options,
    allow: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.allow_plaintext_fallback = allow;
        Ok(())
    })
}

/// Automatic reconnection after a lost connection (default on), with exponential backoff and
/// jitter between `min_delay_ms` (default 500) and `max_delay_ms` (default 30000). The delays
/// are checked also when `enabled` is false.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `min_delay_ms` is not positive or `max_delay_ms` is
///   below it.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_reconnect(
    options: *mut eq1_mqtt_options,
    enabled: bool,
    min_delay_ms: c_int,
    max_delay_ms: c_int,
) -> eq1_status {
    with_options(options, |o| {
        o.set_reconnect(enabled, min_delay_ms, max_delay_ms)
    })
}

/// Bounds of the outbox (publishes not yet sent, e.g. while disconnected), what to do when
/// it is full (`EQ1_QUEUE_REJECT_NEW` or `EQ1_QUEUE_DROP_OLDEST`), and whether publishing
/// before the first connect is allowed: those publishes are queued, and stay queued for the
/// next `eq1_mqtt_client_connect` when the first one fails.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `policy` is neither `EQ1_QUEUE_REJECT_NEW` nor
///   `EQ1_QUEUE_DROP_OLDEST`, or `max_messages` or `max_bytes` is below 1.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_publish` (`EQ1_STATUS_QUEUE_FULL`),
/// `eq1_mqtt_options_set_inbound_queue`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_offline_queue(
    options: *mut eq1_mqtt_options,
    max_messages: i64,
    max_bytes: i64,
    policy: c_int,
    queue_before_connect: bool,
) -> eq1_status {
    with_options(options, |o| {
        let policy = match policy {
            EQ1_QUEUE_REJECT_NEW => QueueFullPolicy::RejectNew,
            EQ1_QUEUE_DROP_OLDEST => QueueFullPolicy::DropOldest,
            other => {
                return Err(crate::Error::InvalidArgument(format!(
                    "queue policy {other} is neither EQ1_QUEUE_REJECT_NEW (0) nor EQ1_QUEUE_DROP_OLDEST (1)"
                )))
            }
        };
        o.set_offline_queue(max_messages, max_bytes, policy, queue_before_connect)
    })
}

/// Bounds the received messages waiting for callbacks (default 10,000 messages, 32 MiB),
/// both >= 1. When either is reached the library stops reading from the broker until the
/// callbacks catch up: TCP flow control (and, for QoS 1/2, the broker's inflight window) then
/// holds the rest at the broker. Keep-alive continues meanwhile. Messages held because no
/// callback takes them count too.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `max_messages` or `max_bytes` is below 1.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_offline_queue`, `eq1_mqtt_client_set_message_callback`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_inbound_queue(
    options: *mut eq1_mqtt_options,
    max_messages: i64,
    max_bytes: i64,
) -> eq1_status {
    with_options(options, |o| o.set_inbound_queue(max_messages, max_bytes))
}

/// `eq1_mqtt_options_set_persistence`: persistence off (the default): the outbox and the
/// in-flight window live in memory only and die with the process.
pub const EQ1_DURABILITY_NONE: c_int = 0;
/// `eq1_mqtt_options_set_persistence`: publish returns once the message is on disk
/// (fdatasync, group-committed across publishing threads). Survives power loss.
pub const EQ1_DURABILITY_SYNC: c_int = 1;
/// `eq1_mqtt_options_set_persistence`: publish returns once the message is written to the
/// operating system; the store syncs to disk every interval
/// (`eq1_mqtt_options_set_persistence_interval`). A crash or kill of the process loses
/// nothing publish accepted; power loss loses at most the last interval.
pub const EQ1_DURABILITY_BATCHED: c_int = 2;

/// Store and forward: keeps the client's session in `directory` (created if missing) so that
/// nothing publish accepted is lost when the process dies. Kept: every accepted QoS 1/2
/// publish until its flow completes (queued, in flight, the PUBREL stage of QoS 2), the
/// packet id of each QoS 2 message sent, received QoS 2 packet ids awaiting PUBREL, and the
/// client id the store belongs to (QoS 0 messages too with
/// `eq1_mqtt_options_set_persistence_limit`). A client created later on the same directory
/// and client id takes them back before it sends anything new: with a session the broker
/// kept (clean session off, session present) in-flight messages are resent with DUP (or their
/// PUBREL), otherwise as new publishes; queued ones follow in their original order. Each
/// restored message keeps its original token: its outcome reaches the delivery callback like
/// any other (see `eq1_mqtt_client_restored_count`). A user disconnect or freeing the
/// client keeps what is unacknowledged in the store for the next connect or the next run.
///
/// `durability`:
/// - `EQ1_DURABILITY_SYNC`: publish returns once the record is on disk: survives power loss.
/// - `EQ1_DURABILITY_BATCHED`: publish returns once the record is written to the operating
///   system: a process crash (even SIGKILL) loses nothing that publish returned; power loss
///   loses at most the last interval (`eq1_mqtt_options_set_persistence_interval`, default
///   100 ms).
/// - `EQ1_DURABILITY_NONE`: persistence off (`directory` may be NULL).
///
/// A store belongs to one client id and one process at a time: the client needs a client id
/// (`eq1_mqtt_options_set_client_id`), `eq1_mqtt_client_new` refuses a store of another client
/// id and a store another client or process holds open. Errors writing the store reach
/// `eq1_mqtt_client_publish` as its status (nothing is accepted that is not stored).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL, or `directory` is NULL and
///   `durability` is not `EQ1_DURABILITY_NONE`.
/// - `EQ1_STATUS_INVALID_UTF8` when `directory` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `durability` is none of the three, or `directory` is
///   empty.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_persistence_interval`,
/// `eq1_mqtt_options_set_persistence_limit`, `eq1_mqtt_client_restored_count`.
///
/// # Safety
/// `options` is NULL or live; `directory` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_persistence(
    options: *mut eq1_mqtt_options,
    directory: *const c_char,
    durability: c_int,
) -> eq1_status {
    with_options(options, |o| {
        let mode = match durability {
            EQ1_DURABILITY_NONE => None,
            EQ1_DURABILITY_SYNC => Some(crate::mqtt::options::PersistenceMode::Sync),
            EQ1_DURABILITY_BATCHED => Some(crate::mqtt::options::PersistenceMode::Batched),
            other => {
                return Err(crate::Error::InvalidArgument(format!(
                    "durability {other} is none of EQ1_DURABILITY_NONE (0), EQ1_DURABILITY_SYNC (1), EQ1_DURABILITY_BATCHED (2)"
                )))
            }
        };
        let directory = match mode {
            None => "",
            // SAFETY: per this function's contract.
            Some(_) => unsafe { c_str(directory, "directory") }?,
        };
        o.set_persistence(directory, mode)
    })
}

/// How often the `EQ1_DURABILITY_BATCHED` store syncs to disk, in milliseconds (1 .. 60,000;
/// default 100): what power loss can cost at most. No effect in the other modes.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `interval_ms` is outside 1 .. 60,000.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_persistence`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_persistence_interval(
    options: *mut eq1_mqtt_options,
    interval_ms: c_int,
) -> eq1_status {
    with_options(options, |o| {
        if interval_ms < 1 {
            return Err(crate::Error::InvalidArgument(format!(
                "the persistence interval of {interval_ms} ms is outside 1 .. 60,000 ms"
            )));
        }
        o.set_persistence_interval(std::time::Duration::from_millis(interval_ms as u64))
    })
}

/// Bounds the store on disk to `max_bytes` (0: unbounded, the default; otherwise at least
/// 65,536) and chooses whether QoS 0 messages waiting in the outbox are kept too
/// (`keep_qos0`, default false; a QoS 0 message leaves the store when it is sent). A full
/// store follows the outbox's policy (`eq1_mqtt_options_set_offline_queue`):
/// `EQ1_QUEUE_REJECT_NEW` refuses the new publish with `EQ1_STATUS_STORE_FULL`;
/// `EQ1_QUEUE_DROP_OLDEST` drops the oldest stored message not yet sent (its delivery
/// callback reports `EQ1_STATUS_DROPPED`) to make room, and refuses only when every stored
/// message is in flight.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `max_bytes` is between 1 and 65,535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_persistence`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_persistence_limit(
    options: *mut eq1_mqtt_options,
    max_bytes: u64,
    keep_qos0: bool,
) -> eq1_status {
    with_options(options, |o| o.set_persistence_limit(max_bytes, keep_qos0))
}
