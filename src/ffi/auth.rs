//! MQTT 5.0 enhanced authentication at the C boundary: the authentication method of CONNECT,
//! re-authentication, and the types the authentication callback receives and fills (the
//! function installing it is in `auth_callback`, with the other callbacks).

use crate::ffi::boundary::{bytes, c_str, timeout_ms};
use crate::ffi::client::{eq1_mqtt_client, with_client};
use crate::ffi::options::{eq1_mqtt_options, with_options};
use crate::ffi::status::eq1_status;
use std::ffi::{c_char, c_int};

/// `eq1_mqtt_auth_response.action`: send `data` to the broker and go on (the answer to a
/// challenge with reason code 0x18, continue authentication).
pub const EQ1_MQTT_AUTH_CONTINUE: c_int = 1;
/// `eq1_mqtt_auth_response.action`: the broker's final data verified (the answer to a
/// challenge with reason code 0x00).
pub const EQ1_MQTT_AUTH_SUCCESS: c_int = 2;
/// `eq1_mqtt_auth_response.action`: give up; the client disconnects (reason 0x80) and the
/// exchange fails with `EQ1_STATUS_AUTH_FAILED`. The response starts with this action.
pub const EQ1_MQTT_AUTH_FAILURE: c_int = 3;
/// Bytes the authentication callback may write into `eq1_mqtt_auth_response.data` (the most
/// MQTT's authentication data can hold).
pub const EQ1_MQTT_AUTH_DATA_CAPACITY: usize = 65_535;
/// Bytes (with the NUL) the authentication callback may write into
/// `eq1_mqtt_auth_response.reason`.
pub const EQ1_MQTT_AUTH_REASON_CAPACITY: usize = 256;

/// One step of the enhanced-authentication exchange, passed to the authentication callback.
/// Borrowed: every pointer lives until the callback returns.
#[repr(C)]
pub struct eq1_mqtt_auth_challenge {
    /// The authentication method (the configured one), NUL-terminated.
    pub method: *const c_char,
    /// 0x18 (continue authentication): the broker's challenge, answer
    /// `EQ1_MQTT_AUTH_CONTINUE` with response data. 0x00 (success): the broker accepted
    /// (CONNACK, or AUTH after re-authentication) and sent final data to verify (a SCRAM
    /// server-final), answer `EQ1_MQTT_AUTH_SUCCESS` or `EQ1_MQTT_AUTH_FAILURE`.
    pub reason_code: u8,
    /// The broker's authentication data (not NUL-terminated; NULL when `data_len` is 0).
    pub data: *const u8,
    pub data_len: usize,
    /// True during `eq1_mqtt_client_reauthenticate`, false during connect.
    pub reauthenticating: bool,
}

/// What the authentication callback answers, filled in place. The buffers belong to the
/// library and live until the callback returns; the library copies what was written.
#[repr(C)]
pub struct eq1_mqtt_auth_response {
    /// `EQ1_MQTT_AUTH_CONTINUE`, `EQ1_MQTT_AUTH_SUCCESS` or `EQ1_MQTT_AUTH_FAILURE` (preset;
    /// any other value is a failure).
    pub action: c_int,
    /// Write the response data for `EQ1_MQTT_AUTH_CONTINUE` here, at most `data_capacity`
    /// bytes, and set `data_len`.
    pub data: *mut u8,
    pub data_capacity: usize,
    /// Bytes written to `data` (preset 0); more than `data_capacity` is a failure.
    pub data_len: usize,
    /// Optionally write why for `EQ1_MQTT_AUTH_FAILURE`, NUL-terminated UTF-8, at most
    /// `reason_capacity` bytes with the NUL (preset ""); it becomes the detail message.
    pub reason: *mut c_char,
    pub reason_capacity: usize,
}

/// Sets the MQTT 5.0 enhanced-authentication method (CONNECT property 0x15, e.g.
/// "SCRAM-SHA-256") and its initial data (0x16, e.g. a SCRAM client-first message; NULL with
/// `data_len` 0 sends none). The broker's challenges go to the authentication callback
/// (`eq1_mqtt_client_set_auth_callback`). Needs MQTT 5.0 (`eq1_mqtt_client_new` refuses it
/// otherwise), and turns the fallback to 3.1.1 off for this client (3.1.1 has no AUTH).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `method` is NULL, or `data` is NULL with a
///   length.
/// - `EQ1_STATUS_INVALID_UTF8` when `method` is not UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `method` is empty or longer than 65,535 bytes, or
///   `data_len` exceeds 65,535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_set_auth_callback`, `eq1_mqtt_client_reauthenticate`.
///
/// # Safety
/// `options` is NULL or live; `method` NULL or NUL-terminated; `data` NULL or `data_len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_auth_method(
    options: *mut eq1_mqtt_options,
    method: *const c_char,
    data: *const u8,
    data_len: usize,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let method = unsafe { c_str(method, "authentication method") }?;
        // SAFETY: per this function's contract.
        let data = unsafe { bytes(data, data_len, "authentication data") }?;
        o.set_auth_method(Some((method, (!data.is_empty()).then_some(data))))
    })
}

/// Re-authenticates on the open connection: sends AUTH 0x19 with the configured method and
/// `data` (e.g. a new SCRAM client-first), lets the authentication callback answer the
/// broker's challenges, and waits up to `timeout_ms` for the broker's AUTH 0x00. Publishing,
/// subscribing and keep-alive go on meanwhile (from other threads). A failure or time-out
/// closes the connection (automatic reconnection, if on, authenticates from the start).
/// Not from inside a callback: the authentication callback runs on that thread.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the broker confirmed (and the callback verified its final data).
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL, or `data` is NULL with a length.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is not positive or `data_len` exceeds
///   65,535.
/// - `EQ1_STATUS_AUTH_NOT_CONFIGURED` when no authentication method is configured.
/// - `EQ1_STATUS_NOT_CONNECTED` when the client is not connected.
/// - `EQ1_STATUS_INVALID_STATE` when an exchange is already under way, or `client` was
///   created before fork() in another process.
/// - `EQ1_STATUS_CALLED_FROM_CALLBACK` inside one of the client's callbacks.
/// - `EQ1_STATUS_AUTH_FAILED` when the callback answered failure, or the connection closed
///   during the exchange (a broker refusing re-authentication disconnects).
/// - `EQ1_STATUS_TIMEOUT` when the exchange did not complete within `timeout_ms`.
/// - `EQ1_STATUS_PROTOCOL_ERROR` when the broker's AUTH broke the protocol (e.g. another
///   method).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic, or the client's session
///   engine stopped).
///
/// See also: `eq1_mqtt_options_set_auth_method`, `eq1_mqtt_client_set_auth_callback`.
///
/// # Safety
/// `client` is NULL or live; `data` NULL or `data_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_reauthenticate(
    client: *mut eq1_mqtt_client,
    data: *const u8,
    data_len: usize,
    timeout: c_int,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let data = unsafe { bytes(data, data_len, "authentication data") }?;
        let timeout = timeout_ms(timeout, "re-authentication")?;
        c.client
            .reauthenticate((!data.is_empty()).then_some(data), timeout)
    })
}
