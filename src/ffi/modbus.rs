//! `eq1_modbus_*`: the C face of `modbus::Client`, a Modbus client over TCP or RTU (serial).
//! Every address, quantity, buffer and unit id is checked here against the protocol's limits
//! before anything is sent.

use crate::core::error::{Error, Result};
use crate::ffi::boundary::{c_str, call, call_value, handle, handle_mut, out_param};
use crate::ffi::protocol_events::{eq1_protocol_event_cb, set_connection_callback};
use crate::ffi::status::eq1_status;
use crate::modbus::limits::{
    check_range, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_READ_WRITE_REGISTERS, MAX_WRITE_BITS,
    MAX_WRITE_REGISTERS,
};
use crate::modbus::{CallOptions, Client, Options, Parity, SerialSettings, MAX_IN_FLIGHT};
use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

/// Opaque Modbus client options. Not thread-safe: configure from one thread.
pub struct eq1_modbus_options {
    inner: Options,
}

/// Opaque Modbus client. Thread-safe. Modbus TCP pipelines the calls of several threads on one
/// connection: up to `eq1_modbus_options_set_max_in_flight` requests (default 1, serialized; raise it for servers known to pipeline) are on the
/// wire at once, each with its own MBAP transaction id; each response is matched to its
/// request by that id and checked (protocol id 0, unit id and function code of the request).
/// RTU serializes calls: one request on the line at a time.
pub struct eq1_modbus_client {
    client: Client,
}

/// Per-call overrides of the client's defaults; pass NULL for "all defaults". A field set to
/// -1 keeps the client's default (`eq1_modbus_options_set_timeout` / `_set_retries`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eq1_modbus_call_options {
    /// Time for one attempt (connecting when needed, the request, its response), in ms; -1:
    /// the client's default.
    pub timeout_ms: c_int,
    /// Attempts after the first when one times out, loses its connection or gets a bad frame;
    /// -1: the client's default. Exceptions (the server's answer) are never retried.
    pub retries: c_int,
}

/// Counters since the client was created (`eq1_modbus_client_get_stats`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct eq1_modbus_stats {
    /// Calls made (each once, however many attempts it took).
    pub requests: u64,
    /// Calls that failed (exception, timeout, lost connection, bad frame).
    pub failures: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts whose response did not decode (bad CRC, framing, mismatched header).
    pub bad_frames: u64,
    /// Exception responses received.
    pub exceptions: u64,
    /// Attempts repeated after a failure.
    pub retries: u64,
    /// Connections opened (the first and each reconnection).
    pub connects: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Modbus TCP: responses that came after their request timed out, recognized by their
    /// transaction id and discarded.
    pub late_responses: u64,
}

/// `eq1_modbus_options_set_serial` parity: none.
pub const EQ1_MODBUS_PARITY_NONE: c_int = 0;
/// `eq1_modbus_options_set_serial` parity: odd.
pub const EQ1_MODBUS_PARITY_ODD: c_int = 1;
/// `eq1_modbus_options_set_serial` parity: even.
pub const EQ1_MODBUS_PARITY_EVEN: c_int = 2;
/// The unit argument of a call: use the options' default unit id.
pub const EQ1_MODBUS_DEFAULT_UNIT: c_int = -1;

/// ==========================================================================================
/// Section: Modbus
///
/// A Modbus client over TCP or RTU (a serial line). Options are made and configured first
/// (`eq1_modbus_options_*`); the client copies them. Every call names its unit id (or
/// `EQ1_MODBUS_DEFAULT_UNIT`) and takes an optional `eq1_modbus_call_options` for its timeout
/// and retries. Exception responses have their own statuses
/// (`EQ1_STATUS_MODBUS_ILLEGAL_FUNCTION` .. `EQ1_STATUS_MODBUS_GATEWAY_TARGET_FAILED`); a
/// response that does not decode is `EQ1_STATUS_MODBUS_BAD_FRAME`. Limits checked before
/// sending: 1..2000 coils or discrete inputs read, 1..1968 coils written, 1..125 registers
/// read, 1..123 written, 1..125 read / 1..121 written by read/write multiple registers, and
/// address + quantity at most 65536. Out-buffers are written only on success.
///
/// Threads: Modbus TCP pipelines requests by transaction id (up to
/// `eq1_modbus_options_set_max_in_flight` at once); a response with a transaction id no request
/// has, a protocol id other than 0, a length outside 2..254, or a unit id or function code that
/// does not answer its request closes the connection, and the calls waiting on it fail with
/// `EQ1_STATUS_MODBUS_BAD_FRAME` (retried like any bad frame, on a new connection). A lost
/// connection fails them with `EQ1_STATUS_CONNECTION_LOST`. RTU serializes calls.
/// ==========================================================================================
///
/// New Modbus options with the defaults: TCP to 127.0.0.1:502, unit id 1, timeout 1000 ms per
/// attempt, 1 retry, 16 requests in flight.
///
/// Returns: the new options, to free with `eq1_modbus_options_free`; NULL only on a bug in the
/// library (a caught panic).
///
/// See also: `eq1_modbus_client_new`.
#[no_mangle]
pub extern "C" fn eq1_modbus_options_new() -> *mut eq1_modbus_options {
    call_value(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(eq1_modbus_options {
            inner: Options::default(),
        }))
    })
}

/// Releases Modbus options. NULL is a no-op. A client made from them keeps its own copy.
///
/// Returns: nothing.
///
/// # Safety
/// `options` is NULL or came from `eq1_modbus_options_new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_free(options: *mut eq1_modbus_options) {
    call_value((), || {
        if !options.is_null() {
            // SAFETY: created by Box::into_raw in eq1_modbus_options_new; released once.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// Modbus TCP to `host`:`port` (the default transport; clears a serial setting).
///
/// Returns:
/// - `EQ1_STATUS_OK` when set.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options` or `host`.
/// - `EQ1_STATUS_INVALID_UTF8` when `host` is not UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for an empty host or a port outside 1..65535.
///
/// # Safety
/// `options` is NULL or live; `host` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_set_tcp(
    options: *mut eq1_modbus_options,
    host: *const c_char,
    port: c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        // SAFETY: per this function's contract.
        let host = unsafe { c_str(host, "host") }?;
        if host.is_empty() {
            return Err(Error::InvalidArgument("host is empty".into()));
        }
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::InvalidArgument(format!("port {port} is outside 1..65535")))?;
        options.inner.host = host.to_owned();
        options.inner.port = port;
        options.inner.serial = None;
        Ok(())
    })
}

/// Modbus RTU over the serial line `device` (e.g. "/dev/ttyUSB0") instead of TCP: `baud`
/// (> 0), `data_bits` 5..8, `parity` one of `EQ1_MODBUS_PARITY_*`, `stop_bits` 1 or 2. Flow
/// control is off.
///
/// Returns:
/// - `EQ1_STATUS_OK` when set.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options` or `device`.
/// - `EQ1_STATUS_INVALID_UTF8` when `device` is not UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for an empty device or a value out of its range.
///
/// # Safety
/// `options` is NULL or live; `device` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_set_serial(
    options: *mut eq1_modbus_options,
    device: *const c_char,
    baud: c_int,
    data_bits: c_int,
    parity: c_int,
    stop_bits: c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        // SAFETY: per this function's contract.
        let device = unsafe { c_str(device, "device") }?;
        if device.is_empty() {
            return Err(Error::InvalidArgument("serial device is empty".into()));
        }
        let baud = u32::try_from(baud)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| Error::InvalidArgument(format!("baud rate {baud} is not positive")))?;
        if !(5..=8).contains(&data_bits) {
            return Err(Error::InvalidArgument(format!(
                "data bits {data_bits} is outside 5..8"
            )));
        }
        let parity = match parity {
            EQ1_MODBUS_PARITY_NONE => Parity::None,
            EQ1_MODBUS_PARITY_ODD => Parity::Odd,
            EQ1_MODBUS_PARITY_EVEN => Parity::Even,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "parity {other} is not one of EQ1_MODBUS_PARITY_*"
                )))
            }
        };
        if stop_bits != 1 && stop_bits != 2 {
            return Err(Error::InvalidArgument(format!(
                "stop bits {stop_bits} is neither 1 nor 2"
            )));
        }
        options.inner.serial = Some(SerialSettings {
            device: device.to_owned(),
            baud,
            data_bits: data_bits as u8,
            parity,
            stop_bits: stop_bits as u8,
        });
        Ok(())
    })
}

/// The unit (slave) id of calls made with `EQ1_MODBUS_DEFAULT_UNIT`: 0..255 (default 1).
///
/// Returns:
/// - `EQ1_STATUS_OK` when set.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for a unit id outside 0..255.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_set_unit_id(
    options: *mut eq1_modbus_options,
    unit_id: c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        options.inner.unit_id = unit(unit_id)?;
        Ok(())
    })
}

/// The default time for one attempt of a call (connecting when needed, the request and its
/// response), in ms: 1..3,600,000 (default 1000).
///
/// Returns:
/// - `EQ1_STATUS_OK` when set.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for a value outside 1..3600000.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_set_timeout(
    options: *mut eq1_modbus_options,
    timeout_ms: c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        options.inner.timeout = attempt_timeout(timeout_ms)?;
        Ok(())
    })
}

/// The default number of attempts after the first when one times out, loses its connection
/// or gets a bad frame: 0..100 (default 1). Exceptions are never retried.
///
/// Returns:
/// - `EQ1_STATUS_OK` when set.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for a value outside 0..100.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_set_retries(
    options: *mut eq1_modbus_options,
    retries: c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        options.inner.retries = retry_count(retries)?;
        Ok(())
    })
}

/// Modbus TCP: the most requests on the connection at once, 1..256 (default 1: serialized;
/// raise it only for servers known to pipeline). Callers beyond it wait for a turn within their
/// call's timeout (`EQ1_STATUS_TIMEOUT` when none comes).
/// 1 serializes requests, for devices that cannot pipeline: some PLCs allow one transaction
/// per connection, and pymodbus 3.8's server handles one request per TCP read (requests that
/// arrive together wait until more bytes come). RTU always has one request on the line and
/// ignores this.
///
/// Returns:
/// - `EQ1_STATUS_OK` when set.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for a value outside 1..256.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_options_set_max_in_flight(
    options: *mut eq1_modbus_options,
    max_in_flight: c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        options.inner.max_in_flight = u16::try_from(max_in_flight)
            .ok()
            .filter(|n| (1..=MAX_IN_FLIGHT).contains(n))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "max in flight {max_in_flight} is outside 1..{MAX_IN_FLIGHT}"
                ))
            })?;
        Ok(())
    })
}

/// A new Modbus client from `options` (copied; free them when you like). It does not connect
/// yet: call `eq1_modbus_client_connect`.
///
/// Returns:
/// - `EQ1_STATUS_OK` with `*out` set, to free with `eq1_modbus_client_free`.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `options` or `out`.
/// - `EQ1_STATUS_INTERNAL` when the I/O runtime cannot start, or on a bug (a caught panic).
///
/// # Safety
/// `options` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_client_new(
    options: *const eq1_modbus_options,
    out: *mut *mut eq1_modbus_client,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, std::ptr::null_mut(), "out (client pointer)") }?;
        // SAFETY: per this function's contract.
        let options = unsafe { handle(options, "options") }?;
        let client = Client::new(options.inner.clone())?;
        *out = Box::into_raw(Box::new(eq1_modbus_client { client }));
        Ok(())
    })
}

/// Frees the client, closing its connection. NULL is a no-op. No connection callback runs
/// after it returns (one running is waited for, queued events are dropped).
///
/// Returns:
/// - `EQ1_STATUS_OK` (also for NULL).
/// - `EQ1_STATUS_CALLED_FROM_CALLBACK` inside the client's own connection callback; the client
///   stays valid then.
///
/// # Safety
/// `client` is NULL or live, and no other thread uses it during or after the call.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_client_free(client: *mut eq1_modbus_client) -> eq1_status {
    call(|| {
        if !client.is_null() {
            // SAFETY: non-NULL and live per this function's contract.
            unsafe { &*client }.client.events().shutdown()?;
            // SAFETY: created by Box::into_raw in eq1_modbus_client_new; released once.
            let owned = unsafe { Box::from_raw(client) };
            // Closing is best effort: the peer may be gone.
            let _ = owned.client.disconnect();
        }
        Ok(())
    })
}

/// Sets (or with NULL removes) the connection callback: connected (`eq1_modbus_client_connect`), lost (the
/// server closed the connection, a protocol violation, silent timeouts; RTU: any failed
/// attempt, after which the line is opened again), reconnected (the next call opened a new
/// connection), disconnected (`eq1_modbus_client_disconnect`). It runs on
/// the client's dispatcher thread (started by the first callback set, joined by
/// `eq1_modbus_client_free`), never on the library's I/O thread nor on the calling thread, one event at
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
pub unsafe extern "C" fn eq1_modbus_client_set_connection_callback(
    client: *const eq1_modbus_client,
    callback: eq1_protocol_event_cb,
    user_data: *mut c_void,
) -> eq1_status {
    // SAFETY: per this function's contract.
    unsafe { set_connection_callback(client, |c| c.client.events(), callback, user_data) }
}

/// Connects now (within the default timeout). Until `eq1_modbus_client_disconnect`, a call
/// that finds the connection gone connects again by itself: TCP after the server closed it, a
/// protocol violation, or two timeouts in a row with nothing received (cable pulled); RTU
/// after any failed attempt. A TCP request that merely times out leaves the connection up.
///
/// Returns:
/// - `EQ1_STATUS_OK` when connected (TCP) or the serial device is open (RTU).
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `client`.
/// - `EQ1_STATUS_CONNECTION_REFUSED`, `EQ1_STATUS_DNS_FAILED`, `EQ1_STATUS_NETWORK_ERROR`,
///   `EQ1_STATUS_TIMEOUT` when the server cannot be reached (a missing serial device is
///   `EQ1_STATUS_CONNECTION_REFUSED`). The client keeps trying on each later call.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_client_connect(client: *const eq1_modbus_client) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        unsafe { client_handle(client) }?.connect()
    })
}

/// Closes the connection; calls return `EQ1_STATUS_NOT_CONNECTED` until the next connect.
///
/// Returns:
/// - `EQ1_STATUS_OK` (also when not connected).
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `client`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_client_disconnect(
    client: *const eq1_modbus_client,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        unsafe { client_handle(client) }?.disconnect()
    })
}

/// Copies the client's counters into `*out`.
///
/// Returns:
/// - `EQ1_STATUS_OK` with `*out` written.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `client` or `out`.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_client_get_stats(
    client: *const eq1_modbus_client,
    out: *mut eq1_modbus_stats,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, eq1_modbus_stats::default(), "out (stats)") }?;
        // SAFETY: per this function's contract.
        let s = unsafe { client_handle(client) }?.stats();
        *out = eq1_modbus_stats {
            requests: s.requests,
            failures: s.failures,
            timeouts: s.timeouts,
            bad_frames: s.bad_frames,
            exceptions: s.exceptions,
            retries: s.retries,
            connects: s.connects,
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
            late_responses: s.late_responses,
        };
        Ok(())
    })
}

/// Reads `quantity` coils (function code 0x01) from `address` of unit `unit` (0..255, or
/// `EQ1_MODBUS_DEFAULT_UNIT`) into `out`, one byte per coil (0 or 1). `call` is NULL or this
/// call's timeout and retries.
///
/// Returns:
/// - `EQ1_STATUS_OK` with `out[0..quantity)` written.
/// - `EQ1_STATUS_NULL_ARGUMENT` for a NULL `client` or `out`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` for a quantity outside 1..2000, an address outside 0..65535,
///   address + quantity beyond 65536, `out_len` smaller than `quantity`, a unit outside 0..255
///   or call options out of range.
/// - `EQ1_STATUS_NOT_CONNECTED` before `eq1_modbus_client_connect` or after disconnect.
/// - `EQ1_STATUS_MODBUS_ILLEGAL_FUNCTION` .. `EQ1_STATUS_MODBUS_GATEWAY_TARGET_FAILED`: the
///   server's exception response.
/// - `EQ1_STATUS_TIMEOUT`, `EQ1_STATUS_CONNECTION_LOST`, `EQ1_STATUS_CONNECTION_REFUSED`,
///   `EQ1_STATUS_NETWORK_ERROR`, `EQ1_STATUS_MODBUS_BAD_FRAME` when the last attempt failed so.
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable for `out_len` bytes; `call` is NULL or
/// readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_read_coils(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    quantity: c_int,
    out: *mut u8,
    out_len: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (address, quantity) = range("read coils", address, quantity, MAX_READ_BITS)?;
        // SAFETY: per this function's contract.
        let out = unsafe { out_buffer(out, out_len, quantity) }?;
        let bits = c.read_coils(address, quantity, options)?;
        copy_bits(&bits, out)
    })
}

/// Reads `quantity` discrete inputs (function code 0x02) into `out`, one byte each (0 or 1).
/// Arguments and limits as for `eq1_modbus_read_coils`.
///
/// Returns: as `eq1_modbus_read_coils`.
///
/// # Safety
/// As for `eq1_modbus_read_coils`.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_read_discrete_inputs(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    quantity: c_int,
    out: *mut u8,
    out_len: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (address, quantity) = range("read discrete inputs", address, quantity, MAX_READ_BITS)?;
        // SAFETY: per this function's contract.
        let out = unsafe { out_buffer(out, out_len, quantity) }?;
        let bits = c.read_discrete_inputs(address, quantity, options)?;
        copy_bits(&bits, out)
    })
}

/// Reads `quantity` holding registers (function code 0x03, 1..125) into `out` (`out_len`
/// registers room). Other arguments as for `eq1_modbus_read_coils`.
///
/// Returns: as `eq1_modbus_read_coils` (quantity limit 1..125).
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or writable for `out_len` registers; `call` is
/// NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_read_holding_registers(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    quantity: c_int,
    out: *mut u16,
    out_len: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (address, quantity) = range(
            "read holding registers",
            address,
            quantity,
            MAX_READ_REGISTERS,
        )?;
        // SAFETY: per this function's contract.
        let out = unsafe { out_buffer(out, out_len, quantity) }?;
        let words = c.read_holding_registers(address, quantity, options)?;
        copy_words(&words, out)
    })
}

/// Reads `quantity` input registers (function code 0x04, 1..125) into `out`. Arguments as for
/// `eq1_modbus_read_holding_registers`.
///
/// Returns: as `eq1_modbus_read_coils` (quantity limit 1..125).
///
/// # Safety
/// As for `eq1_modbus_read_holding_registers`.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_read_input_registers(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    quantity: c_int,
    out: *mut u16,
    out_len: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (address, quantity) = range(
            "read input registers",
            address,
            quantity,
            MAX_READ_REGISTERS,
        )?;
        // SAFETY: per this function's contract.
        let out = unsafe { out_buffer(out, out_len, quantity) }?;
        let words = c.read_input_registers(address, quantity, options)?;
        copy_words(&words, out)
    })
}

/// Writes one coil (function code 0x05): `value` nonzero is on.
///
/// Returns: as `eq1_modbus_read_coils` (no buffer).
///
/// # Safety
/// `client` is NULL or live; `call` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_write_single_coil(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    value: c_int,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (address, _) = range("write single coil", address, 1, 1)?;
        c.write_single_coil(address, value != 0, options)
    })
}

/// Writes one holding register (function code 0x06).
///
/// Returns: as `eq1_modbus_read_coils` (no buffer).
///
/// # Safety
/// `client` is NULL or live; `call` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_write_single_register(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    value: u16,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (address, _) = range("write single register", address, 1, 1)?;
        c.write_single_register(address, value, options)
    })
}

/// Writes `count` coils (function code 0x0F, 1..1968) from `values`, one byte per coil
/// (nonzero is on), starting at `address`.
///
/// Returns: as `eq1_modbus_read_coils`; `EQ1_STATUS_NULL_ARGUMENT` for NULL `values`,
/// `EQ1_STATUS_INVALID_ARGUMENT` for a count outside 1..1968 or beyond address 65535.
///
/// # Safety
/// `client` is NULL or live; `values` is NULL or readable for `count` bytes; `call` is NULL or
/// readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_write_multiple_coils(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    values: *const u8,
    count: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let address = address_of("write multiple coils", address)?;
        check_range("write multiple coils", address, count, MAX_WRITE_BITS)?;
        // SAFETY: per this function's contract.
        let values = unsafe { in_buffer(values, count, "values") }?;
        c.write_multiple_coils(address, values.iter().map(|v| *v != 0).collect(), options)
    })
}

/// Writes `count` holding registers (function code 0x10, 1..123) from `values`.
///
/// Returns: as `eq1_modbus_write_multiple_coils` (count limit 1..123).
///
/// # Safety
/// `client` is NULL or live; `values` is NULL or readable for `count` registers; `call` is
/// NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_write_multiple_registers(
    client: *const eq1_modbus_client,
    unit: c_int,
    address: c_int,
    values: *const u16,
    count: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let address = address_of("write multiple registers", address)?;
        check_range(
            "write multiple registers",
            address,
            count,
            MAX_WRITE_REGISTERS,
        )?;
        // SAFETY: per this function's contract.
        let values = unsafe { in_buffer(values, count, "values") }?;
        c.write_multiple_registers(address, values.to_vec(), options)
    })
}

/// Writes `write_count` registers (1..121) from `values` at `write_address`, then reads
/// `read_quantity` registers (1..125) from `read_address` into `out` (function code 0x17; the
/// server writes first).
///
/// Returns: as `eq1_modbus_read_coils` and `eq1_modbus_write_multiple_coils`, with these
/// limits.
///
/// # Safety
/// `client` is NULL or live; `values` is NULL or readable for `write_count` registers; `out`
/// is NULL or writable for `out_len` registers; `call` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_modbus_read_write_multiple_registers(
    client: *const eq1_modbus_client,
    unit: c_int,
    read_address: c_int,
    read_quantity: c_int,
    write_address: c_int,
    values: *const u16,
    write_count: usize,
    out: *mut u16,
    out_len: usize,
    call_options: *const eq1_modbus_call_options,
) -> eq1_status {
    call(|| {
        const WHAT: &str = "read/write multiple registers";
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let options = unsafe { call_opts(call_options, unit) }?;
        let (read_address, read_quantity) =
            range(WHAT, read_address, read_quantity, MAX_READ_REGISTERS)?;
        let write_address = address_of(WHAT, write_address)?;
        check_range(WHAT, write_address, write_count, MAX_READ_WRITE_REGISTERS)?;
        // SAFETY: per this function's contract.
        let values = unsafe { in_buffer(values, write_count, "values") }?;
        // SAFETY: per this function's contract.
        let out = unsafe { out_buffer(out, out_len, read_quantity) }?;
        let words = c.read_write_multiple_registers(
            read_address,
            read_quantity,
            write_address,
            values.to_vec(),
            options,
        )?;
        copy_words(&words, out)
    })
}

/// # Safety
/// `client` is NULL or a live `eq1_modbus_client`.
unsafe fn client_handle<'a>(client: *const eq1_modbus_client) -> Result<&'a Client> {
    // SAFETY: forwarded contract.
    Ok(&unsafe { handle(client, "client") }?.client)
}

fn unit(unit: c_int) -> Result<u8> {
    u8::try_from(unit)
        .map_err(|_| Error::InvalidArgument(format!("unit id {unit} is outside 0..255")))
}

fn attempt_timeout(ms: c_int) -> Result<Duration> {
    if !(1..=3_600_000).contains(&ms) {
        return Err(Error::InvalidArgument(format!(
            "timeout {ms} ms is outside 1..3600000"
        )));
    }
    Ok(Duration::from_millis(ms as u64))
}

fn retry_count(retries: c_int) -> Result<u32> {
    if !(0..=100).contains(&retries) {
        return Err(Error::InvalidArgument(format!(
            "retries {retries} is outside 0..100"
        )));
    }
    Ok(retries as u32)
}

/// # Safety
/// `call` is NULL or readable.
unsafe fn call_opts(call: *const eq1_modbus_call_options, unit_arg: c_int) -> Result<CallOptions> {
    let mut options = CallOptions {
        unit: match unit_arg {
            EQ1_MODBUS_DEFAULT_UNIT => None,
            other => Some(unit(other)?),
        },
        ..CallOptions::default()
    };
    // SAFETY: per the caller's contract a non-NULL pointer is readable.
    if let Some(call) = unsafe { call.as_ref() } {
        if call.timeout_ms != -1 {
            options.timeout = Some(attempt_timeout(call.timeout_ms)?);
        }
        if call.retries != -1 {
            options.retries = Some(retry_count(call.retries)?);
        }
    }
    Ok(options)
}

fn address_of(what: &str, address: c_int) -> Result<u16> {
    u16::try_from(address).map_err(|_| {
        Error::InvalidArgument(format!("{what}: address {address} is outside 0..65535"))
    })
}

fn range(what: &str, address: c_int, quantity: c_int, max: u16) -> Result<(u16, u16)> {
    let address = address_of(what, address)?;
    let quantity = usize::try_from(quantity).map_err(|_| {
        Error::InvalidArgument(format!("{what}: quantity {quantity} is outside 1..{max}"))
    })?;
    Ok((address, check_range(what, address, quantity, max)?))
}

/// # Safety
/// `out` is NULL or writable for `len` elements.
unsafe fn out_buffer<'a, T>(out: *mut T, len: usize, quantity: u16) -> Result<&'a mut [T]> {
    if out.is_null() {
        return Err(Error::NullArgument("out (buffer) is NULL".into()));
    }
    if len < usize::from(quantity) {
        return Err(Error::InvalidArgument(format!(
            "out buffer of {len} element(s) is too small for quantity {quantity}"
        )));
    }
    // SAFETY: non-NULL and writable for `len >= quantity` elements per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(out, usize::from(quantity)) })
}

/// # Safety
/// `values` is NULL or readable for `count` elements.
unsafe fn in_buffer<'a, T>(values: *const T, count: usize, what: &str) -> Result<&'a [T]> {
    if values.is_null() {
        return Err(Error::NullArgument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and readable for `count` elements (count <= 1968, checked before).
    Ok(unsafe { std::slice::from_raw_parts(values, count) })
}

fn copy_bits(bits: &[bool], out: &mut [u8]) -> Result<()> {
    if bits.len() != out.len() {
        return Err(Error::ModbusBadFrame(format!(
            "the server returned {} bit(s) for a request of {}",
            bits.len(),
            out.len()
        )));
    }
    for (slot, bit) in out.iter_mut().zip(bits) {
        *slot = u8::from(*bit);
    }
    Ok(())
}

fn copy_words(words: &[u16], out: &mut [u16]) -> Result<()> {
    if words.len() != out.len() {
        return Err(Error::ModbusBadFrame(format!(
            "the server returned {} register(s) for a request of {}",
            words.len(),
            out.len()
        )));
    }
    out.copy_from_slice(words);
    Ok(())
}
