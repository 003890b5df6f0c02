//! Callbacks at the C boundary: their typedefs, the structs they receive, and the functions
//! that install them on a client. Every callback runs on the client's dispatcher thread, one at
//! a time, in the order the events happened; what it receives is borrowed until it returns.

use crate::core::error::Error;
use crate::core::tokens::AckDetail;
use crate::ffi::boundary::c_string;
use crate::ffi::client::{eq1_mqtt_client, eq1_token, with_client, UserData};
use crate::ffi::status::eq1_status;
use crate::ffi::v5::{
    array_ptr, eq1_mqtt_properties, eq1_mqtt_user_property, CStrings, PropertiesView,
};
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
    /// On connect: what the broker's CONNACK said (never NULL then); NULL for other events.
    pub connack: *const eq1_mqtt_connack_info,
    /// On a loss caused by an MQTT 5.0 broker's DISCONNECT: its reason code (e.g. 0x8B
    /// server shutting down, 0x9C use another server); 0 otherwise.
    pub disconnect_reason_code: u8,
    /// That DISCONNECT's Reason String, NUL-terminated, or NULL when none.
    pub disconnect_reason_string: *const c_char,
    /// That DISCONNECT's Server Reference (another server to use), NUL-terminated, or NULL.
    pub server_reference: *const c_char,
}

/// What the broker said in CONNACK: in `eq1_mqtt_connection_event.connack` borrowed (with
/// every pointer in it) until the callback returns; from `eq1_mqtt_client_get_connack` the
/// caller's copy, every pointer in it valid until `eq1_mqtt_connack_info_free`. On MQTT
/// 3.1.1 only `session_present` is known: the rest reads as absent. For each limit,
/// `has_...` says whether the broker announced it; when it did not, MQTT 5.0's default
/// applies (no limit, or "available").
#[repr(C)]
pub struct eq1_mqtt_connack_info {
    pub session_present: bool,
    /// The client identifier the broker assigned (connecting with an empty one on MQTT 5.0),
    /// or NULL. `eq1_mqtt_client_get_id` returns it too.
    pub assigned_client_id: *const c_char,
    /// Server Keep Alive in seconds (`has_server_keep_alive`): the client uses it instead of
    /// its own keep-alive.
    pub has_server_keep_alive: bool,
    pub server_keep_alive: u16,
    /// Response Information (asked for with `eq1_mqtt_options_set_request_response_information`),
    /// or NULL.
    pub response_information: *const c_char,
    /// Server Reference, or NULL.
    pub server_reference: *const c_char,
    /// Reason String, or NULL.
    pub reason_string: *const c_char,
    /// User properties (`user_property_count` of them; NULL when none).
    pub user_properties: *const eq1_mqtt_user_property,
    pub user_property_count: usize,
    pub has_session_expiry: bool,
    /// The Session Expiry Interval the broker uses (seconds), when it announced one.
    pub session_expiry: u32,
    pub has_receive_maximum: bool,
    pub receive_maximum: u16,
    pub has_maximum_packet_size: bool,
    pub maximum_packet_size: u32,
    pub has_maximum_qos: bool,
    pub maximum_qos: u8,
    pub has_retain_available: bool,
    pub retain_available: bool,
    pub has_wildcard_available: bool,
    pub wildcard_available: bool,
    pub has_subscription_ids_available: bool,
    pub subscription_ids_available: bool,
    pub has_shared_available: bool,
    pub shared_available: bool,
    pub has_topic_alias_maximum: bool,
    pub topic_alias_maximum: u16,
}

/// The C view of a CONNACK and the NUL-terminated copies it points into. `view` first: a
/// pointer to the whole is a pointer to the view, which is what `eq1_mqtt_client_get_connack`
/// hands to C (and `eq1_mqtt_connack_info_free` takes back).
#[repr(C)]
pub(crate) struct ConnAckView {
    pub(crate) view: eq1_mqtt_connack_info,
    _strings: CStrings,
    _pairs: Vec<eq1_mqtt_user_property>,
}

impl ConnAckView {
    pub(crate) fn new(info: &crate::mqtt::shared::ConnAckInfo) -> Box<ConnAckView> {
        let mut strings = CStrings::default();
        let assigned_client_id = strings.optional(info.assigned_client_id.as_deref());
        let response_information = strings.optional(info.response_information.as_deref());
        let server_reference = strings.optional(info.server_reference.as_deref());
        let reason_string = strings.optional(info.reason_string.as_deref());
        let pairs = strings.pairs(&info.user_properties);
        let l = &info.limits;
        let view = eq1_mqtt_connack_info {
            session_present: info.session_present,
            assigned_client_id,
            has_server_keep_alive: info.server_keep_alive.is_some(),
            server_keep_alive: info.server_keep_alive.unwrap_or(0),
            response_information,
            server_reference,
            reason_string,
            user_properties: array_ptr(&pairs),
            user_property_count: pairs.len(),
            has_session_expiry: info.session_expiry.is_some(),
            session_expiry: info.session_expiry.unwrap_or(0),
            has_receive_maximum: l.receive_maximum.is_some(),
            receive_maximum: l.receive_maximum.unwrap_or(65_535),
            has_maximum_packet_size: l.maximum_packet_size.is_some(),
            maximum_packet_size: l.maximum_packet_size.unwrap_or(0),
            has_maximum_qos: l.maximum_qos.is_some(),
            maximum_qos: l.maximum_qos.unwrap_or(2),
            has_retain_available: l.retain_available.is_some(),
            retain_available: l.retain_available.unwrap_or(true),
            has_wildcard_available: l.wildcard_available.is_some(),
            wildcard_available: l.wildcard_available.unwrap_or(true),
            has_subscription_ids_available: l.subscription_ids_available.is_some(),
            subscription_ids_available: l.subscription_ids_available.unwrap_or(true),
            has_shared_available: l.shared_available.is_some(),
            shared_available: l.shared_available.unwrap_or(true),
            has_topic_alias_maximum: l.topic_alias_maximum.is_some(),
            topic_alias_maximum: l.topic_alias_maximum.unwrap_or(0),
        };
        // The pointers point into heap buffers (CString, Vec) that moving does not relocate.
        Box::new(ConnAckView {
            view,
            _strings: strings,
            _pairs: pairs,
        })
    }
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

/// How one publish ended, with what an MQTT 5.0 broker said in its acknowledgement. Passed
/// to the delivery report callback; borrowed (with every pointer in it) until it returns.
#[repr(C)]
pub struct eq1_mqtt_delivery_report {
    pub token: eq1_token,
    /// `EQ1_STATUS_OK` when delivered; otherwise the failure (`EQ1_STATUS_PUBLISH_REFUSED` when
    /// the broker answered with a failure reason code, `EQ1_STATUS_EXPIRED`, ...).
    pub status: eq1_status,
    /// Detail of `status`, NUL-terminated, "" on success. Never NULL.
    pub detail: *const c_char,
    /// The reason code of the broker's PUBACK / PUBREC (PUBCOMP when it says more): 0x00
    /// success, 0x10 no matching subscribers, from 0x80 a failure (0x87 not authorized, 0x97
    /// quota exceeded, ...). 0 when the broker gave none (MQTT 3.1.1, QoS 0, or no answer).
    pub reason_code: u8,
    /// The broker's Reason String, NUL-terminated, or NULL when it sent none.
    pub reason_string: *const c_char,
    /// The broker's user properties on the acknowledgement (`user_property_count` of them;
    /// NULL when none).
    pub user_properties: *const eq1_mqtt_user_property,
    pub user_property_count: usize,
}

/// Receives a delivery report per publish token (see `eq1_mqtt_delivery_report`); `user_data`
/// is the client's.
pub type eq1_mqtt_delivery_report_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, report: *const eq1_mqtt_delivery_report)>;

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
                let mut strings = CStrings::default();
                let text = strings.keep(&reason.map(Error::message).unwrap_or_default());
                let host = strings.keep(event.broker.as_ref().map_or("", |b| b.host.as_str()));
                let connack = event.connack.as_deref().map(ConnAckView::new);
                let disconnect = event.server_disconnect.as_deref();
                let disconnect_reason_string =
                    strings.optional(disconnect.and_then(|d| d.reason_string.as_deref()));
                let server_reference =
                    strings.optional(disconnect.and_then(|d| d.server_reference.as_deref()));
                let view = eq1_mqtt_connection_event {
                    state: match event.state {
                        ConnectionState::Connected => eq1_connection_state::Connected,
                        ConnectionState::ConnectionLost => eq1_connection_state::Lost,
                        ConnectionState::Disconnected => eq1_connection_state::Disconnected,
                    },
                    reason: reason.map(eq1_status::from).unwrap_or(eq1_status::Ok),
                    reason_text: text,
                    session_present: event.session_present,
                    broker_host: host,
                    broker_port: event.broker.as_ref().map(|b| b.port as c_int).unwrap_or(0),
                    connack: connack.as_ref().map_or(std::ptr::null(), |c| {
                        &c.view as *const eq1_mqtt_connack_info
                    }),
                    disconnect_reason_code: disconnect.map_or(0, |d| d.reason_code),
                    disconnect_reason_string,
                    server_reference,
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
            Arc::new(
                move |token: u64, result: &crate::Result<()>, _: Option<&AckDetail>| {
                    let user_data = user_data;
                    let (status, detail) = match result {
                        Ok(()) => (eq1_status::Ok, c_string("")),
                        Err(e) => (eq1_status::from(e), c_string(&e.message())),
                    };
                    // SAFETY: the user's callback; `detail` outlives the call.
                    unsafe { callback(user_data.0, token, status, detail.as_ptr()) }
                },
            ) as crate::mqtt::shared::DeliveryHandler
        });
        c.client.set_delivery_handler(handler);
        Ok(())
    })
}

/// Sets (or with NULL removes) the delivery report callback: like the delivery callback
/// (`eq1_mqtt_client_set_delivery_callback`), called once per publish token, but with the
/// reason code, reason string and user properties of the broker's acknowledgement (MQTT 5.0).
/// A client has one delivery callback: this replaces one set with
/// `eq1_mqtt_client_set_delivery_callback`, and that one replaces this.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_delivery_report`, `eq1_mqtt_client_wait_report`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_set_delivery_report_callback(
    client: *mut eq1_mqtt_client,
    callback: eq1_mqtt_delivery_report_cb,
) -> eq1_status {
    with_client(client, |c| {
        let user_data = c.user_data;
        let handler = callback.map(|callback| {
            Arc::new(
                move |token: u64, result: &crate::Result<()>, detail: Option<&AckDetail>| {
                    let user_data = user_data;
                    let (status, text) = match result {
                        Ok(()) => (eq1_status::Ok, c_string("")),
                        Err(e) => (eq1_status::from(e), c_string(&e.message())),
                    };
                    let mut strings = CStrings::default();
                    let reason_string = strings.optional(detail.and_then(|d| d.text.as_deref()));
                    let pairs = strings.pairs(detail.map_or(&[][..], |d| &d.properties));
                    let report = eq1_mqtt_delivery_report {
                        token,
                        status,
                        detail: text.as_ptr(),
                        reason_code: detail.map_or(0, |d| d.code),
                        reason_string,
                        user_properties: array_ptr(&pairs),
                        user_property_count: pairs.len(),
                    };
                    // SAFETY: the user's callback; `report` and its strings outlive the call.
                    unsafe { callback(user_data.0, &report) }
                },
            ) as crate::mqtt::shared::DeliveryHandler
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
