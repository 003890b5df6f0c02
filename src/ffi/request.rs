//! Request/response and automatic topic aliases at the C boundary (MQTT 5.0): the blocking and
//! the asynchronous request, the response they hand back, the responder helper, and their
//! options.

use crate::core::error::Error;
use crate::ffi::boundary::{
    bytes, c_str, c_string, call, optional_c_str, optional_out_param, out_param, set_last_error,
};
use crate::ffi::callbacks::eq1_mqtt_message;
use crate::ffi::client::{client_handle, eq1_mqtt_client, eq1_token, UserData};
use crate::ffi::options::{eq1_mqtt_options, with_options};
use crate::ffi::status::eq1_status;
use crate::ffi::v5::{eq1_mqtt_properties, PropertiesView};
use crate::mqtt::Message;
use std::ffi::{c_char, c_int, c_void, CString};

/// The reply to a request. From `eq1_mqtt_client_request` it is the caller's, to release with
/// `eq1_mqtt_response_free`; given to an `eq1_mqtt_response_cb` it is borrowed until the
/// callback returns. Every pointer in it lives as long as the response.
#[repr(C)]
pub struct eq1_mqtt_response {
    /// The topic the reply came on (the request's response topic), NUL-terminated.
    pub topic: *const c_char,
    /// The reply's payload (not NUL-terminated; NULL when `payload_len` is 0).
    pub payload: *const u8,
    pub payload_len: usize,
    /// The reply's MQTT 5.0 properties (its correlation data among them), or NULL.
    pub properties: *const eq1_mqtt_properties,
}

/// Receives the outcome of `eq1_mqtt_client_request_async`, exactly once, on the client's
/// dispatcher thread: `EQ1_STATUS_OK` with the reply, or `EQ1_STATUS_TIMEOUT` (no reply within
/// the timeout) or `EQ1_STATUS_DISCONNECTED` (the client was freed first) with `response` NULL;
/// `eq1_last_error_message` gives the detail inside the callback. `response` is borrowed until
/// the callback returns.
pub type eq1_mqtt_response_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        status: eq1_status,
        response: *const eq1_mqtt_response,
    ),
>;

/// An `eq1_mqtt_response` with what it points into. `view` first: a pointer to the whole is a
/// pointer to the view, which is what C holds.
#[repr(C)]
struct OwnedResponse {
    view: eq1_mqtt_response,
    _topic: CString,
    _message: Message,
    _properties: Option<Box<PropertiesView>>,
}

impl OwnedResponse {
    fn new(message: Message) -> Box<OwnedResponse> {
        let topic = c_string(&message.topic);
        let properties = message.properties.as_deref().map(PropertiesView::new);
        let view = eq1_mqtt_response {
            topic: topic.as_ptr(),
            payload: if message.payload.is_empty() {
                std::ptr::null()
            } else {
                message.payload.as_ptr()
            },
            payload_len: message.payload.len(),
            properties: properties
                .as_ref()
                .map_or(std::ptr::null(), |p| &p.view as *const eq1_mqtt_properties),
        };
        // The pointers point into heap buffers (CString, Bytes, Box) that moving does not
        // relocate.
        Box::new(OwnedResponse {
            view,
            _topic: topic,
            _message: message,
            _properties: properties,
        })
    }
}

/// A request's timeout from C: positive.
fn request_timeout(ms: c_int) -> crate::Result<std::time::Duration> {
    let timeout = crate::ffi::boundary::timeout_ms(ms, "request")?;
    if timeout.is_zero() {
        return Err(Error::InvalidArgument(
            "a request needs a timeout above 0 ms".into(),
        ));
    }
    Ok(timeout)
}

/// MQTT 5.0 request/response: publishes `payload` to `topic` (QoS 1) as a request, with a
/// response topic and a fresh correlation data, and waits up to `timeout_ms` for the reply
/// with that correlation data. The response topic is the broker's Response Information (when
/// it gave one, see `eq1_mqtt_options_set_request_response_information`) or
/// `<prefix><client id>` (`eq1_mqtt_options_set_response_topic_prefix`, default
/// "eq1/response/"); the client subscribes it once, on its first request, and restores it
/// after reconnects like any subscription. A responder answers with `eq1_mqtt_client_respond`.
/// On success `*out_response` is the reply: the caller owns it and releases it with
/// `eq1_mqtt_response_free`. Not from inside the client's own callbacks (use
/// `eq1_mqtt_client_request_async` there). Thread-safe: many threads may wait at once.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the reply came: `*out_response` holds it.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client`, `topic` or `out_response` is NULL, or `payload`
///   is NULL with a non-zero `len`.
/// - `EQ1_STATUS_INVALID_UTF8` when `topic` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` when `topic` is empty, longer than 65,535 bytes or contains a
///   wildcard.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is not positive.
/// - `EQ1_STATUS_MQTT5_REQUIRED` when the client speaks MQTT 3.1.1.
/// - `EQ1_STATUS_CALLED_FROM_CALLBACK` inside one of the client's own callbacks.
/// - `EQ1_STATUS_TOO_MANY_REQUESTS` when `eq1_mqtt_options_set_max_pending_requests` requests
///   are already waiting.
/// - `EQ1_STATUS_TIMEOUT` when no reply came within `timeout_ms` (or subscribing the response
///   topic took longer).
/// - `EQ1_STATUS_DISCONNECTED` when the client was freed while waiting.
/// - `EQ1_STATUS_NOT_CONNECTED`, `EQ1_STATUS_SUBSCRIBE_REFUSED`: the response topic could not be
///   subscribed (not connected, or refused by the broker).
/// - The statuses of `eq1_mqtt_client_publish` when the request could not be queued.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_request_async`, `eq1_mqtt_client_respond`,
/// `eq1_mqtt_response_free`.
///
/// # Safety
/// `client` NULL or live; `topic` NULL or NUL-terminated; `payload` NULL or `len` bytes;
/// `out_response` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_request(
    client: *mut eq1_mqtt_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    timeout_ms: c_int,
    out_response: *mut *mut eq1_mqtt_response,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out_response, std::ptr::null_mut(), "out (response)") }?;
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "payload") }?;
        let timeout = request_timeout(timeout_ms)?;
        let reply = c.client.request(topic, payload, timeout)?;
        *out = Box::into_raw(OwnedResponse::new(reply)).cast::<eq1_mqtt_response>();
        Ok(())
    })
}

/// `eq1_mqtt_client_request` without waiting: `callback` receives the reply, or
/// `EQ1_STATUS_TIMEOUT` once `timeout_ms` passed, or `EQ1_STATUS_DISCONNECTED` when the client
/// is freed first: exactly once, on the client's dispatcher thread (see
/// `eq1_mqtt_response_cb`), unless this function fails, in which case it is never called.
/// `user_data` is passed back to it and must stay valid until then. May be called from inside
/// the client's callbacks. The first request of a client subscribes its response topic and
/// waits for that SUBACK (within `timeout_ms`).
///
/// Returns:
/// - `EQ1_STATUS_OK` when the request is sent: `callback` will be called once.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client`, `topic` or `callback` is NULL, or `payload` is
///   NULL with a non-zero `len`.
/// - `EQ1_STATUS_INVALID_UTF8`, `EQ1_STATUS_INVALID_TOPIC`, `EQ1_STATUS_INVALID_ARGUMENT`,
///   `EQ1_STATUS_MQTT5_REQUIRED`, `EQ1_STATUS_TOO_MANY_REQUESTS`: as for
///   `eq1_mqtt_client_request`.
/// - `EQ1_STATUS_TIMEOUT`, `EQ1_STATUS_NOT_CONNECTED`, `EQ1_STATUS_SUBSCRIBE_REFUSED` when the
///   response topic could not be subscribed.
/// - The statuses of `eq1_mqtt_client_publish` when the request could not be queued.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_request`, `eq1_mqtt_response_cb`.
///
/// # Safety
/// `client` NULL or live; `topic` NULL or NUL-terminated; `payload` NULL or `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_request_async(
    client: *mut eq1_mqtt_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    timeout_ms: c_int,
    callback: eq1_mqtt_response_cb,
    user_data: *mut c_void,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "payload") }?;
        let callback =
            callback.ok_or_else(|| Error::NullArgument("response callback is NULL".into()))?;
        let timeout = request_timeout(timeout_ms)?;
        let user_data = UserData(user_data);
        let handler = Box::new(move |outcome: crate::Result<Message>| {
            let user_data = user_data;
            match outcome {
                Ok(reply) => {
                    let owned = OwnedResponse::new(reply);
                    // SAFETY: the user's callback; the response outlives the call.
                    unsafe { callback(user_data.0, eq1_status::Ok, &owned.view) }
                }
                Err(e) => {
                    set_last_error(&e.message());
                    // SAFETY: the user's callback, with no response.
                    unsafe { callback(user_data.0, eq1_status::from(&e), std::ptr::null()) }
                }
            }
        });
        c.client.request_async(topic, payload, timeout, handler)
    })
}

/// Releases a response from `eq1_mqtt_client_request`. NULL is a no-op. Never pass one that a
/// callback borrowed.
///
/// Returns: nothing.
///
/// See also: `eq1_mqtt_client_request`.
///
/// # Safety
/// `response` is NULL or came from `eq1_mqtt_client_request` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_response_free(response: *mut eq1_mqtt_response) {
    crate::ffi::boundary::call_value((), || {
        if !response.is_null() {
            // SAFETY: created by Box::into_raw of an OwnedResponse (its first field is the
            // view) in eq1_mqtt_client_request, released once.
            drop(unsafe { Box::from_raw(response.cast::<OwnedResponse>()) });
        }
    })
}

/// The responder's side: publishes `payload` to the response topic of `request` (a message
/// received in a callback) with its correlation data, at `qos`. May be called inside the
/// callback that received the request, or later with a copy whose pointers are still valid.
/// `*out_token` (may be NULL) receives the publish's token.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the response is queued.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `request` is NULL, or `payload` is NULL with a
///   non-zero `len`.
/// - `EQ1_STATUS_MQTT5_REQUIRED` when the client speaks MQTT 3.1.1.
/// - `EQ1_STATUS_NO_RESPONSE_TOPIC` when `request` has no response topic (it is not a request).
/// - `EQ1_STATUS_INVALID_UTF8` when its response topic is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` when its response topic is not a valid topic name.
/// - `EQ1_STATUS_INVALID_QOS` when `qos` is outside 0..2.
/// - The other statuses of `eq1_mqtt_client_publish`.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_request`, `eq1_mqtt_message`.
///
/// # Safety
/// `client` NULL or live; `request` NULL or a valid message whose pointers follow the
/// documentation of `eq1_mqtt_message`; `payload` NULL or `len` bytes; `out_token` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_respond(
    client: *mut eq1_mqtt_client,
    request: *const eq1_mqtt_message,
    payload: *const u8,
    len: usize,
    qos: c_int,
    out_token: *mut eq1_token,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let out = unsafe { optional_out_param(out_token, 0) };
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let request = unsafe { request.as_ref() }
            .ok_or_else(|| Error::NullArgument("request is NULL".into()))?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "payload") }?;
        let qos = crate::mqtt::validate::qos(qos)?;
        // SAFETY: the message's pointers follow its documentation (this function's contract).
        let properties = unsafe { request.properties.as_ref() };
        let (topic, correlation) = match properties {
            None => (None, &[][..]),
            Some(p) => (
                // SAFETY: as above.
                unsafe { optional_c_str(p.response_topic, "response topic") }?,
                // SAFETY: as above.
                unsafe {
                    bytes(
                        p.correlation_data,
                        p.correlation_data_len,
                        "correlation data",
                    )
                }?,
            ),
        };
        let has_correlation = properties.is_some_and(|p| !p.correlation_data.is_null());
        let token =
            c.client
                .respond_to(topic, has_correlation.then_some(correlation), payload, qos)?;
        if let Some(out) = out {
            *out = token;
        }
        Ok(())
    })
}

/// MQTT 5.0: automatic topic aliases (default on). Within the Topic Alias Maximum the broker
/// announced in CONNACK, a topic published again is sent as a 2-byte alias instead of the
/// whole topic; when all aliases are taken, the least recently used one is given to the new
/// topic. Aliases belong to one connection and are set up afresh after every reconnect.
/// Nothing changes for a broker that allows no aliases, nor on MQTT 3.1.1. Worst case: a strict
/// cycle over more topics than the broker allows evicts each alias just before its topic comes
/// back, and every PUBLISH is then 3 bytes larger; turn it off for such a stream.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_topic_alias_maximum` (the other direction).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_topic_alias_auto(
    options: *mut eq1_mqtt_options,
    enabled: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.set_topic_alias_auto(enabled);
        Ok(())
    })
}

/// Request/response: the prefix of the response topic when the broker gives no Response
/// Information: requests are answered on `<prefix><client id>` (default prefix
/// "eq1/response/"; wildcard characters in the client id become '_'). At most 1,024 bytes;
/// may be "".
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `prefix` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `prefix` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` when `prefix` contains a wildcard (`+`, `#`).
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `prefix` is longer than 1,024 bytes.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_request`.
///
/// # Safety
/// `options` is NULL or live; `prefix` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_response_topic_prefix(
    options: *mut eq1_mqtt_options,
    prefix: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.set_response_topic_prefix(unsafe { c_str(prefix, "response topic prefix") }?)
    })
}

/// Request/response: how many requests may wait for their replies at once, 1..1000000
/// (default 10,000). Beyond it a request fails with `EQ1_STATUS_TOO_MANY_REQUESTS`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `maximum` is outside 1..1000000.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_request_async`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_max_pending_requests(
    options: *mut eq1_mqtt_options,
    maximum: i64,
) -> eq1_status {
    with_options(options, |o| o.set_max_pending_requests(maximum))
}
