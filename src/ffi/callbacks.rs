//! Callbacks at the C boundary: their typedefs, the structs they receive, and the functions
//! that install them on a client. Every callback runs on the client's dispatcher thread, one at
//! a time, in the order the events happened; what it receives is borrowed until it returns.

use crate::core::error::Error;
use crate::ffi::boundary::c_string;
use crate::ffi::client::{eq1_mqtt_client, eq1_token, with_client, UserData};
use crate::ffi::status::eq1_status;
use crate::ffi::v5::{eq1_mqtt_properties, PropertiesView};
use crate::mqtt::subscriptions::MessageHandler;
use crate::mqtt::{ConnectionEvent, ConnectionState, Message};
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

/// Releases user data; called exactly once.
pub type eq1_free_cb = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// What happened to the connection.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eq1_connection_state {
    /// Connected (first connect or an automatic reconnect).
    Connected = 1,
    /// The connection was lost; `reason` says why. Reconnection follows unless turned off.
    Lost = 2,
    /// The user's disconnect completed.
    Disconnected = 3,
}

/// Passed to the connection callback; borrowed until it returns.
#[repr(C)]
pub struct eq1_mqtt_connection_event {
    pub state: eq1_connection_state,
    /// Why the connection was lost (`EQ1_STATUS_OK` otherwise).
    pub reason: eq1_status,
    /// Detail of `reason`, NUL-terminated, "" when none. Never NULL.
    pub reason_text: *const c_char,
    /// On connect: did the broker keep the session?
    pub session_present: bool,
    /// The broker concerned, NUL-terminated, "" when none. Never NULL.
    pub broker_host: *const c_char,
    pub broker_port: c_int,
}

/// Receives connection events: `user_data` is the client's.
pub type eq1_mqtt_connection_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const eq1_mqtt_connection_event)>;

/// Receives the outcome of each publish token: `EQ1_STATUS_OK` when delivered, otherwise the
/// failure and its detail (NUL-terminated, borrowed until return).
pub type eq1_mqtt_delivery_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        token: eq1_token,
        status: eq1_status,
        detail: *const c_char,
    ),
>;

/// A message received on a subscription. Borrowed: every pointer lives until the callback
/// returns; copy what you keep.
#[repr(C)]
pub struct eq1_mqtt_message {
    /// The topic, NUL-terminated.
    pub topic: *const c_char,
    pub topic_len: usize,
    /// The payload (not NUL-terminated; may be NULL when `payload_len` is 0).
    pub payload: *const u8,
    pub payload_len: usize,
    pub qos: c_int,
    pub retain: bool,
    pub dup: bool,
    /// MQTT 5.0 properties the sender set, or NULL (always NULL on MQTT 3.1.1).
    pub properties: *const eq1_mqtt_properties,
    /// The packet identifier the broker used (0 for QoS 0).
    pub packet_id: u16,
    /// MQTT 5.0: identifiers of the subscriptions the broker matched it with
    /// (`subscription_id_count` of them; NULL when none).
    pub subscription_ids: *const u32,
    pub subscription_id_count: usize,
}

/// Receives messages of one subscription: `user_data` is the pointer given to subscribe.
pub type eq1_mqtt_message_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, message: *const eq1_mqtt_message)>;

/// ==========================================================================================
/// Section: Callbacks
///
/// How a client calls back: the functions that install its callbacks. Their typedefs
/// (`eq1_mqtt_connection_cb`, `eq1_mqtt_delivery_cb`, `eq1_mqtt_message_cb`, `eq1_free_cb`,
/// `eq1_log_cb`) and the structs they receive (`eq1_mqtt_connection_event`, `eq1_mqtt_message`,
/// `eq1_mqtt_properties`) are with the types at the top, since C declares a type before the
/// functions that use it. Callbacks run on the client's dispatcher thread, one at a time, in
/// the order the events happened; what they receive is borrowed until they return.
/// ==========================================================================================
///
/// Sets (or with NULL removes) the connection callback; it receives the `user_data` given to
/// `eq1_mqtt_client_new`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_connection_cb`, `eq1_mqtt_connection_event`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_set_connection_callback(
    client: *mut eq1_mqtt_client,
    callback: eq1_mqtt_connection_cb,
) -> eq1_status {
    with_client(client, |c| {
        let user_data = c.user_data;
        let handler = callback.map(|callback| {
            Arc::new(move |event: &ConnectionEvent| {
                let user_data = user_data;
                let reason = event.reason.as_ref();
                let text = c_string(&reason.map(Error::message).unwrap_or_default());
                let host = c_string(event.broker.as_ref().map(|b| b.host.as_str()).unwrap_or(""));
                let view = eq1_mqtt_connection_event {
                    state: match event.state {
                        ConnectionState::Connected => eq1_connection_state::Connected,
                        ConnectionState::ConnectionLost => eq1_connection_state::Lost,
                        ConnectionState::Disconnected => eq1_connection_state::Disconnected,
                    },
                    reason: reason.map(eq1_status::from).unwrap_or(eq1_status::Ok),
                    reason_text: text.as_ptr(),
                    session_present: event.session_present,
                    broker_host: host.as_ptr(),
                    broker_port: event.broker.as_ref().map(|b| b.port as c_int).unwrap_or(0),
                };
                // SAFETY: the user's callback; `view` and its strings outlive the call.
                unsafe { callback(user_data.0, &view) }
            }) as crate::mqtt::shared::ConnectionHandler
        });
        c.client.set_connection_handler(handler);
        Ok(())
    })
}

/// Sets (or with NULL removes) the delivery callback, called once per publish token; it
/// receives the `user_data` given to `eq1_mqtt_client_new`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_delivery_cb`, `eq1_mqtt_client_wait`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_set_delivery_callback(
    client: *mut eq1_mqtt_client,
    callback: eq1_mqtt_delivery_cb,
) -> eq1_status {
    with_client(client, |c| {
        let user_data = c.user_data;
        let handler = callback.map(|callback| {
            Arc::new(move |token: u64, result: &crate::Result<()>| {
                let user_data = user_data;
                let (status, detail) = match result {
                    Ok(()) => (eq1_status::Ok, c_string("")),
                    Err(e) => (eq1_status::from(e), c_string(&e.message())),
                };
                // SAFETY: the user's callback; `detail` outlives the call.
                unsafe { callback(user_data.0, token, status, detail.as_ptr()) }
            }) as crate::mqtt::shared::DeliveryHandler
        });
        c.client.set_delivery_handler(handler);
        Ok(())
    })
}

/// Sets (or with NULL removes) the default message callback: it receives every message that
/// no subscription's callback takes (like libmosquitto's on_message and Paho's
/// messageArrived), for example the messages a broker queued for a persistent session,
/// which arrive right after CONNACK, before the application subscribed again. While neither
/// a matching subscription nor this callback exists, received QoS 1/2 messages are held,
/// not acknowledged (within the inbound queue bound, `eq1_mqtt_options_set_inbound_queue`),
/// and handed over in order once one appears; unmatched QoS 0 messages are dropped.
/// `user_data` must stay valid until the callback is replaced or removed, or the client freed.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_message_cb`, `eq1_mqtt_client_subscribe`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_set_message_callback(
    client: *mut eq1_mqtt_client,
    callback: eq1_mqtt_message_cb,
    user_data: *mut c_void,
) -> eq1_status {
    with_client(client, |c| {
        let handler = callback.map(|callback| c_message_handler(callback, UserData(user_data)));
        c.client.set_message_handler(handler);
        Ok(())
    })
}

/// The message handler that calls a C callback with the C view of each message.
pub(crate) fn c_message_handler(
    callback: unsafe extern "C" fn(*mut c_void, *const eq1_mqtt_message),
    user_data: UserData,
) -> MessageHandler {
    Arc::new(move |message: &Message| {
        let user_data = user_data;
        let properties = message.properties.as_deref().map(PropertiesView::new);
        let properties_ptr = properties
            .as_ref()
            .map_or(std::ptr::null(), |p| &p.view as *const eq1_mqtt_properties);
        with_c_topic(&message.topic, |topic| {
            let view = eq1_mqtt_message {
                properties: properties_ptr,
                topic,
                topic_len: message.topic.len(),
                payload: message.payload.as_ptr(),
                payload_len: message.payload.len(),
                qos: message.qos as c_int,
                retain: message.retain,
                dup: message.dup,
                packet_id: message.packet_id,
                subscription_ids: if message.subscription_ids.is_empty() {
                    std::ptr::null()
                } else {
                    message.subscription_ids.as_ptr()
                },
                subscription_id_count: message.subscription_ids.len(),
            };
            // SAFETY: the user's callback; `view` and what it points to outlive the call.
            unsafe { callback(user_data.0, &view) }
        })
    })
}

thread_local! {
    // Message callbacks run on one dispatcher thread per client, never nested: one buffer per
    // thread spares an allocation per message for the NUL-terminated topic.
    static C_TOPIC: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `body` with `topic` as a NUL-terminated C string that lives until it returns.
fn with_c_topic<R>(topic: &str, body: impl FnOnce(*const c_char) -> R) -> R {
    C_TOPIC.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            buffer.extend_from_slice(topic.as_bytes());
            buffer.push(0);
            body(buffer.as_ptr().cast())
        }
        // Only reachable if a callback were ever nested: fall back to its own copy.
        Err(_) => body(c_string(topic).as_ptr()),
    })
}
