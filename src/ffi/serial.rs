//! `eq1_serial_options` and `eq1_serial_client`: the C view of `protocols::serial`. Every
//! client function may be called from any thread (calls on one port take turns).

use crate::core::error::{Error, Result};
use crate::ffi::boundary::timeout_ms;
use crate::ffi::boundary::{bytes, c_str, call, call_value, handle, handle_mut, out_param};
use crate::ffi::protocol_events::{eq1_protocol_event_cb, set_connection_callback};
use crate::ffi::status::eq1_status;
use crate::protocols::serial::{SerialClient, SerialFlowControl, SerialOptions, SerialParity};
use std::ffi::{c_char, c_int, c_void};

/// Opaque serial port options. Not thread-safe: configure from one thread.
pub struct eq1_serial_options {
    inner: SerialOptions,
}

/// Opaque serial port client. Thread-safe.
pub struct eq1_serial_client {
    client: SerialClient,
}

/// `eq1_serial_options_set_line` parity: none.
pub const EQ1_SERIAL_PARITY_NONE: c_int = 0;
/// `eq1_serial_options_set_line` parity: odd.
pub const EQ1_SERIAL_PARITY_ODD: c_int = 1;
/// `eq1_serial_options_set_line` parity: even.
pub const EQ1_SERIAL_PARITY_EVEN: c_int = 2;
/// `eq1_serial_options_set_flow_control`: none.
pub const EQ1_SERIAL_FLOW_NONE: c_int = 0;
/// `eq1_serial_options_set_flow_control`: software (XON/XOFF).
pub const EQ1_SERIAL_FLOW_SOFTWARE: c_int = 1;
/// `eq1_serial_options_set_flow_control`: hardware (RTS/CTS).
pub const EQ1_SERIAL_FLOW_HARDWARE: c_int = 2;

/// Counters since the client was created (`eq1_serial_client_get_stats`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct eq1_serial_stats {
    /// `eq1_serial_client_request` calls.
    pub requests: u64,
    /// Requests that failed (time-outs included).
    pub failures: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

fn with_options(
    options: *mut eq1_serial_options,
    body: impl FnOnce(&mut SerialOptions) -> Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or live options, per the functions' contracts.
        let options = unsafe { handle_mut(options, "options") }?;
        let mut changed = options.inner.clone();
        body(&mut changed)?;
        changed.check()?;
        options.inner = changed;
        Ok(())
    })
}

fn with_client(
    client: *const eq1_serial_client,
    body: impl FnOnce(&SerialClient) -> Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or a live client, per the functions' contracts.
        let client = unsafe { handle(client, "client") }?;
        body(&client.client)
    })
}

/// Copies what was received into the caller's buffer.
///
/// # Safety
/// `buf` NULL or writable for `buf_len` bytes; `out_len` NULL or writable.
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
    let data = receive(buf_len)?;
    let len = data.len().min(buf_len);
    // SAFETY: `buf` writable for `buf_len` >= `len` bytes; distinct regions.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, len) };
    *out_len = len;
    Ok(())
}

/// ==========================================================================================
/// Section: Serial
///
/// A serial line (RS-232/485 adapter, pseudo-terminal): raw bytes in both directions, a
/// receive returning what has arrived within its timeout.
/// ==========================================================================================
///
/// New options for the device `path` (e.g. "/dev/ttyUSB0") at `baud_rate`: 8 data bits, no
/// parity, 1 stop bit, no flow control, read timeout 1 s.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success; `*out` is the options, to free with `eq1_serial_options_free`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `path` or `out` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `path` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `path` is empty or `baud_rate` is 0.
///
/// # Safety
/// `path` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_options_new(
    path: *const c_char,
    baud_rate: u32,
    out: *mut *mut eq1_serial_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: per this function's contract.
        let inner = SerialOptions::new(unsafe { c_str(path, "path") }?, baud_rate);
        inner.check()?;
        *out = Box::into_raw(Box::new(eq1_serial_options { inner }));
        Ok(())
    })
}

/// Releases options. NULL is a no-op.
///
/// Returns: nothing.
///
/// # Safety
/// `options` NULL or from `eq1_serial_options_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_options_free(options: *mut eq1_serial_options) {
    call_value((), || {
        if !options.is_null() {
            // SAFETY: created by Box::into_raw in eq1_serial_options_new; released once.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// The character format: `data_bits` 5..8, `parity` one of `EQ1_SERIAL_PARITY_NONE`,
/// `EQ1_SERIAL_PARITY_ODD`, `EQ1_SERIAL_PARITY_EVEN`, `stop_bits` 1 or 2.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when a value is outside its range.
///
/// # Safety
/// `options` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_options_set_line(
    options: *mut eq1_serial_options,
    data_bits: c_int,
    parity: c_int,
    stop_bits: c_int,
) -> eq1_status {
    with_options(options, |o| {
        o.data_bits = u8::try_from(data_bits).unwrap_or(0);
        o.stop_bits = u8::try_from(stop_bits).unwrap_or(0);
        o.parity = match parity {
            EQ1_SERIAL_PARITY_NONE => SerialParity::None,
            EQ1_SERIAL_PARITY_ODD => SerialParity::Odd,
            EQ1_SERIAL_PARITY_EVEN => SerialParity::Even,
            other => return Err(Error::InvalidArgument(format!("unknown parity {other}"))),
        };
        Ok(())
    })
}

/// Flow control: `EQ1_SERIAL_FLOW_NONE`, `EQ1_SERIAL_FLOW_SOFTWARE` or
/// `EQ1_SERIAL_FLOW_HARDWARE`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `flow` is unknown.
///
/// # Safety
/// `options` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_options_set_flow_control(
    options: *mut eq1_serial_options,
    flow: c_int,
) -> eq1_status {
    with_options(options, |o| {
        o.flow_control = match flow {
            EQ1_SERIAL_FLOW_NONE => SerialFlowControl::None,
            EQ1_SERIAL_FLOW_SOFTWARE => SerialFlowControl::Software,
            EQ1_SERIAL_FLOW_HARDWARE => SerialFlowControl::Hardware,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown flow control {other}"
                )))
            }
        };
        Ok(())
    })
}

/// A client for the port described by `options` (copied), not opened yet.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success; `*out` is the client, to free with `eq1_serial_client_free`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `out` is NULL.
///
/// # Safety
/// `options` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_new(
    options: *const eq1_serial_options,
    out: *mut *mut eq1_serial_client,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: per this function's contract.
        let options = unsafe { handle(options, "options") }?;
        let client = SerialClient::new(options.inner.clone())?;
        *out = Box::into_raw(Box::new(eq1_serial_client { client }));
        Ok(())
    })
}

/// Closes the port (if open) and releases the client. NULL is a no-op. No connection callback
/// runs after it returns (one running is waited for, queued events are dropped).
///
/// Returns:
/// - `EQ1_STATUS_OK` (also for NULL).
/// - `EQ1_STATUS_CALLED_FROM_CALLBACK` inside the client's own connection callback; the client
///   stays valid then.
///
/// # Safety
/// `client` NULL or from `eq1_serial_client_new`, no call on it running or after.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_free(client: *mut eq1_serial_client) -> eq1_status {
    call(|| {
        if !client.is_null() {
            // SAFETY: non-NULL and live per this function's contract.
            unsafe { &*client }.client.events().shutdown()?;
            // SAFETY: created by Box::into_raw in eq1_serial_client_new; released once.
            drop(unsafe { Box::from_raw(client) });
        }
        Ok(())
    })
}

/// Sets (or with NULL removes) the connection callback: opened (`eq1_serial_client_connect`), lost (a read
/// or write failed: the port is closed, connect opens it again), disconnected
/// (`eq1_serial_client_disconnect`). It runs on
/// the client's dispatcher thread (started by the first callback set, joined by
/// `eq1_serial_client_free`), never on the library's I/O thread nor on the calling thread, one event at
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
pub unsafe extern "C" fn eq1_serial_client_set_connection_callback(
    client: *const eq1_serial_client,
    callback: eq1_protocol_event_cb,
    user_data: *mut c_void,
) -> eq1_status {
    // SAFETY: per this function's contract.
    unsafe { set_connection_callback(client, |c| c.client.events(), callback, user_data) }
}

/// Opens and configures the device.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_SERIAL_ERROR` when the device cannot be opened or configured (the detail
///   names the device and the cause).
///
/// # Safety
/// `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_connect(client: *const eq1_serial_client) -> eq1_status {
    with_client(client, |c| c.connect())
}

/// Closes the device.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success (also when not open).
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
///
/// # Safety
/// `client` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_disconnect(
    client: *const eq1_serial_client,
) -> eq1_status {
    with_client(client, |c| {
        c.disconnect();
        Ok(())
    })
}

/// Writes `len` bytes.
///
/// Returns:
/// - `EQ1_STATUS_OK` when all were written.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL, or `data` NULL with a non-zero `len`.
/// - `EQ1_STATUS_NOT_CONNECTED` when the device is not open.
/// - `EQ1_STATUS_SERIAL_ERROR` when the write failed.
///
/// # Safety
/// `client` NULL or live; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_send(
    client: *const eq1_serial_client,
    data: *const u8,
    len: usize,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        c.send(unsafe { bytes(data, len, "data") }?)
    })
}

/// Reads what has arrived, up to `buf_len` bytes, waiting up to `timeout_ms` for the first.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success; `*out_len` bytes are in `buf`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client`, `buf` or `out_len` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `buf_len` is 0 or `timeout_ms` negative.
/// - `EQ1_STATUS_TIMEOUT` when nothing arrived in time.
/// - `EQ1_STATUS_NOT_CONNECTED` when the device is not open.
/// - `EQ1_STATUS_SERIAL_ERROR` when the read failed.
///
/// # Safety
/// `client` NULL or live; `buf` NULL or writable for `buf_len`; `out_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_receive(
    client: *const eq1_serial_client,
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

/// Writes `data`, then reads its answer as `eq1_serial_client_receive`; requests from several
/// threads take turns.
///
/// Returns: as `eq1_serial_client_send` and `eq1_serial_client_receive`.
///
/// # Safety
/// As for `eq1_serial_client_send` and `eq1_serial_client_receive`.
#[no_mangle]
pub unsafe extern "C" fn eq1_serial_client_request(
    client: *const eq1_serial_client,
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
pub unsafe extern "C" fn eq1_serial_client_get_stats(
    client: *const eq1_serial_client,
    out: *mut eq1_serial_stats,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, eq1_serial_stats::default(), "out (stats)") }?;
        let s = c.stats();
        *out = eq1_serial_stats {
            requests: s.requests,
            failures: s.failures,
            timeouts: s.timeouts,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
        };
        Ok(())
    })
}
