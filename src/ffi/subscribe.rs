//! Subscribing at the C boundary beyond `eq1_mqtt_client_subscribe`: subscription options
//! (`eq1_mqtt_subscribe_options`), several filters in one call with a result per filter
//! (`eq1_mqtt_client_subscribe_many`), and unsubscribing with the UNSUBACK's per-filter reason
//! codes. Part of the header's Client section.

use crate::core::error::Error;
use crate::ffi::boundary::{c_str, call, optional_out_param, out_param};
use crate::ffi::callbacks::{c_message_handler, eq1_mqtt_message_cb};
use crate::ffi::client::{client_handle, eq1_mqtt_client, UserData};
use crate::ffi::status::eq1_status;
use crate::ffi::v5::{eq1_mqtt_ack_properties, eq1_mqtt_user_property, user_properties_from_c};
use crate::mqtt::{RetainHandling, SubscribeOptions, SubscribeRequest};
use std::ffi::{c_char, c_int, c_void};

/// The options of one subscription. Zero-initialised it is QoS 0 with MQTT 3.1.1 behaviour;
/// `no_local`, `retain_as_published` and a `retain_handling` other than 0 need MQTT 5.0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct eq1_mqtt_subscribe_options {
    /// Maximum QoS, 0..2.
    pub qos: c_int,
    /// MQTT 5.0: the broker does not send this client its own publishes on this subscription
    /// (not allowed on a shared subscription).
    pub no_local: bool,
    /// MQTT 5.0: messages keep the retain flag they were published with (otherwise the broker
    /// clears it on messages it forwards live).
    pub retain_as_published: bool,
    /// MQTT 5.0: when the broker sends retained messages: 0 at every subscribe, 1 only when the
    /// subscription is new, 2 never.
    pub retain_handling: c_int,
}

/// One subscription of `eq1_mqtt_client_subscribe_many`: a filter (NUL-terminated UTF-8, also
/// `$share/<group>/<filter>`), its options, and the callback (not NULL) with its user data,
/// which must stay valid until unsubscribed, replaced, or the client is freed.
#[repr(C)]
pub struct eq1_mqtt_subscription {
    pub filter: *const c_char,
    pub options: eq1_mqtt_subscribe_options,
    pub callback: eq1_mqtt_message_cb,
    pub user_data: *mut c_void,
}

/// How the broker answered one filter of a subscribe.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eq1_mqtt_subscribe_result {
    /// `EQ1_STATUS_OK` when granted; `EQ1_STATUS_SUBSCRIBE_REFUSED` when the broker refused it
    /// (see `reason_code`); `EQ1_STATUS_DISCONNECTED` when it was unsubscribed before it could
    /// be sent.
    pub status: eq1_status,
    /// The SUBACK reason code: 0x00..0x02 the granted QoS; 0x80 and above a refusal (MQTT 5.0
    /// e.g. 0x87 not authorized, 0x8F topic filter invalid, 0x9E shared subscriptions not
    /// supported; MQTT 3.1.1 only 0x80).
    pub reason_code: u8,
    /// The granted QoS, or -1 when refused.
    pub granted_qos: c_int,
    /// The subscription identifier the library sent with it and routes its messages by; 0
    /// when none was sent (MQTT 3.1.1, or the broker has no subscription identifiers).
    pub subscription_id: u32,
}

/// How the broker answered one filter of an unsubscribe.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct eq1_mqtt_unsubscribe_result {
    /// `EQ1_STATUS_OK` for reason codes 0x00 and 0x11 (no subscription existed);
    /// `EQ1_STATUS_UNSUBSCRIBE_REFUSED` for a refusal (0x80 and above).
    pub status: eq1_status,
    /// The UNSUBACK reason code; 0x00 on MQTT 3.1.1 (its UNSUBACK has none) and when there was
    /// no connection to tell.
    pub reason_code: u8,
}

/// Checks C subscription options into the core type.
fn options_from_c(options: &eq1_mqtt_subscribe_options) -> crate::Result<SubscribeOptions> {
    Ok(SubscribeOptions {
        qos: crate::mqtt::validate::qos(options.qos)?,
        no_local: options.no_local,
        retain_as_published: options.retain_as_published,
        retain_handling: RetainHandling::from_number(options.retain_handling as i64)?,
    })
}

/// `eq1_mqtt_client_subscribe` with subscription options (`options` not NULL; its `qos` is
/// the subscription's maximum QoS).
///
/// Returns: as `eq1_mqtt_client_subscribe`, and
/// - `EQ1_STATUS_NULL_ARGUMENT` also when `options` is NULL.
/// - `EQ1_STATUS_INVALID_QOS` when `options->qos` is outside 0..2.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `options->retain_handling` is outside 0..2, or
///   `no_local` is set on a shared subscription.
/// - `EQ1_STATUS_MQTT5_REQUIRED` when `no_local`, `retain_as_published` or a non-zero
///   `retain_handling` is asked of an MQTT 3.1.1 client.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
///
/// See also: `eq1_mqtt_client_subscribe_many`, `eq1_mqtt_subscribe_options`.
///
/// # Safety
/// As for `eq1_mqtt_client_subscribe`; `options` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_subscribe_with_options(
    client: *mut eq1_mqtt_client,
    filter: *const c_char,
    options: *const eq1_mqtt_subscribe_options,
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
        // SAFETY: NULL or valid per this function's contract.
        let options = unsafe { options.as_ref() }
            .ok_or_else(|| Error::NullArgument("options is NULL".into()))?;
        let options = options_from_c(options)?;
        let callback = callback.ok_or_else(|| {
            Error::NullArgument("message callback is NULL; a subscription needs one".into())
        })?;
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "subscribe")?;
        let handler = c_message_handler(callback, UserData(user_data));
        let granted = c
            .client
            .subscribe_with_options(filter, options, handler, timeout)?;
        if let Some(out) = out {
            *out = granted as c_int;
        }
        Ok(())
    })
}

/// Subscribes `count` filters in one call, each with its options and callback, and waits up
/// to `timeout_ms` for the broker's answer to all of them. `results_out` (`count` entries)
/// receives per filter, in the order given, its reason code, granted QoS and subscription
/// identifier; `ack_out` (may be NULL) the SUBACKs' reason string and user properties (release
/// with `eq1_mqtt_ack_properties_clear`). `user_properties` (MQTT 5.0) go with the SUBSCRIBE.
///
/// A refused filter is not a failure of the call: the call returns `EQ1_STATUS_OK` once the
/// broker answered, and that filter's result has `EQ1_STATUS_SUBSCRIBE_REFUSED` (and it gets
/// no callback): check each result.
///
/// Subscription identifiers: with MQTT 5.0 (unless the broker's CONNACK says it has none)
/// every subscription gets an identifier of its own, sent in a SUBSCRIBE of its own (a
/// SUBSCRIBE carries at most one), and kept when the client resubscribes after a reconnect. A
/// received message goes to exactly the callbacks of the subscriptions whose identifiers it
/// carries: a message matching two overlapping subscriptions reaches each callback once.
/// Without identifiers, a message goes to every callback whose filter matches its topic.
///
/// Shared subscriptions (`$share/<group>/<filter>`): the group name must not be empty nor
/// contain `+` or `#`; received messages are routed by the filter after the group. They are
/// also allowed on MQTT 3.1.1 (mosquitto and others support them there) and sent as given.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the broker answered every filter: see `results_out`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client`, `subscriptions`, `results_out`, a filter or a
///   callback is NULL, or `user_properties` is NULL with a non-zero count (or holds a NULL
///   string).
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `count` is 0, a filter is given twice,
///   `retain_handling` is outside 0..2, `no_local` is set on a shared subscription, a user
///   property is longer than 65,535 bytes, or `timeout_ms` is negative.
/// - `EQ1_STATUS_INVALID_UTF8` when a filter or user property is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_FILTER` when a filter breaks the wildcard rules, or a shared
///   subscription's group name is empty or contains `+` or `#`, or it has no filter.
/// - `EQ1_STATUS_INVALID_QOS` when a QoS is outside 0..2.
/// - `EQ1_STATUS_MQTT5_REQUIRED` when an MQTT 3.1.1 client is asked for no-local,
///   retain-as-published, retain handling or user properties.
/// - `EQ1_STATUS_FEATURE_NOT_SUPPORTED` when the MQTT 5.0 broker announced it has no shared
///   or no wildcard subscriptions (nothing was sent).
/// - Otherwise as `eq1_mqtt_client_subscribe` (`NOT_CONNECTED`, `TIMEOUT`, `PAYLOAD_TOO_LARGE`,
///   `QUEUE_FULL`, `PROTOCOL_ERROR`, `DISCONNECTED`, `INTERNAL`).
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
///
/// See also: `eq1_mqtt_client_subscribe`, `eq1_mqtt_client_unsubscribe_many_with_results`,
/// `eq1_mqtt_message.subscription_ids`.
///
/// # Safety
/// `client` NULL or live; `subscriptions` NULL or `count` valid entries; `user_properties`
/// NULL or `user_property_count` entries; `results_out` NULL or writable for `count` entries;
/// `ack_out` NULL or a writable, zeroed (or cleared) struct.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn eq1_mqtt_client_subscribe_many(
    client: *mut eq1_mqtt_client,
    subscriptions: *const eq1_mqtt_subscription,
    count: usize,
    user_properties: *const eq1_mqtt_user_property,
    user_property_count: usize,
    timeout_ms: c_int,
    results_out: *mut eq1_mqtt_subscribe_result,
    ack_out: *mut eq1_mqtt_ack_properties,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let ack_out = unsafe { optional_out_param(ack_out, eq1_mqtt_ack_properties::EMPTY) };
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        if count == 0 {
            return Err(Error::InvalidArgument(
                "no filter to subscribe (count is 0)".into(),
            ));
        }
        if subscriptions.is_null() {
            return Err(Error::NullArgument(format!(
                "subscriptions is NULL but count is {count}"
            )));
        }
        if results_out.is_null() {
            return Err(Error::NullArgument(
                "results_out is NULL; it receives one result per filter".into(),
            ));
        }
        let mut requests = Vec::with_capacity(count.min(1024));
        for i in 0..count {
            // SAFETY: `subscriptions` points to `count` entries (this function's contract).
            let sub = unsafe { &*subscriptions.add(i) };
            // SAFETY: per this function's contract.
            let filter = unsafe { c_str(sub.filter, &format!("filter {i}")) }?;
            let callback = sub.callback.ok_or_else(|| {
                Error::NullArgument(format!(
                    "callback {i} is NULL; every subscription needs one"
                ))
            })?;
            requests.push(SubscribeRequest {
                filter: filter.to_string(),
                options: options_from_c(&sub.options)?,
                handler: c_message_handler(callback, UserData(sub.user_data)),
            });
        }
        // SAFETY: per this function's contract.
        let user_properties =
            unsafe { user_properties_from_c(user_properties, user_property_count) }?;
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "subscribe")?;
        let report = c
            .client
            .subscribe_many(requests, user_properties, timeout)?;
        for (i, result) in report.filters.iter().enumerate().take(count) {
            let entry = eq1_mqtt_subscribe_result {
                status: match &result.granted {
                    Ok(_) => eq1_status::Ok,
                    Err(e) => eq1_status::from(e),
                },
                reason_code: result.reason_code,
                granted_qos: result.granted.as_ref().map_or(-1, |q| *q as c_int),
                subscription_id: result.subscription_id.unwrap_or(0),
            };
            // SAFETY: `results_out` is writable for `count` entries and `i < count`.
            unsafe { results_out.add(i).write(entry) };
        }
        if let Some(ack_out) = ack_out {
            *ack_out = eq1_mqtt_ack_properties::filled(&report.ack);
        }
        Ok(())
    })
}

/// `eq1_mqtt_client_unsubscribe_many` with MQTT 5.0 user properties, answered per filter:
/// `results_out` (`count` entries) receives each filter's UNSUBACK reason code (0x11: no
/// subscription existed), `ack_out` (may be NULL) the UNSUBACK's reason string and user
/// properties (release with `eq1_mqtt_ack_properties_clear`). A filter the broker refused is
/// not a failure of the call: its result has `EQ1_STATUS_UNSUBSCRIBE_REFUSED`. The filters'
/// callbacks are removed either way.
///
/// Returns: as `eq1_mqtt_client_unsubscribe_many`, and
/// - `EQ1_STATUS_OK` when the broker answered (or there was no connection to tell): see
///   `results_out`.
/// - `EQ1_STATUS_NULL_ARGUMENT` also when `results_out` is NULL, or `user_properties` is NULL
///   with a non-zero count.
/// - `EQ1_STATUS_MQTT5_REQUIRED` when user properties are given to an MQTT 3.1.1 client.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
///
/// See also: `eq1_mqtt_client_unsubscribe_many`, `eq1_mqtt_client_subscribe_many`.
///
/// # Safety
/// As for `eq1_mqtt_client_unsubscribe_many`; `user_properties` NULL or
/// `user_property_count` entries; `results_out` NULL or writable for `count` entries;
/// `ack_out` NULL or a writable, zeroed (or cleared) struct.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn eq1_mqtt_client_unsubscribe_many_with_results(
    client: *mut eq1_mqtt_client,
    filters: *const *const c_char,
    count: usize,
    user_properties: *const eq1_mqtt_user_property,
    user_property_count: usize,
    timeout_ms: c_int,
    results_out: *mut eq1_mqtt_unsubscribe_result,
    ack_out: *mut eq1_mqtt_ack_properties,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let ack_out = unsafe { optional_out_param(ack_out, eq1_mqtt_ack_properties::EMPTY) };
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        if count == 0 {
            return Err(Error::InvalidArgument(
                "no filter to unsubscribe (count is 0)".into(),
            ));
        }
        if filters.is_null() {
            return Err(Error::NullArgument(format!(
                "filters is NULL but count is {count}"
            )));
        }
        // SAFETY: NULL or writable per this function's contract (checked for NULL here).
        let _ = unsafe {
            out_param(
                results_out,
                eq1_mqtt_unsubscribe_result {
                    status: eq1_status::Ok,
                    reason_code: 0,
                },
                "results_out",
            )
        }?;
        let mut list = Vec::with_capacity(count.min(1024));
        for i in 0..count {
            // SAFETY: `filters` points to `count` pointers (this function's contract).
            let filter = unsafe { *filters.add(i) };
            // SAFETY: per this function's contract.
            list.push(unsafe { c_str(filter, &format!("filter {i}")) }?);
        }
        // SAFETY: per this function's contract.
        let user_properties =
            unsafe { user_properties_from_c(user_properties, user_property_count) }?;
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "unsubscribe")?;
        let report = c
            .client
            .unsubscribe_with_report(&list, user_properties, timeout)?;
        for (i, result) in report.filters.iter().enumerate().take(count) {
            let entry = eq1_mqtt_unsubscribe_result {
                status: match &result.result {
                    Ok(()) => eq1_status::Ok,
                    Err(e) => eq1_status::from(e),
                },
                reason_code: result.reason_code,
            };
            // SAFETY: `results_out` is writable for `count` entries and `i < count`.
            unsafe { results_out.add(i).write(entry) };
        }
        if let Some(ack_out) = ack_out {
            *ack_out = eq1_mqtt_ack_properties::filled(&report.ack);
        }
        Ok(())
    })
}
