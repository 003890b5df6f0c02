//! MQTT 5.0 at the C boundary: PUBLISH properties (sent with
//! `eq1_mqtt_client_publish_with_properties`, received in `eq1_mqtt_message.properties`) and the
//! options that only MQTT 5.0 CONNECTs carry.

use crate::core::error::Error;
use crate::ffi::boundary::{
    bytes, c_str, c_string, call, call_value, optional_c_str, optional_out_param, out_param,
};
use crate::ffi::callbacks::{eq1_mqtt_connack_info, ConnAckView};
use crate::ffi::client::{client_handle, eq1_mqtt_client, eq1_token};
use crate::ffi::options::{eq1_mqtt_options, with_options};
use crate::ffi::status::eq1_status;
use crate::mqtt::PublishProperties;
use std::ffi::{c_char, c_int, CString};

/// One MQTT 5.0 user property (a name/value pair of UTF-8 strings).
#[repr(C)]
pub struct eq1_mqtt_user_property {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// NUL-terminated copies of Rust strings behind a C view: every pointer handed out lives as
/// long as this (the bytes are on the heap, so moving it does not relocate them).
#[derive(Default)]
pub(crate) struct CStrings(Vec<CString>);

impl CStrings {
    pub(crate) fn keep(&mut self, text: &str) -> *const c_char {
        let s = c_string(text);
        let ptr = s.as_ptr();
        self.0.push(s);
        ptr
    }

    /// `keep`, or NULL for `None`.
    pub(crate) fn optional(&mut self, text: Option<&str>) -> *const c_char {
        text.map_or(std::ptr::null(), |t| self.keep(t))
    }

    /// The C pairs of `pairs`, pointing into copies kept here.
    pub(crate) fn pairs(&mut self, pairs: &[(String, String)]) -> Vec<eq1_mqtt_user_property> {
        pairs
            .iter()
            .map(|(name, value)| eq1_mqtt_user_property {
                name: self.keep(name),
                value: self.keep(value),
            })
            .collect()
    }
}

/// The pointer C gets for an array: NULL when it is empty.
pub(crate) fn array_ptr<T>(items: &[T]) -> *const T {
    if items.is_empty() {
        std::ptr::null()
    } else {
        items.as_ptr()
    }
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

/// The reason string and user properties of an MQTT 5.0 acknowledgement (SUBACK, UNSUBACK),
/// filled by `eq1_mqtt_client_subscribe_many` and `eq1_mqtt_client_unsubscribe_many_with_results`.
/// Zero-initialise it (`eq1_mqtt_ack_properties ack = {0};`); once filled, its strings belong
/// to it until `eq1_mqtt_ack_properties_clear`, which must run before it is filled again
/// (filling a struct that still holds properties leaks them). All empty on MQTT 3.1.1.
#[repr(C)]
pub struct eq1_mqtt_ack_properties {
    /// NUL-terminated, or NULL when the broker sent none (several SUBACKs: joined by "; ").
    pub reason_string: *const c_char,
    /// `user_property_count` pairs (NULL when the count is 0).
    pub user_properties: *const eq1_mqtt_user_property,
    pub user_property_count: usize,
    /// The library's storage behind the pointers; do not touch.
    pub internal: *mut std::ffi::c_void,
}

impl eq1_mqtt_ack_properties {
    pub(crate) const EMPTY: eq1_mqtt_ack_properties = eq1_mqtt_ack_properties {
        reason_string: std::ptr::null(),
        user_properties: std::ptr::null(),
        user_property_count: 0,
        internal: std::ptr::null_mut(),
    };

    /// The C view of `ack`, owning copies of its strings (released by `clear`).
    pub(crate) fn filled(ack: &crate::mqtt::AckProperties) -> eq1_mqtt_ack_properties {
        let mut strings = CStrings::default();
        let reason_string = strings.optional(ack.reason_string.as_deref());
        let pairs = strings.pairs(&ack.user_properties);
        let storage = Box::new(AckStorage {
            _strings: strings,
            pairs,
        });
        eq1_mqtt_ack_properties {
            reason_string,
            user_properties: array_ptr(&storage.pairs),
            user_property_count: storage.pairs.len(),
            internal: Box::into_raw(storage).cast(),
        }
    }
}

/// What the pointers of a filled `eq1_mqtt_ack_properties` point into (heap buffers that
/// moving the box does not relocate).
struct AckStorage {
    _strings: CStrings,
    pairs: Vec<eq1_mqtt_user_property>,
}

/// ==========================================================================================
/// Section: MQTT 5.0
///
/// What only MQTT 5.0 has: PUBLISH properties (`eq1_mqtt_properties`, also received in
/// `eq1_mqtt_message.properties`) and the options only a 5.0 CONNECT carries. MQTT 5.0 is
/// chosen with `eq1_mqtt_options_set_protocol_version(options, EQ1_MQTT_V5)`; on an MQTT 3.1.1
/// client these options are kept but not sent.
/// ==========================================================================================
///
/// `eq1_mqtt_client_publish` with MQTT 5.0 properties (`properties` may be NULL; all-zero
/// properties are the same as none). Everything is copied before the call returns.
///
/// Returns: as `eq1_mqtt_client_publish`, and
/// - `EQ1_STATUS_INVALID_ARGUMENT` when properties are given to an MQTT 3.1.1 client, or the
///   content type, correlation data or a user property is longer than 65,535 bytes.
/// - `EQ1_STATUS_NULL_ARGUMENT` also when `correlation_data` is NULL with a non-zero length,
///   `user_properties` is NULL with a non-zero count, or a user property's name or value is
///   NULL.
/// - `EQ1_STATUS_INVALID_UTF8` also when `content_type`, `response_topic` or a user property is
///   not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` also when `response_topic` is not a valid topic name.
///
/// See also: `eq1_mqtt_client_publish`, `eq1_mqtt_properties`.
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
        let properties = unsafe { optional_properties_from_c(properties) }?;
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

/// `eq1_mqtt_client_set_will` with MQTT 5.0 will properties and a Will Delay Interval.
/// `properties` (may be NULL; all-zero is the same as none) are the will message's: message
/// expiry, payload format, content type, response topic, correlation data, user properties.
/// `will_delay` (seconds, 0: none) makes the broker wait that long after the connection
/// ended before it publishes the will, and not publish it at all if the client resumes its
/// session meanwhile (so the session must outlive the delay:
/// `eq1_mqtt_options_set_session_expiry`). Everything is copied. Only while idle.
///
/// Returns: as `eq1_mqtt_client_set_will`, and
/// - `EQ1_STATUS_INVALID_ARGUMENT` when properties or a will delay are given to an MQTT 3.1.1
///   client, or the content type, correlation data or a user property is longer than 65,535
///   bytes.
/// - `EQ1_STATUS_NULL_ARGUMENT` also when `correlation_data` is NULL with a non-zero length,
///   `user_properties` is NULL with a non-zero count, or a user property's name or value is
///   NULL.
/// - `EQ1_STATUS_INVALID_UTF8` also when `content_type`, `response_topic` or a user property is
///   not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` also when `response_topic` is not a valid topic name.
///
/// See also: `eq1_mqtt_client_set_will`, `eq1_mqtt_properties`.
///
/// # Safety
/// As for `eq1_mqtt_client_set_will`; `properties` is NULL or points to a valid struct whose
/// pointers follow its field documentation.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn eq1_mqtt_client_set_will_with_properties(
    client: *mut eq1_mqtt_client,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: c_int,
    retain: bool,
    properties: *const eq1_mqtt_properties,
    will_delay: u32,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "will topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "will payload") }?;
        // SAFETY: per this function's contract.
        let properties = unsafe { optional_properties_from_c(properties) }?;
        c.client.set_will_with_properties(
            topic,
            payload,
            crate::mqtt::validate::qos(qos)?,
            retain,
            properties,
            will_delay,
        )
    })
}

/// MQTT 5.0 session expiry interval in seconds (0: the session ends with the connection).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_clean_session`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_session_expiry(
    options: *mut eq1_mqtt_options,
    seconds: u32,
) -> eq1_status {
    with_options(options, |o| {
        o.session_expiry = seconds;
        Ok(())
    })
}

/// MQTT 5.0: the Receive Maximum we announce in CONNECT, 1..65535: how many QoS 1/2 messages
/// the broker may have unacknowledged towards us at once. Not sent unless set (the broker
/// then assumes 65,535). A broker that exceeds it is disconnected with reason 0x93.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `maximum` is outside 1..65535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_inflight_window` (the other direction).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_receive_maximum(
    options: *mut eq1_mqtt_options,
    maximum: c_int,
) -> eq1_status {
    with_options(options, |o| o.set_receive_maximum(maximum))
}

/// MQTT 5.0: the Topic Alias Maximum we announce, 0..65535 (default 0: not sent, the broker
/// may use no aliases). A broker alias of 0 or above it closes the connection (reason 0x94).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `maximum` is outside 0..65535.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_topic_alias_maximum(
    options: *mut eq1_mqtt_options,
    maximum: c_int,
) -> eq1_status {
    with_options(options, |o| o.set_topic_alias_maximum(maximum))
}

/// MQTT 5.0: ask the broker for response information in CONNACK (not sent unless set).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_request_response_information(
    options: *mut eq1_mqtt_options,
    request: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.set_request_response_information(request);
        Ok(())
    })
}

/// MQTT 5.0: whether the broker may send reason strings and user properties on failures
/// (not sent unless set; the broker's default is yes).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_request_problem_information(
    options: *mut eq1_mqtt_options,
    request: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.set_request_problem_information(request);
        Ok(())
    })
}

/// MQTT 5.0: adds a user property (name, value: NUL-terminated UTF-8) to CONNECT.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options`, `name` or `value` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `name` or `value` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `name` or `value` is longer than 65,535 bytes.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// # Safety
/// `options` is NULL or live; `name` and `value` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_add_connect_user_property(
    options: *mut eq1_mqtt_options,
    name: *const c_char,
    value: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(name, "user property name") }?;
        // SAFETY: per this function's contract.
        let value = unsafe { c_str(value, "user property value") }?;
        o.add_connect_user_property(name, value)
    })
}

/// With MQTT 5.0: when the broker refuses the connection with CONNACK 0x9C "use another
/// server" or 0x9D "server moved" and a Server Reference, connect to that server instead
/// (the first `host[:port]` of the reference; the current port and TLS when it names no port;
/// at most 5 redirects per attempt). A server DISCONNECT 0x9C / 0x9D with a Server Reference
/// sends the next (automatic) reconnect there. Default off: a CONNACK 0x9C / 0x9D fails the
/// connect with `EQ1_STATUS_SERVER_MOVED`, whose detail names the reference.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_protocol_version`, `eq1_mqtt_client_connect`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_follow_redirects(
    options: *mut eq1_mqtt_options,
    follow: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.set_follow_redirects(follow);
        Ok(())
    })
}

/// With MQTT 5.0 selected: when a broker refuses the version (a 3.1.1-only broker answers
/// with a 3.1.1 CONNACK "unacceptable protocol version"), connect again at once with MQTT
/// 3.1.1 (default off: the connect fails with `EQ1_STATUS_UNSUPPORTED_PROTOCOL_VERSION`).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_protocol_version`, `eq1_mqtt_client_connect`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_protocol_fallback(
    options: *mut eq1_mqtt_options,
    fall_back: bool,
) -> eq1_status {
    with_options(options, |o| {
        o.set_protocol_fallback(fall_back);
        Ok(())
    })
}

/// Releases what `eq1_mqtt_client_subscribe_many` or
/// `eq1_mqtt_client_unsubscribe_many_with_results` put into `ack` and zeroes it. NULL, and a
/// zeroed struct, are no-ops.
///
/// Returns:
/// - `EQ1_STATUS_OK` always (also for NULL).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_ack_properties`.
///
/// # Safety
/// `ack` is NULL, zeroed, or filled by this library and not cleared since.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_ack_properties_clear(
    ack: *mut eq1_mqtt_ack_properties,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or a valid struct per this function's contract.
        let Some(ack) = (unsafe { ack.as_mut() }) else {
            return Ok(());
        };
        if !ack.internal.is_null() {
            // SAFETY: `internal` came from Box::into_raw in `filled` and is released once
            // (it is reset below).
            drop(unsafe { Box::from_raw(ack.internal.cast::<AckStorage>()) });
        }
        *ack = eq1_mqtt_ack_properties::EMPTY;
        Ok(())
    })
}

/// The CONNACK of the client's current connection, or of its last one when it is not
/// connected now: session present, the assigned client identifier, server keep-alive,
/// response information, server reference, reason string, user properties, session expiry
/// and every limit the broker announced (MQTT 3.1.1: only `session_present`). On success
/// `*out_connack` is a copy the caller owns: every pointer in it stays valid, whatever the
/// client does meanwhile (reconnects, is freed), until `eq1_mqtt_connack_info_free`. May be
/// called from any thread, also inside the client's callbacks.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success: `*out_connack` holds the copy.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `out_connack` is NULL.
/// - `EQ1_STATUS_NOT_CONNECTED` when the client has never been connected (no CONNACK yet);
///   `*out_connack` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_connack_info`, `eq1_mqtt_connack_info_free`,
/// `eq1_mqtt_connection_event`.
///
/// # Safety
/// `client` NULL or live; `out_connack` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_get_connack(
    client: *const eq1_mqtt_client,
    out_connack: *mut *mut eq1_mqtt_connack_info,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out_connack, std::ptr::null_mut(), "out (connack)") }?;
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        let info = c.client.connack().ok_or_else(|| {
            Error::NotConnected("the client has not connected yet: there is no CONNACK".into())
        })?;
        *out = Box::into_raw(ConnAckView::new(&info)).cast::<eq1_mqtt_connack_info>();
        Ok(())
    })
}

/// Releases a copy from `eq1_mqtt_client_get_connack`. NULL is a no-op. Never pass the one a
/// connection event borrowed.
///
/// Returns: nothing.
///
/// See also: `eq1_mqtt_client_get_connack`.
///
/// # Safety
/// `connack` is NULL or came from `eq1_mqtt_client_get_connack` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_connack_info_free(connack: *mut eq1_mqtt_connack_info) {
    call_value((), || {
        if !connack.is_null() {
            // SAFETY: created by Box::into_raw of a ConnAckView (its first field is the view)
            // in eq1_mqtt_client_get_connack, released once.
            drop(unsafe { Box::from_raw(connack.cast::<ConnAckView>()) });
        }
    })
}

/// `properties_from_c` for a pointer that may be NULL (no properties).
///
/// # Safety
/// `properties` is NULL or points to a struct whose pointers follow the field documentation
/// of `eq1_mqtt_properties`.
unsafe fn optional_properties_from_c(
    properties: *const eq1_mqtt_properties,
) -> crate::Result<Option<PublishProperties>> {
    // SAFETY: NULL or valid, per this function's contract.
    match unsafe { properties.as_ref() } {
        // SAFETY: the struct's pointers follow its documentation (this function's contract).
        Some(p) => unsafe { properties_from_c(p) }.map(Some),
        None => Ok(None),
    }
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
    // SAFETY: as above.
    let user_properties =
        unsafe { user_properties_from_c(p.user_properties, p.user_property_count) }?;
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

/// Reads `count` C user properties (NULL with a count of 0 is none), checking each string.
///
/// # Safety
/// `pairs` is NULL or points to `count` entries whose strings are NULL or NUL-terminated.
pub(crate) unsafe fn user_properties_from_c(
    pairs: *const eq1_mqtt_user_property,
    count: usize,
) -> crate::Result<Vec<(String, String)>> {
    let mut user_properties = Vec::with_capacity(count.min(1024));
    if count == 0 {
        return Ok(user_properties);
    }
    if pairs.is_null() {
        return Err(Error::NullArgument(format!(
            "user_properties is NULL but user_property_count is {count}"
        )));
    }
    for i in 0..count {
        // SAFETY: `pairs` points to `count` entries (this function's contract).
        let pair = unsafe { &*pairs.add(i) };
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(pair.name, &format!("user property {i} name")) }?;
        // SAFETY: as above.
        let value = unsafe { c_str(pair.value, &format!("user property {i} value")) }?;
        user_properties.push((name.to_string(), value.to_string()));
    }
    Ok(user_properties)
}

/// The C view of received properties and the NUL-terminated copies it points into.
pub(crate) struct PropertiesView {
    pub(crate) view: eq1_mqtt_properties,
    _strings: CStrings,
    _pairs: Vec<eq1_mqtt_user_property>,
}

impl PropertiesView {
    pub(crate) fn new(p: &PublishProperties) -> Box<PropertiesView> {
        let mut strings = CStrings::default();
        let content_type = strings.optional(p.content_type.as_deref());
        let response_topic = strings.optional(p.response_topic.as_deref());
        let pairs = strings.pairs(&p.user_properties);
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
            user_properties: array_ptr(&pairs),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn ack_properties_reach_c_and_clear_releases_them() {
        let ack = crate::mqtt::AckProperties {
            reason_string: Some("denied by policy".into()),
            user_properties: vec![("k".into(), "v".into()), ("a".into(), "".into())],
        };
        let mut c = eq1_mqtt_ack_properties::filled(&ack);
        // SAFETY: the pointers of a filled struct are valid until it is cleared.
        unsafe {
            assert_eq!(
                CStr::from_ptr(c.reason_string).to_str(),
                Ok("denied by policy")
            );
            assert_eq!(c.user_property_count, 2);
            let second = &*c.user_properties.add(1);
            assert_eq!(CStr::from_ptr(second.name).to_str(), Ok("a"));
            assert_eq!(CStr::from_ptr(second.value).to_str(), Ok(""));
            assert_eq!(eq1_mqtt_ack_properties_clear(&mut c), eq1_status::Ok);
            assert!(c.reason_string.is_null() && c.internal.is_null());
            // Clearing twice, or NULL, is harmless.
            assert_eq!(eq1_mqtt_ack_properties_clear(&mut c), eq1_status::Ok);
            assert_eq!(
                eq1_mqtt_ack_properties_clear(std::ptr::null_mut()),
                eq1_status::Ok
            );
        }
        let empty = eq1_mqtt_ack_properties::filled(&crate::mqtt::AckProperties::default());
        assert!(empty.reason_string.is_null() && empty.user_properties.is_null());
        let mut empty = empty;
        // SAFETY: filled by the library just above.
        unsafe { eq1_mqtt_ack_properties_clear(&mut empty) };
    }
}
