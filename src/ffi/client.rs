//! `eq1_mqtt_client`: the C view of `mqtt::Client`, its callbacks and the structs they receive.
//!
//! Threads: every client function may be called from any thread, including from inside the
//! client's own callbacks, except `eq1_mqtt_client_free` (refused inside a callback). Callbacks
//! run on the client's dispatcher thread, one at a time, in the order events happened.

use crate::core::error::Error;
use crate::ffi::boundary::{
    bytes, c_str, call, call_value, handle, optional_c_str, optional_out_param, out_param,
    process_id,
};
use crate::ffi::options::eq1_mqtt_options;
use crate::ffi::status::eq1_status;
use crate::mqtt::subscriptions::MessageHandler;
use crate::mqtt::{Client, ConnectionEvent, ConnectionState, Message, PublishProperties};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

/// Identifies one publish; 0 is never a valid token.
pub type eq1_token = u64;

/// Opaque MQTT client. Thread-safe (see the module notes above).
pub struct eq1_mqtt_client {
    client: Client,
    user_data: UserData,
    user_data_free: eq1_free_cb,
    /// The process that created it: after fork() the child has a copy without its threads.
    creator_pid: u32,
}

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

/// One MQTT 5.0 user property (a name/value pair of UTF-8 strings).
#[repr(C)]
pub struct eq1_mqtt_user_property {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// MQTT 5.0 PUBLISH properties. Zero-initialise (`eq1_mqtt_properties p = {0};`) and set what
/// you need: zero means "absent" for every field. Given to
/// `eq1_mqtt_client_publish_with_properties` (borrowed for the call, copied) and, for received
/// messages, in `eq1_mqtt_message.properties` (borrowed until the callback returns).
#[repr(C)]
pub struct eq1_mqtt_properties {
    /// Whether `payload_is_utf8` is set.
    pub has_payload_format: bool,
    /// Payload format indicator: true = UTF-8 text, false = unspecified bytes.
    pub payload_is_utf8: bool,
    /// Whether `message_expiry` is set.
    pub has_message_expiry: bool,
    /// Seconds after which the broker discards the message if it is still undelivered.
    pub message_expiry: u32,
    /// NUL-terminated, or NULL when absent.
    pub content_type: *const c_char,
    /// Topic for a reply (request/response), NUL-terminated, or NULL when absent.
    pub response_topic: *const c_char,
    /// Correlation data (bytes), NULL with length 0 when absent.
    pub correlation_data: *const u8,
    pub correlation_data_len: usize,
    /// `user_property_count` name/value pairs (NULL when the count is 0).
    pub user_properties: *const eq1_mqtt_user_property,
    pub user_property_count: usize,
}

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

/// Counters since the client was created (`eq1_mqtt_client_get_stats`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct eq1_mqtt_stats {
    /// Publishes accepted by `eq1_mqtt_client_publish`.
    pub published: u64,
    /// Publishes completed (QoS 0 written, QoS 1 PUBACK, QoS 2 PUBCOMP).
    pub delivered: u64,
    /// Publishes reported failed (other than dropped).
    pub failed: u64,
    /// Messages received from the broker.
    pub received: u64,
    /// Publishes waiting in the outbox now.
    pub queued: u64,
    /// Publishes dropped from the full outbox.
    pub dropped: u64,
    /// Successful automatic reconnects.
    pub reconnects: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Receives messages of one subscription: `user_data` is the pointer given to subscribe.
pub type eq1_mqtt_message_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, message: *const eq1_mqtt_message)>;

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

/// Releases user data; called exactly once.
pub type eq1_free_cb = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A user pointer handed back to C callbacks on the dispatcher thread.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: the library only passes the pointer back to the user's callbacks; the header tells
// users that callbacks run on the dispatcher thread.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer itself is never dereferenced by the library.
unsafe impl Sync for UserData {}

/// Creates a client (nothing connects yet). `user_data` goes to the connection and delivery
/// callbacks; `user_data_free` (may be NULL) runs exactly once, in `eq1_mqtt_client_free`.
/// The options are copied: free them whenever you like. On failure `*out` stays NULL and
/// `user_data_free` is not called.
///
/// # Safety
/// `options` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_new(
    options: *const eq1_mqtt_options,
    user_data: *mut c_void,
    user_data_free: eq1_free_cb,
    out: *mut *mut eq1_mqtt_client,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, std::ptr::null_mut(), "out (client pointer)") }?;
        // SAFETY: per this function's contract.
        let options = unsafe { handle(options, "options") }?;
        options.inner.check_consistent()?;
        let client = Client::new(options.inner.clone())?;
        *out = Box::into_raw(Box::new(eq1_mqtt_client {
            client,
            user_data: UserData(user_data),
            user_data_free,
            creator_pid: process_id(),
        }));
        Ok(())
    })
}

/// Frees the client: stops its connection at once (no DISCONNECT: call
/// `eq1_mqtt_client_disconnect` first for a clean end), joins its threads, then calls
/// `user_data_free`. No callback runs after it returns; a callback already running is waited
/// for, events still queued for callbacks are dropped. Publishes still in flight are
/// abandoned. Refused with `EQ1_STATUS_CALLED_FROM_CALLBACK` inside the client's own callback
/// (the client stays valid then). NULL is a no-op. In a child of fork() a client inherited
/// from the parent is released without joining (its threads do not exist there): this returns
/// at once and runs `user_data_free`, leaving the copy's memory allocated.
///
/// # Safety
/// `client` is NULL or live, and no other thread uses it during or after the call.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_free(client: *mut eq1_mqtt_client) -> eq1_status {
    call(|| {
        if client.is_null() {
            return Ok(());
        }
        // SAFETY: non-NULL and live per this function's contract.
        let inherited = unsafe { &*client }.creator_pid != process_id();
        if !inherited {
            // SAFETY: as above.
            unsafe { &*client }.client.shutdown()?;
        }
        // SAFETY: created by Box::into_raw in eq1_mqtt_client_new; shut down; released once.
        let owned = unsafe { Box::from_raw(client) };
        let (user_data, free) = (owned.user_data, owned.user_data_free);
        if inherited {
            // A copy made by fork(): dropping it would join threads that do not exist in this
            // process (forever). Its memory stays allocated; the parent's client is untouched.
            std::mem::forget(owned.client);
        } else {
            drop(owned);
        }
        if let Some(free) = free {
            // SAFETY: the user's finalizer with the user's pointer, exactly once.
            unsafe { free(user_data.0) };
        }
        Ok(())
    })
}

fn with_client(
    client: *const eq1_mqtt_client,
    body: impl FnOnce(&eq1_mqtt_client) -> crate::Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: the caller passes NULL or a live client (header contract).
        let client = unsafe { client_handle(client) }?;
        body(client)
    })
}

/// Borrows a client, refusing a copy inherited through fork().
///
/// # Safety
/// `client` is NULL or live.
unsafe fn client_handle<'a>(client: *const eq1_mqtt_client) -> crate::Result<&'a eq1_mqtt_client> {
    // SAFETY: forwarded contract.
    let c = unsafe { handle(client, "client") }?;
    if c.creator_pid != process_id() {
        return Err(Error::InvalidState(
            "this client was created before fork() in the parent process; its threads and \
             connection do not exist here: the child process must create its own client"
                .into(),
        ));
    }
    Ok(c)
}

/// Sets (or with NULL removes) the connection callback.
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

/// Sets (or with NULL removes) the delivery callback, called once per publish token.
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

/// Sets the will (last will and testament) sent with the next CONNECT. Only while not
/// connected (`EQ1_STATUS_INVALID_STATE` otherwise). Payload up to 65,535 bytes.
///
/// # Safety
/// `client` is NULL or live; `topic` NULL or NUL-terminated; `payload` NULL or `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_set_will(
    client: *mut eq1_mqtt_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: c_int,
    retain: bool,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "will topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "will payload") }?;
        c.client
            .set_will(topic, payload, crate::mqtt::validate::qos(qos)?, retain)
    })
}

/// Removes the will set with `eq1_mqtt_client_set_will`; only while not connected.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_clear_will(client: *mut eq1_mqtt_client) -> eq1_status {
    with_client(client, |c| c.client.clear_will())
}

/// Connects and returns after CONNACK, or the first failure, within `timeout_ms` (0: the
/// options' connect timeout). Each cause has its status: `EQ1_STATUS_CONNECTION_REFUSED`,
/// `_DNS_FAILED`, `_TIMEOUT`, `_BAD_CREDENTIALS`, `_NOT_AUTHORIZED`, `_TLS_UNKNOWN_ISSUER`,
/// `_TLS_HOSTNAME_MISMATCH`, `_TLS_CERT_EXPIRED`, `_TLS_CLIENT_CERT_REJECTED`, ...
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_connect(
    client: *mut eq1_mqtt_client,
    timeout_ms: c_int,
) -> eq1_status {
    with_client(client, |c| {
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "connect")?;
        c.client.connect(timeout).map(drop)
    })
}

/// Queues a publish and returns at once (never waits on the network). `*out_token` (may be
/// NULL) receives its token: wait on it with `eq1_mqtt_client_wait`, or learn its outcome in
/// the delivery callback. The payload is copied.
///
/// # Safety
/// `client` NULL or live; `topic` NULL or NUL-terminated; `payload` NULL or `len` bytes;
/// `out_token` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_publish(
    client: *mut eq1_mqtt_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: c_int,
    retain: bool,
    out_token: *mut eq1_token,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let out = unsafe { optional_out_param(out_token, 0) };
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "payload") }?;
        let token = c
            .client
            .publish(topic, payload, crate::mqtt::validate::qos(qos)?, retain)?;
        if let Some(out) = out {
            *out = token;
        }
        Ok(())
    })
}

/// `eq1_mqtt_client_publish` with MQTT 5.0 properties (`properties` may be NULL). On an
/// MQTT 3.1.1 client, properties are refused with `EQ1_STATUS_INVALID_ARGUMENT`. Everything
/// is copied before the call returns.
///
/// # Safety
/// As for `eq1_mqtt_client_publish`; `properties` is NULL or points to a valid struct whose
/// pointers follow its field documentation.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn eq1_mqtt_client_publish_with_properties(
    client: *mut eq1_mqtt_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: c_int,
    retain: bool,
    properties: *const eq1_mqtt_properties,
    out_token: *mut eq1_token,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let out = unsafe { optional_out_param(out_token, 0) };
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "payload") }?;
        // SAFETY: per this function's contract.
        let properties = unsafe { properties.as_ref() }
            .map(|p| {
                // SAFETY: the struct's pointers follow its documentation (this function's contract).
                unsafe { properties_from_c(p) }
            })
            .transpose()?;
        let token = c.client.publish_with_properties(
            topic,
            payload,
            crate::mqtt::validate::qos(qos)?,
            retain,
            properties,
        )?;
        if let Some(out) = out {
            *out = token;
        }
        Ok(())
    })
}

/// Blocks until the publish behind `token` is complete (QoS 0: written; QoS 1: PUBACK;
/// QoS 2: PUBCOMP) and returns `EQ1_STATUS_OK`, its failure status, or `EQ1_STATUS_TIMEOUT`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_wait(
    client: *mut eq1_mqtt_client,
    token: eq1_token,
    timeout_ms: c_int,
) -> eq1_status {
    with_client(client, |c| {
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "wait")?;
        c.client.wait(token, timeout)
    })
}

/// Subscribes `callback` to `filter` and waits up to `timeout_ms` for the broker's answer;
/// `*out_granted_qos` (may be NULL) receives the granted QoS. A message matching several
/// subscriptions reaches each of their callbacks; subscribing the same filter again replaces
/// its callback (the old one is not called after this returns). `user_data` must stay valid
/// until unsubscribed, replaced, or the client is freed.
/// Refusal by the broker: `EQ1_STATUS_SUBSCRIBE_REFUSED`.
///
/// # Safety
/// `client` NULL or live; `filter` NULL or NUL-terminated; `out_granted_qos` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_subscribe(
    client: *mut eq1_mqtt_client,
    filter: *const c_char,
    qos: c_int,
    callback: eq1_mqtt_message_cb,
    user_data: *mut c_void,
    timeout_ms: c_int,
    out_granted_qos: *mut c_int,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let out = unsafe { optional_out_param(out_granted_qos, -1) };
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let filter = unsafe { c_str(filter, "filter") }?;
        let callback = callback.ok_or_else(|| {
            Error::NullArgument("message callback is NULL; a subscription needs one".into())
        })?;
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "subscribe")?;
        let handler = c_message_handler(callback, UserData(user_data));
        let qos = crate::mqtt::validate::qos(qos)?;
        let granted = c.client.subscribe(filter, qos, handler, timeout)?;
        if let Some(out) = out {
            *out = granted as c_int;
        }
        Ok(())
    })
}

/// Unsubscribes `filter` and waits up to `timeout_ms` for UNSUBACK. Any filter may be given,
/// also one this client never subscribed (a persistent session of an earlier run may hold
/// it). Once this returns OK, the filter's callback is not called again and its `user_data`
/// may be freed (a call already running on the dispatcher thread is waited for, within the
/// timeout; from inside a callback it is not). `EQ1_STATUS_TIMEOUT` when UNSUBACK or a
/// running callback outlasted the timeout (the subscription is removed all the same).
///
/// # Safety
/// `client` NULL or live; `filter` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_unsubscribe(
    client: *mut eq1_mqtt_client,
    filter: *const c_char,
    timeout_ms: c_int,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let filter = unsafe { c_str(filter, "filter") }?;
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "unsubscribe")?;
        c.client.unsubscribe(filter, timeout)
    })
}

/// `eq1_mqtt_client_unsubscribe` for `count` filters (NUL-terminated UTF-8 each), sent in
/// one UNSUBSCRIBE.
///
/// # Safety
/// `client` NULL or live; `filters` NULL or `count` pointers, each NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_unsubscribe_many(
    client: *mut eq1_mqtt_client,
    filters: *const *const c_char,
    count: usize,
    timeout_ms: c_int,
) -> eq1_status {
    with_client(client, |c| {
        if count == 0 {
            return Err(Error::InvalidArgument("no filter to unsubscribe".into()));
        }
        if filters.is_null() {
            return Err(Error::NullArgument(format!(
                "filters is NULL but count is {count}"
            )));
        }
        let mut list = Vec::with_capacity(count.min(1024));
        for i in 0..count {
            // SAFETY: `filters` points to `count` pointers (this function's contract).
            let filter = unsafe { *filters.add(i) };
            // SAFETY: per this function's contract.
            list.push(unsafe { c_str(filter, &format!("filter {i}")) }?);
        }
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "unsubscribe")?;
        c.client.unsubscribe_many(&list, timeout)
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

/// Waits up to `timeout_ms` for in-flight QoS 1/2 publishes, then sends DISCONNECT (the broker
/// discards the will). Still-unacknowledged publishes are then reported failed with
/// `EQ1_STATUS_DISCONNECTED`. Stops automatic reconnection. The client may connect again.
/// Several threads may disconnect at once: all of them wait for the same DISCONNECT and get
/// its outcome. `EQ1_STATUS_TIMEOUT` when DISCONNECT could not be written within 2 s (a
/// broker that does not read); `EQ1_STATUS_NOT_CONNECTED` when the client is not connected
/// (also for a call that comes after another thread's disconnect completed).
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_disconnect(
    client: *mut eq1_mqtt_client,
    timeout_ms: c_int,
) -> eq1_status {
    with_client(client, |c| {
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "disconnect")?;
        c.client.disconnect(timeout)
    })
}

/// True while connected (false for NULL).
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_is_connected(client: *const eq1_mqtt_client) -> bool {
    call_value(false, || {
        // SAFETY: per this function's contract.
        unsafe { client_handle(client) }
            .map(|c| c.client.is_connected())
            .unwrap_or(false)
    })
}

/// Fills `*out` with the client's counters.
///
/// # Safety
/// `client` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_get_stats(
    client: *const eq1_mqtt_client,
    out: *mut eq1_mqtt_stats,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, eq1_mqtt_stats::default(), "out (stats)") }?;
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        let s = c.client.stats();
        *out = eq1_mqtt_stats {
            published: s.published,
            delivered: s.delivered,
            failed: s.failed,
            received: s.received,
            queued: s.queued,
            dropped: s.dropped,
            reconnects: s.reconnects,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
        };
        Ok(())
    })
}

/// Copies the client id (given or generated) into `buf` with snprintf semantics and returns
/// its length; `buf = NULL, len = 0` asks for the length. Returns 0 for a NULL client.
///
/// # Safety
/// `client` NULL or live; `buf` NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_get_id(
    client: *const eq1_mqtt_client,
    buf: *mut c_char,
    len: usize,
) -> usize {
    call_value(0, || {
        // SAFETY: per this function's contract.
        let Ok(c) = (unsafe { client_handle(client) }) else {
            return 0;
        };
        let id = c.client.client_id();
        if !buf.is_null() && len > 0 {
            let copied = id.len().min(len - 1);
            // SAFETY: `buf` is writable for `len` bytes and `copied < len`.
            unsafe {
                std::ptr::copy_nonoverlapping(id.as_ptr(), buf.cast::<u8>(), copied);
                *buf.add(copied) = 0;
            }
        }
        id.len()
    })
}

/// The message handler that calls a C callback with the C view of each message.
fn c_message_handler(
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

fn c_string(text: &str) -> CString {
    CString::new(text).unwrap_or_else(|_| CString::new(text.replace('\0', " ")).unwrap_or_default())
}

/// Reads C properties into the core type, checking every pointer and string.
///
/// # Safety
/// The struct's pointers follow the field documentation of `eq1_mqtt_properties`.
unsafe fn properties_from_c(p: &eq1_mqtt_properties) -> crate::Result<PublishProperties> {
    // SAFETY: per this function's contract (for each pointer below).
    let content_type = unsafe { optional_c_str(p.content_type, "content type") }?;
    // SAFETY: as above.
    let response_topic = unsafe { optional_c_str(p.response_topic, "response topic") }?;
    // SAFETY: as above.
    let correlation = unsafe {
        bytes(
            p.correlation_data,
            p.correlation_data_len,
            "correlation data",
        )
    }?;
    let mut user_properties = Vec::with_capacity(p.user_property_count.min(1024));
    if p.user_property_count > 0 {
        if p.user_properties.is_null() {
            return Err(Error::NullArgument(format!(
                "user_properties is NULL but user_property_count is {}",
                p.user_property_count
            )));
        }
        for i in 0..p.user_property_count {
            // SAFETY: `user_properties` points to `user_property_count` entries.
            let pair = unsafe { &*p.user_properties.add(i) };
            // SAFETY: per this function's contract.
            let name = unsafe { c_str(pair.name, &format!("user property {i} name")) }?;
            // SAFETY: as above.
            let value = unsafe { c_str(pair.value, &format!("user property {i} value")) }?;
            user_properties.push((name.to_string(), value.to_string()));
        }
    }
    Ok(PublishProperties {
        payload_is_utf8: p.has_payload_format.then_some(p.payload_is_utf8),
        message_expiry: p.has_message_expiry.then_some(p.message_expiry),
        content_type: content_type.map(str::to_string),
        response_topic: response_topic.map(str::to_string),
        correlation_data: (!correlation.is_empty() || !p.correlation_data.is_null())
            .then(|| bytes::Bytes::copy_from_slice(correlation)),
        user_properties,
    })
}

/// The C view of received properties and the NUL-terminated copies it points into.
struct PropertiesView {
    view: eq1_mqtt_properties,
    _strings: Vec<CString>,
    _pairs: Vec<eq1_mqtt_user_property>,
}

impl PropertiesView {
    fn new(p: &PublishProperties) -> Box<PropertiesView> {
        let mut strings = Vec::new();
        let mut keep = |text: &str| {
            let s = c_string(text);
            let ptr = s.as_ptr();
            strings.push(s);
            ptr
        };
        let content_type = p
            .content_type
            .as_deref()
            .map_or(std::ptr::null(), &mut keep);
        let response_topic = p
            .response_topic
            .as_deref()
            .map_or(std::ptr::null(), &mut keep);
        let pairs: Vec<eq1_mqtt_user_property> = p
            .user_properties
            .iter()
            .map(|(name, value)| eq1_mqtt_user_property {
                name: keep(name),
                value: keep(value),
            })
            .collect();
        let correlation = p.correlation_data.as_ref();
        let view = eq1_mqtt_properties {
            has_payload_format: p.payload_is_utf8.is_some(),
            payload_is_utf8: p.payload_is_utf8.unwrap_or(false),
            has_message_expiry: p.message_expiry.is_some(),
            message_expiry: p.message_expiry.unwrap_or(0),
            content_type,
            response_topic,
            correlation_data: correlation.map_or(std::ptr::null(), |c| c.as_ptr()),
            correlation_data_len: correlation.map_or(0, |c| c.len()),
            user_properties: if pairs.is_empty() {
                std::ptr::null()
            } else {
                pairs.as_ptr()
            },
            user_property_count: pairs.len(),
        };
        // The pointers point into heap buffers (CString, Vec) that moving does not relocate.
        Box::new(PropertiesView {
            view,
            _strings: strings,
            _pairs: pairs,
        })
    }
}
