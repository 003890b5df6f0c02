//! `eq1_tcp_options` and `eq1_tcp_client`: the C view of `protocols::tcp`. Every client
//! function may be called from any thread; `eq1_tcp_client_request` makes its send and receive
//! one exchange (other threads' requests wait for it).

use crate::core::error::{Error, Result};
use crate::core::tls::{ClientCertificate, ClientIdentity, TlsOptions, TrustSource};
use crate::ffi::boundary::{bytes, c_str, call, call_value, handle, handle_mut, optional_c_str};
use crate::ffi::boundary::{out_param, timeout_ms};
use crate::ffi::protocol_events::{eq1_protocol_event_cb, set_connection_callback};
use crate::ffi::status::eq1_status;
use crate::protocols::framing::Framing;
use crate::protocols::tcp::{TcpClient, TcpOptions, LARGEST_MAX_FRAME};
use std::ffi::{c_char, c_int, c_void};

/// Opaque TCP client options. Not thread-safe: configure from one thread.
pub struct eq1_tcp_options {
    inner: TcpOptions,
}

/// Opaque TCP request/response client. Thread-safe.
pub struct eq1_tcp_client {
    client: TcpClient,
}

/// `eq1_tcp_options_set_framing`: no framing, the raw byte stream (a receive returns what has
/// arrived, up to the buffer's size).
pub const EQ1_TCP_FRAMING_RAW: c_int = 0;
/// `eq1_tcp_options_set_framing`: each message preceded by its length, a big-endian u16.
pub const EQ1_TCP_FRAMING_LENGTH_U16: c_int = 1;
/// `eq1_tcp_options_set_framing`: each message preceded by its length, a big-endian u32.
pub const EQ1_TCP_FRAMING_LENGTH_U32: c_int = 2;
/// `eq1_tcp_options_set_framing`: each message followed by a delimiter (e.g. "\r\n").
pub const EQ1_TCP_FRAMING_DELIMITER: c_int = 3;

/// Counters since the client was created (`eq1_tcp_client_get_stats`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct eq1_tcp_stats {
    /// `eq1_tcp_client_request` calls.
    pub requests: u64,
    /// Requests that failed (time-outs included).
    pub failures: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Connections opened again after the first.
    pub reconnects: u64,
    /// Requests sent a second time on a new connection (automatic reconnect), because the
    /// first connection broke before any byte of the answer arrived.
    pub retries: u64,
}

fn with_options(
    options: *mut eq1_tcp_options,
    body: impl FnOnce(&mut TcpOptions) -> Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or live options, per the functions' contracts.
        let options = unsafe { handle_mut(options, "options") }?;
        let mut changed = options.inner.clone();
        body(&mut changed)?;
        changed.check_limits()?;
        options.inner = changed;
        Ok(())
    })
}

fn with_client(
    client: *const eq1_tcp_client,
    body: impl FnOnce(&TcpClient) -> Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or a live client, per the functions' contracts.
        let client = unsafe { handle(client, "client") }?;
        body(&client.client)
    })
}

/// Copies a received message into the caller's buffer.
///
/// # Safety
/// `buf` is NULL or writable for `buf_len` bytes; `out_len` NULL or writable.
unsafe fn deliver(
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
    receive: impl FnOnce(usize) -> Result<Vec<u8>>,
) -> Result<()> {
    // SAFETY: per the contract.
    let out_len = unsafe { out_param(out_len, 0, "out_len") }?;
    if buf.is_null() {
        return Err(Error::NullArgument("buf is NULL".into()));
    }
    if buf_len == 0 {
        return Err(Error::InvalidArgument("buf_len is 0".into()));
    }
    let message = receive(buf_len)?;
    let len = message.len().min(buf_len);
    // SAFETY: `buf` is writable for `buf_len` >= `len` bytes; the regions are distinct.
    unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), buf, len) };
    *out_len = len;
    Ok(())
}

/// ==========================================================================================
/// Section: TCP
///
/// A TCP (or TLS) request/response client: connect with a timeout, send and receive messages
/// in one of the framing modes, request = send then receive one message. With automatic
/// reconnect a call that finds the connection lost reopens it (with backoff, within the call's
/// timeout), and a request whose connection broke before its answer began is sent again once
/// (see `eq1_tcp_options_set_auto_reconnect` for the delivery semantics). Receiving is bounded
/// by the maximum frame size, whatever the peer sends.
/// ==========================================================================================
///
/// New options: host localhost, port 0 (set one with `eq1_tcp_options_set_endpoint`), plain
/// TCP, connect timeout 10 s, no automatic reconnect, raw framing, maximum frame 16 MiB.
///
/// Returns: the new options, to free with `eq1_tcp_options_free`; NULL only on a bug in the
/// library (a caught panic).
#[no_mangle]
pub extern "C" fn eq1_tcp_options_new() -> *mut eq1_tcp_options {
    call_value(std::ptr::null_mut(), || {
        let mut inner = TcpOptions::new("localhost", 1);
        inner.port = 0;
        Box::into_raw(Box::new(eq1_tcp_options { inner }))
    })
}

/// Releases options. NULL is a no-op. A client made from them keeps its own copy.
///
/// Returns: nothing.
///
/// # Safety
/// `options` is NULL or came from `eq1_tcp_options_new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_free(options: *mut eq1_tcp_options) {
    call_value((), || {
        if !options.is_null() {
            // SAFETY: created by Box::into_raw in eq1_tcp_options_new; released once.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// The server to connect to.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `host` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `host` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `host` is empty or `port` is 0.
///
/// # Safety
/// `options` NULL or live; `host` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_endpoint(
    options: *mut eq1_tcp_options,
    host: *const c_char,
    port: u16,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.host = unsafe { c_str(host, "host") }?.to_owned();
        o.port = port;
        o.check()
    })
}

/// How long `eq1_tcp_client_connect` (and a reconnect) may take at most, in milliseconds.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is not positive.
///
/// # Safety
/// `options` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_connect_timeout(
    options: *mut eq1_tcp_options,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_options(options, |o| {
        if timeout_ms_value <= 0 {
            return Err(Error::InvalidArgument(format!(
                "connect timeout {timeout_ms_value} ms is not positive"
            )));
        }
        o.connect_timeout = timeout_ms(timeout_ms_value, "connect")?;
        Ok(())
    })
}

/// Automatic reconnect: when on, a send, receive or request that finds the connection lost
/// (after a successful `eq1_tcp_client_connect`, until `eq1_tcp_client_disconnect`) reopens it
/// first, retrying with exponential backoff from `min_delay_ms` to `max_delay_ms` (with
/// jitter) within the call's own timeout.
///
/// Delivery semantics:
/// - Before writing, `eq1_tcp_client_send` and `eq1_tcp_client_request` check the idle
///   connection without waiting: when the peer has closed or reset it (FIN, RST or TLS
///   close_notify already received), it is reopened and the call goes out on the new
///   connection. Without automatic reconnect that call fails with `EQ1_STATUS_CONNECTION_LOST`
///   (and later ones with `EQ1_STATUS_NOT_CONNECTED`).
/// - A request whose connection breaks while writing, or closes before any byte of its answer
///   arrived, is sent once more on a new connection (counted in `eq1_tcp_stats.retries`). This
///   is at-least-once delivery: when the server had processed the request before the cut (and
///   its answer was lost with the connection), it receives the request twice. Requests that
///   must not run twice need an idempotency key of the application's own, or no automatic
///   reconnect.
/// - A request whose answer had begun to arrive when the connection broke is not sent again:
///   it fails with `EQ1_STATUS_CONNECTION_LOST`.
/// - `eq1_tcp_client_send` and `eq1_tcp_client_receive` (the raw stream) are never sent or
///   read again; a receive that meets the loss fails with `EQ1_STATUS_CONNECTION_LOST`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when a delay is not positive or `min_delay_ms` >
///   `max_delay_ms`.
///
/// # Safety
/// `options` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_auto_reconnect(
    options: *mut eq1_tcp_options,
    enabled: bool,
    min_delay_ms: c_int,
    max_delay_ms: c_int,
) -> eq1_status {
    with_options(options, |o| {
        o.auto_reconnect = enabled;
        o.reconnect_min = timeout_ms(min_delay_ms, "reconnect minimum")?;
        o.reconnect_max = timeout_ms(max_delay_ms, "reconnect maximum")?;
        Ok(())
    })
}

/// The framing of messages: `EQ1_TCP_FRAMING_RAW`, `EQ1_TCP_FRAMING_LENGTH_U16`,
/// `EQ1_TCP_FRAMING_LENGTH_U32` or `EQ1_TCP_FRAMING_DELIMITER` with `delimiter` (`len` bytes,
/// copied; ignored by the other modes, may be NULL there). A message to send that contains the
/// delimiter is refused.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL, or `delimiter` is NULL with a
///   non-zero `len`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `mode` is unknown, or the delimiter mode has an empty
///   delimiter.
///
/// # Safety
/// `options` NULL or live; `delimiter` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_framing(
    options: *mut eq1_tcp_options,
    mode: c_int,
    delimiter: *const u8,
    len: usize,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let delimiter = unsafe { bytes(delimiter, len, "delimiter") }?;
        o.framing = match mode {
            EQ1_TCP_FRAMING_RAW => Framing::Raw,
            EQ1_TCP_FRAMING_LENGTH_U16 => Framing::LengthU16,
            EQ1_TCP_FRAMING_LENGTH_U32 => Framing::LengthU32,
            EQ1_TCP_FRAMING_DELIMITER => Framing::from_name("delimiter", Some(delimiter))?,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown framing mode {other}"
                )))
            }
        };
        Ok(())
    })
}

/// The largest message accepted in either direction (framed modes; a raw receive returns at
/// most this many bytes). A peer announcing a larger frame, or sending no delimiter within it,
/// makes the receive fail with `EQ1_STATUS_FRAME_TOO_LARGE` and closes the connection.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `max` is 0 or above 256 MiB.
///
/// # Safety
/// `options` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_max_frame(
    options: *mut eq1_tcp_options,
    max: usize,
) -> eq1_status {
    with_options(options, |o| {
        if max == 0 || max > LARGEST_MAX_FRAME {
            return Err(Error::InvalidArgument(format!(
                "maximum frame {max} is outside 1..{LARGEST_MAX_FRAME}"
            )));
        }
        o.max_frame = max;
        Ok(())
    })
}

/// TLS on (through the library's TLS, rustls): `ca_file` is a PEM file of trusted CAs (NULL:
/// the system's trust store); `verify_hostname` false accepts a certificate naming another
/// host (still checking its chain).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `ca_file` is not valid UTF-8.
///
/// # Safety
/// `options` NULL or live; `ca_file` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_tls(
    options: *mut eq1_tcp_options,
    ca_file: *const c_char,
    verify_hostname: bool,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let ca = unsafe { optional_c_str(ca_file, "ca_file") }?;
        let mut tls = o.tls.clone().unwrap_or_default();
        tls.ca = ca.map(|path| TrustSource::File(path.into()));
        tls.verify_hostname = verify_hostname;
        o.tls = Some(tls);
        Ok(())
    })
}

/// A client certificate for TLS (turns TLS on): PEM certificate chain and PEM key files, the
/// key optionally encrypted with `key_password` (NULL: not encrypted).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options`, `cert_file` or `key_file` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when a string is not valid UTF-8.
///
/// # Safety
/// `options` NULL or live; the strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_options_set_tls_client_cert(
    options: *mut eq1_tcp_options,
    cert_file: *const c_char,
    key_file: *const c_char,
    key_password: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let cert = unsafe { c_str(cert_file, "cert_file") }?;
        // SAFETY: per this function's contract.
        let key = unsafe { c_str(key_file, "key_file") }?;
        // SAFETY: per this function's contract.
        let password = unsafe { optional_c_str(key_password, "key_password") }?;
        let mut tls: TlsOptions = o.tls.clone().unwrap_or_default();
        tls.client_identity = Some(ClientIdentity::Files(ClientCertificate {
            cert_file: cert.into(),
            key_file: key.into(),
            key_password: password.map(str::to_owned),
        }));
        o.tls = Some(tls);
        Ok(())
    })
}

/// A client from `options` (copied; they may be freed afterwards), not connected yet. TLS
/// files are read here.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success; `*out` is the client, to free with `eq1_tcp_client_free`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `out` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when no port was set.
/// - `EQ1_STATUS_TLS_CONFIG` when a TLS file cannot be read or parsed.
///
/// # Safety
/// `options` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_new(
    options: *const eq1_tcp_options,
    out: *mut *mut eq1_tcp_client,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: per this function's contract.
        let options = unsafe { handle(options, "options") }?;
        let client = TcpClient::new(options.inner.clone())?;
        *out = Box::into_raw(Box::new(eq1_tcp_client { client }));
        Ok(())
    })
}

/// Closes the connection (if any) and releases the client. NULL is a no-op. No connection
/// callback runs after it returns (one running is waited for, queued events are dropped).
///
/// Returns:
/// - `EQ1_STATUS_OK` (also for NULL).
/// - `EQ1_STATUS_CALLED_FROM_CALLBACK` inside the client's own connection callback; the client
///   stays valid then.
///
/// # Safety
/// `client` NULL or from `eq1_tcp_client_new`, no call on it running or after.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_free(client: *mut eq1_tcp_client) -> eq1_status {
    call(|| {
        if !client.is_null() {
            // SAFETY: non-NULL and live per this function's contract.
            unsafe { &*client }.client.events().shutdown()?;
            // SAFETY: created by Box::into_raw in eq1_tcp_client_new; released once.
            let owned = unsafe { Box::from_raw(client) };
            let _ = owned.client.disconnect();
        }
        Ok(())
    })
}

/// Sets (or with NULL removes) the connection callback: connected (`eq1_tcp_client_connect`), lost (the
/// peer closed or reset it, a send or receive failed or timed out), reconnected (automatic
/// reconnect), disconnected (`eq1_tcp_client_disconnect`). It runs on
/// the client's dispatcher thread (started by the first callback set, joined by
/// `eq1_tcp_client_free`), never on the library's I/O thread nor on the calling thread, one event at
/// a time, in order. `user_data` is passed back to it and must stay valid until the callback
/// is replaced or removed, or the client is freed. Events that happened before are not replayed.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when the client is being freed.
/// - `EQ1_STATUS_INTERNAL` when the dispatcher thread cannot start, or on a bug in the library
///   (a caught panic).
///
/// See also: `eq1_protocol_event_cb`, `eq1_protocol_event`.
///
/// # Safety
/// `client` NULL or live; `callback` NULL or a function that may be called from another thread.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_set_connection_callback(
    client: *const eq1_tcp_client,
    callback: eq1_protocol_event_cb,
    user_data: *mut c_void,
) -> eq1_status {
    // SAFETY: per this function's contract.
    unsafe { set_connection_callback(client, |c| c.client.events(), callback, user_data) }
}

/// Connects (DNS, TCP, TLS handshake) within `timeout_ms` (and the connect timeout), replacing
/// the current connection if any.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_TIMEOUT`, `EQ1_STATUS_CONNECTION_REFUSED`, `EQ1_STATUS_DNS_FAILED`,
///   `EQ1_STATUS_NETWORK_ERROR`: the connection could not be opened.
/// - `EQ1_STATUS_TLS_ERROR`, `EQ1_STATUS_TLS_UNKNOWN_ISSUER`,
///   `EQ1_STATUS_TLS_HOSTNAME_MISMATCH`, `EQ1_STATUS_TLS_CERT_EXPIRED`,
///   `EQ1_STATUS_TLS_CLIENT_CERT_REJECTED`: the TLS handshake failed.
///
/// # Safety
/// `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_connect(
    client: *const eq1_tcp_client,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_client(client, |c| {
        c.connect(timeout_ms(timeout_ms_value, "connect")?)
    })
}

/// Closes the connection; automatic reconnect stops until the next connect.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success (also when not connected).
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
///
/// # Safety
/// `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_disconnect(client: *const eq1_tcp_client) -> eq1_status {
    with_client(client, |c| c.disconnect())
}

/// Returns: true while connected (as far as the client knows: a loss is seen by the next
/// call); false for NULL.
///
/// # Safety
/// `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_is_connected(client: *const eq1_tcp_client) -> bool {
    call_value(false, || {
        // SAFETY: per this function's contract.
        unsafe { handle(client, "client") }.is_ok_and(|c| c.client.is_connected())
    })
}

/// Sends one message (`len` bytes, framed per the options) within `timeout_ms`.
///
/// Returns:
/// - `EQ1_STATUS_OK` when all of it was written.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL, or `data` is NULL with a non-zero `len`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative, or the message contains the
///   delimiter (delimiter framing).
/// - `EQ1_STATUS_PAYLOAD_TOO_LARGE` when the message is above the maximum frame (or a u16
///   length).
/// - `EQ1_STATUS_NOT_CONNECTED` when not connected (and not reconnecting).
/// - `EQ1_STATUS_CONNECTION_LOST` when the connection broke, or (without automatic reconnect)
///   the peer had closed or reset it while it was idle; `EQ1_STATUS_TIMEOUT` when the
///   peer did not take the bytes in time (the connection is closed: it is out of step).
/// - the statuses of `eq1_tcp_client_connect` when an automatic reconnect failed.
///
/// # Safety
/// `client` NULL or live; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_send(
    client: *const eq1_tcp_client,
    data: *const u8,
    len: usize,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let data = unsafe { bytes(data, len, "data") }?;
        c.send(data, timeout_ms(timeout_ms_value, "send")?)
    })
}

/// Receives one message (framed modes) or what has arrived, up to `buf_len` bytes (raw), within
/// `timeout_ms`, into `buf`; `*out_len` is its length. A framed message larger than `buf_len`
/// is kept for the next receive (with a larger buffer) and this call fails.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client`, `buf` or `out_len` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `buf_len` is 0 or `timeout_ms` negative.
/// - `EQ1_STATUS_TIMEOUT` when no (whole) message came in time; the connection stays, a
///   partial frame is kept.
/// - `EQ1_STATUS_PAYLOAD_TOO_LARGE` when the next message is larger than `buf_len` (the detail
///   names its size).
/// - `EQ1_STATUS_FRAME_TOO_LARGE` when the peer sent a frame above the maximum frame (the
///   connection is closed).
/// - `EQ1_STATUS_CONNECTION_LOST` when the peer closed or the connection broke;
///   `EQ1_STATUS_NOT_CONNECTED` when not connected.
///
/// # Safety
/// `client` NULL or live; `buf` NULL or writable for `buf_len` bytes; `out_len` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_receive(
    client: *const eq1_tcp_client,
    timeout_ms_value: c_int,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> eq1_status {
    with_client(client, |c| {
        let timeout = timeout_ms(timeout_ms_value, "receive")?;
        // SAFETY: per this function's contract.
        unsafe { deliver(buf, buf_len, out_len, |max| c.receive(max, timeout)) }
    })
}

/// Sends `data` and receives one message as its answer into `buf` (as
/// `eq1_tcp_client_receive`), all within `timeout_ms`. Requests from several threads take
/// turns. A timed-out request closes the connection (its late answer would be taken for the
/// next request's); with automatic reconnect the next request reopens it. With automatic
/// reconnect a request whose connection broke before any byte of its answer arrived is sent
/// once more on a new connection: the server may receive it twice (at least once, see
/// `eq1_tcp_options_set_auto_reconnect`).
///
/// Returns: as `eq1_tcp_client_send` and `eq1_tcp_client_receive`.
///
/// # Safety
/// As for `eq1_tcp_client_send` and `eq1_tcp_client_receive`.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_request(
    client: *const eq1_tcp_client,
    data: *const u8,
    len: usize,
    timeout_ms_value: c_int,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let data = unsafe { bytes(data, len, "data") }?;
        let timeout = timeout_ms(timeout_ms_value, "request")?;
        // SAFETY: per this function's contract.
        unsafe { deliver(buf, buf_len, out_len, |max| c.request(data, max, timeout)) }
    })
}

/// The client's counters into `*out`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `out` is NULL.
///
/// # Safety
/// `client` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_tcp_client_get_stats(
    client: *const eq1_tcp_client,
    out: *mut eq1_tcp_stats,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, eq1_tcp_stats::default(), "out (stats)") }?;
        let s = c.stats();
        *out = eq1_tcp_stats {
            requests: s.requests,
            failures: s.failures,
            timeouts: s.timeouts,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            reconnects: s.reconnects,
            retries: s.retries,
        };
        Ok(())
    })
}
