//! The connection callback of the request/response clients (`eq1_tcp_client`,
//! `eq1_serial_client`, `eq1_modbus_client`): one callback type and one event struct for all
//! three, delivered by the core's per-client dispatcher (`core::connection_events`).

use crate::core::connection_events::{
    ConnectionEvent, ConnectionEventHandler, ConnectionEventKind, ConnectionEvents,
};
use crate::core::error::Error;
use crate::ffi::boundary::{c_string, call, handle};
use crate::ffi::client::UserData;
use crate::ffi::status::eq1_status;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// What happened to the connection of a TCP, serial or Modbus client.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eq1_protocol_event_kind {
    /// The caller's connect succeeded (or a later call opened the first connection).
    Connected = 1,
    /// The connection ended without the caller asking; `status` and `message` say why.
    Lost = 2,
    /// A call opened a new connection after the last one was lost (TCP automatic reconnect,
    /// Modbus reconnecting on the next call).
    Reconnected = 3,
    /// The caller's disconnect closed the connection.
    Disconnected = 4,
}

/// Passed to an `eq1_protocol_event_cb`; borrowed (with `message`) until the callback returns.
#[repr(C)]
pub struct eq1_protocol_event {
    pub kind: eq1_protocol_event_kind,
    /// Why the connection was lost (`EQ1_STATUS_CONNECTION_LOST`, `EQ1_STATUS_TIMEOUT`,
    /// `EQ1_STATUS_SERIAL_ERROR`, ...); `EQ1_STATUS_OK` for the other kinds.
    pub status: eq1_status,
    /// Detail of `status`, NUL-terminated, "" when none. Never NULL.
    pub message: *const c_char,
}

/// Receives the connection events of a TCP, serial or Modbus client on the client's
/// dispatcher thread (one per client, started by the first callback set), never on the
/// library's I/O thread nor on the thread whose call noticed the change; one at a time, in
/// the order they happened. `user_data` is the pointer given with the callback. The callback
/// may call any function of its client except `_free` (refused with
/// `EQ1_STATUS_CALLED_FROM_CALLBACK`). A slow callback never stalls I/O: at most 256 events
/// wait for it, later ones are dropped (and logged).
pub type eq1_protocol_event_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const eq1_protocol_event)>;

/// The core handler that calls a C callback with the C view of each event.
fn c_event_handler(
    callback: eq1_protocol_event_cb,
    user_data: *mut c_void,
) -> Option<ConnectionEventHandler> {
    let user_data = UserData(user_data);
    callback.map(|callback| {
        Arc::new(move |event: &ConnectionEvent| {
            let user_data = user_data;
            let error = event.error.as_ref();
            let message = c_string(&error.map(Error::message).unwrap_or_default());
            let view = eq1_protocol_event {
                kind: match event.kind {
                    ConnectionEventKind::Connected => eq1_protocol_event_kind::Connected,
                    ConnectionEventKind::Lost => eq1_protocol_event_kind::Lost,
                    ConnectionEventKind::Reconnected => eq1_protocol_event_kind::Reconnected,
                    ConnectionEventKind::Disconnected => eq1_protocol_event_kind::Disconnected,
                },
                status: error.map(eq1_status::from).unwrap_or(eq1_status::Ok),
                message: message.as_ptr(),
            };
            // SAFETY: the user's callback; `view` and `message` outlive the call.
            unsafe { callback(user_data.0, &view) }
        }) as ConnectionEventHandler
    })
}

/// The body of every `eq1_*_client_set_connection_callback`: `events` picks the client's
/// dispatcher.
///
/// # Safety
/// `client` is NULL or live.
pub(crate) unsafe fn set_connection_callback<T>(
    client: *const T,
    events: impl FnOnce(&T) -> &ConnectionEvents,
    callback: eq1_protocol_event_cb,
    user_data: *mut c_void,
) -> eq1_status {
    call(|| {
        // SAFETY: forwarded contract.
        let client = unsafe { handle(client, "client") }?;
        events(client).set_handler(c_event_handler(callback, user_data))
    })
}
