//! `eq1_mqtt_client`: the C view of `mqtt::Client`, from creation to freeing: will, connect and
//! disconnect, publish and wait, subscribe and unsubscribe, stats. Its callbacks are in
//! `callbacks`, MQTT 5.0 publishing in `v5`.
//!
//! Threads: every client function may be called from any thread, including from inside the
//! client's own callbacks, except `eq1_mqtt_client_free` (refused inside a callback). Callbacks
//! run on the client's dispatcher thread, one at a time, in the order events happened.

use crate::core::error::Error;
use crate::ffi::boundary::{
    bytes, c_str, call, call_value, copy_snprintf, handle, optional_out_param, out_param,
    process_id,
};
use crate::ffi::callbacks::{c_message_handler, eq1_free_cb, eq1_mqtt_message_cb};
use crate::ffi::options::eq1_mqtt_options;
use crate::ffi::status::eq1_status;
use crate::mqtt::Client;
use std::ffi::{c_char, c_int, c_void};

/// Identifies one publish; 0 is never a valid token.
pub type eq1_token = u64;

/// Opaque MQTT client. Thread-safe (see the module notes above).
pub struct eq1_mqtt_client {
    pub(crate) client: Client,
    pub(crate) user_data: UserData,
    user_data_free: eq1_free_cb,
    /// The process that created it: after fork() the child has a copy without its threads.
    creator_pid: u32,
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

/// A user pointer handed back to C callbacks on the dispatcher thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);
// SAFETY: the library only passes the pointer back to the user's callbacks; the header tells
// users that callbacks run on the dispatcher thread.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer itself is never dereferenced by the library.
unsafe impl Sync for UserData {}

/// ==========================================================================================
/// Section: Client
///
/// One connection to a broker (with failover and automatic reconnection). Below, in this order:
/// lifecycle (new, free, will), connect and disconnect, publish and wait, subscribe and
/// unsubscribe, stats, then subscribing with options or several filters at once. Every function but `eq1_mqtt_client_free` is thread-safe and may be
/// called from the client's own callbacks. A client created before fork() is refused in the
/// child with `EQ1_STATUS_INVALID_STATE` (see the notes at the top).
/// ==========================================================================================
///
/// Creates a client (nothing connects yet). `user_data` goes to the connection and delivery
/// callbacks; `user_data_free` (may be NULL) runs exactly once, in `eq1_mqtt_client_free`.
/// The options are copied: free them whenever you like. On failure `*out` stays NULL and
/// `user_data_free` is not called.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success: `*out` is the new client.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `out` is NULL.
/// - `EQ1_STATUS_TLS_CONFIG` when the brokers mix TLS and plaintext while credentials are set
///   (see `eq1_mqtt_options_set_allow_plaintext_fallback`).
/// - `EQ1_STATUS_INVALID_CLIENT_ID` when MQTT 3.1 is selected and the client id is longer than
///   23 bytes.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when an authentication method is set without MQTT 5.0, or
///   persistence is set without a client id.
/// - `EQ1_STATUS_STORE_LOCKED` when the persistence directory is held by another client (in
///   this or another process); that client is not disturbed.
/// - `EQ1_STATUS_STORE_CLIENT_MISMATCH` when the persistence directory holds the session of
///   another client id.
/// - `EQ1_STATUS_STORE_CORRUPT` when the persistence directory cannot be read (an unknown
///   format version, damage beyond a torn end).
/// - `EQ1_STATUS_STORE_IO` when the persistence directory cannot be created or read.
/// - `EQ1_STATUS_STORE_READ_ONLY` when the persistence directory is on a read-only file system.
/// - `EQ1_STATUS_INTERNAL` when the library's I/O runtime or dispatcher thread cannot start, or
///   on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_free`, `eq1_mqtt_client_connect`.
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
/// abandoned. NULL is a no-op. In a child of fork() a client inherited from the parent is
/// released without joining (its threads do not exist there): this returns at once and runs
/// `user_data_free`, leaving the copy's memory allocated.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the client is freed (also for NULL and for a client inherited through
///   fork()).
/// - `EQ1_STATUS_CALLED_FROM_CALLBACK` inside one of the client's own callbacks; the client
///   stays valid then.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_new`, `eq1_mqtt_client_disconnect`.
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

pub(crate) fn with_client(
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
pub(crate) unsafe fn client_handle<'a>(
    client: *const eq1_mqtt_client,
) -> crate::Result<&'a eq1_mqtt_client> {
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

/// Sets the will (last will and testament) sent with the next CONNECT. Only while idle (not
/// connected, connecting, reconnecting or disconnecting). Payload up to 65,535 bytes.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `topic` is NULL, or `payload` is NULL with a
///   non-zero `len`.
/// - `EQ1_STATUS_INVALID_UTF8` when `topic` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` when `topic` is empty, longer than 65,535 bytes or contains a
///   wildcard.
/// - `EQ1_STATUS_INVALID_QOS` when `qos` is outside 0..2.
/// - `EQ1_STATUS_PAYLOAD_TOO_LARGE` when `len` is above 65,535.
/// - `EQ1_STATUS_INVALID_STATE` when the client is not idle, or was created before fork() in
///   another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_clear_will`.
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

/// Removes the will set with `eq1_mqtt_client_set_will`; only while idle.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when the client is not idle, or was created before fork() in
///   another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_set_will`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_clear_will(client: *mut eq1_mqtt_client) -> eq1_status {
    with_client(client, |c| c.client.clear_will())
}

/// Connects and returns after CONNACK, or the first failure, within `timeout_ms` (0: the
/// options' connect timeout). With several brokers each is tried in turn while time is left;
/// the status is that of the last failure. Automatic reconnection (when on) starts only after a
/// connect succeeded.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the broker accepted the connection.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_INVALID_STATE` when the client is already connected, connecting, reconnecting
///   or disconnecting, or was created before fork() in another process.
/// - `EQ1_STATUS_TIMEOUT` when DNS, TCP, TLS and CONNACK did not complete within the timeout.
/// - `EQ1_STATUS_DNS_FAILED`, `EQ1_STATUS_CONNECTION_REFUSED`, `EQ1_STATUS_NETWORK_ERROR`: the
///   broker's host could not be resolved, refused the TCP connection, or could not be reached.
/// - `EQ1_STATUS_CONNECTION_LOST` when the broker closed the connection before CONNACK.
/// - `EQ1_STATUS_TLS_CONFIG` when a CA, certificate or key file cannot be parsed (or a key
///   password is wrong), or a broker added with TLS has no TLS options.
/// - `EQ1_STATUS_TLS_UNKNOWN_ISSUER`, `EQ1_STATUS_TLS_HOSTNAME_MISMATCH`,
///   `EQ1_STATUS_TLS_CERT_EXPIRED`, `EQ1_STATUS_TLS_CLIENT_CERT_REJECTED`, `EQ1_STATUS_TLS_ERROR`:
///   the TLS handshake failed for that reason.
/// - `EQ1_STATUS_BAD_CREDENTIALS`, `EQ1_STATUS_NOT_AUTHORIZED`, `EQ1_STATUS_INVALID_CLIENT_ID`,
///   `EQ1_STATUS_UNSUPPORTED_PROTOCOL_VERSION`, `EQ1_STATUS_BROKER_REFUSED`: the broker refused
///   the CONNECT (see `eq1_mqtt_options_set_protocol_fallback` for the protocol version).
/// - `EQ1_STATUS_PROTOCOL_ERROR` when the broker's answer broke the protocol.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic, or the client's session
///   engine stopped).
///
/// See also: `eq1_mqtt_client_disconnect`, `eq1_mqtt_options_set_connect_timeout`,
/// `eq1_mqtt_client_set_connection_callback`.
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

/// Waits up to `timeout_ms` for in-flight QoS 1/2 publishes, then sends DISCONNECT (the broker
/// discards the will). Still-unacknowledged publishes are then reported failed with
/// `EQ1_STATUS_DISCONNECTED`. Stops automatic reconnection; while reconnecting, the disconnect
/// completes at once. The client may connect again. Several threads may disconnect at once:
/// all of them wait for the same DISCONNECT and get its outcome.
///
/// Returns:
/// - `EQ1_STATUS_OK` when DISCONNECT was written, or the connection was already gone.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_NOT_CONNECTED` when the client is idle: never connected, or already
///   disconnected (also for a call that comes after another thread's disconnect completed).
/// - `EQ1_STATUS_TIMEOUT` when DISCONNECT could not be written within 2 s (a broker that does
///   not read).
/// - `EQ1_STATUS_CONNECTION_LOST` (or a TLS status) when writing DISCONNECT failed.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic, or the client's session
///   engine stopped).
///
/// See also: `eq1_mqtt_client_connect`, `eq1_mqtt_client_free`.
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

/// `eq1_mqtt_client_disconnect` with what the MQTT 5.0 DISCONNECT says: its `reason_code`
/// (0x00 normal; 0x04 "disconnect with will message" asks the broker to publish the will; or
/// another code a client may send: 0x80-0x83, 0x90, 0x93-0x99), a new session expiry interval
/// (`has_session_expiry`, `session_expiry` in seconds) and `user_properties`. User properties
/// that would exceed the broker's maximum packet size are left out (MQTT-3.14.2-4). When
/// several threads disconnect at once, the first one's reason and properties are sent. An
/// MQTT 3.1.1 client takes only the defaults (reason 0x00, no session expiry, no properties).
///
/// Returns:
/// - `EQ1_STATUS_OK` when DISCONNECT was written, or the connection was already gone.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL, or `user_properties` is NULL with a
///   non-zero count (or holds a NULL string).
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `reason_code` is not one a client may send, the
///   session began with session expiry 0 and `session_expiry` is non-zero (MQTT 5.0 section
///   3.14.2.2.2), a user property is longer than 65,535 bytes, or `timeout_ms` is negative.
/// - `EQ1_STATUS_INVALID_UTF8` when a user property is not valid UTF-8.
/// - `EQ1_STATUS_MQTT5_REQUIRED` when an MQTT 3.1.1 client is given a reason code other than
///   0x00, a session expiry or user properties.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - Otherwise as `eq1_mqtt_client_disconnect` (`NOT_CONNECTED`, `TIMEOUT`,
///   `CONNECTION_LOST`, `INTERNAL`).
///
/// See also: `eq1_mqtt_client_disconnect`, `eq1_mqtt_options_set_session_expiry`,
/// `eq1_mqtt_client_set_will`.
///
/// # Safety
/// `client` NULL or live; `user_properties` NULL or `user_property_count` entries.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_disconnect_with(
    client: *mut eq1_mqtt_client,
    reason_code: u8,
    has_session_expiry: bool,
    session_expiry: u32,
    user_properties: *const crate::ffi::v5::eq1_mqtt_user_property,
    user_property_count: usize,
    timeout_ms: c_int,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let user_properties = unsafe {
            crate::ffi::v5::user_properties_from_c(user_properties, user_property_count)
        }?;
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "disconnect")?;
        c.client.disconnect_with(
            reason_code,
            has_session_expiry.then_some(session_expiry),
            user_properties,
            timeout,
        )
    })
}

/// Whether the client is connected now (not connecting, reconnecting or disconnecting).
///
/// Returns: true while connected; false otherwise, for NULL, and for a client created before
/// fork() in another process.
///
/// See also: `eq1_mqtt_client_set_connection_callback`.
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

/// Queues a publish and returns at once (never waits on the network). `*out_token` (may be
/// NULL) receives its token: wait on it with `eq1_mqtt_client_wait`, or learn its outcome in
/// the delivery callback. The payload is copied. While connecting or reconnecting the publish
/// waits in the outbox.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the publish is queued: `*out_token` is its token.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `topic` is NULL, or `payload` is NULL with a
///   non-zero `len`.
/// - `EQ1_STATUS_INVALID_UTF8` when `topic` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_TOPIC` when `topic` is empty, longer than 65,535 bytes or contains a
///   wildcard.
/// - `EQ1_STATUS_INVALID_QOS` when `qos` is outside 0..2.
/// - `EQ1_STATUS_PAYLOAD_TOO_LARGE` when the PUBLISH would exceed the maximum packet size (ours,
///   or the one the MQTT 5.0 broker announced).
/// - `EQ1_STATUS_QOS_NOT_SUPPORTED` when `qos` is above the MQTT 5.0 broker's Maximum QoS.
/// - `EQ1_STATUS_FEATURE_NOT_SUPPORTED` when `retain` is set and the MQTT 5.0 broker announced
///   it does not keep retained messages.
/// - `EQ1_STATUS_NOT_CONNECTED` when the client is disconnecting, or idle (never connected, or
///   disconnected) and the options do not queue before connect
///   (`eq1_mqtt_options_set_offline_queue`).
/// - `EQ1_STATUS_QUEUE_FULL` when the outbox is full and its policy is `EQ1_QUEUE_REJECT_NEW`.
/// - `EQ1_STATUS_STORE_FULL` (with persistence) when the store reached its size limit and
///   nothing can be dropped, or its file system is full (ENOSPC): the message was not
///   accepted; retry once deliveries complete or space is freed.
/// - `EQ1_STATUS_STORE_IO` (with persistence) when the store's disk failed: the record could
///   not be written, or (sync durability) not made durable (EIO); or an earlier failure
///   stopped the store. The message was not accepted. A stopped store takes nothing more
///   until the client is freed and made again (on a repaired disk it restores what was
///   stored). With batched durability a disk failure is found by the background sync, so
///   the publishes after it are refused; those accepted before it are still delivered by
///   this client (docs/persistence.md).
/// - `EQ1_STATUS_STORE_READ_ONLY` (with persistence) when the store's file system is (or was
///   turned) read-only (EROFS): the message was not accepted.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic, or the client's session
///   engine stopped).
///
/// See also: `eq1_mqtt_client_wait`, `eq1_mqtt_client_set_delivery_callback`,
/// `eq1_mqtt_client_publish_with_properties`.
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
    // SAFETY: the same contract; a publish is one with no properties.
    unsafe {
        crate::ffi::v5::eq1_mqtt_client_publish_with_properties(
            client,
            topic,
            payload,
            len,
            qos,
            retain,
            std::ptr::null(),
            out_token,
        )
    }
}

/// Blocks until the publish behind `token` is complete (QoS 0: written; QoS 1: PUBACK;
/// QoS 2: PUBCOMP), or failed, or `timeout_ms` passed. May be called from several threads, also
/// after the delivery callback reported the token.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the publish completed.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative, `token` was never issued by
///   this client, or its failure is no longer kept (too many failures since).
/// - `EQ1_STATUS_TIMEOUT` when the publish is still pending after `timeout_ms`.
/// - The publish's own failure, as its delivery callback reports it:
///   `EQ1_STATUS_NOT_CONNECTED` (refused by the session), `EQ1_STATUS_DROPPED` (dropped from
///   the full outbox), `EQ1_STATUS_DISCONNECTED` (unacknowledged at a user disconnect),
///   `EQ1_STATUS_CONNECTION_LOST` (a QoS 0 message lost with its connection),
///   `EQ1_STATUS_PUBLISH_REFUSED` (refused by an MQTT 5.0 broker),
///   `EQ1_STATUS_QOS_NOT_SUPPORTED`, `EQ1_STATUS_FEATURE_NOT_SUPPORTED` or
///   `EQ1_STATUS_PAYLOAD_TOO_LARGE` (beyond the limits of the broker it was finally sent to),
///   or the status that ended the session (a failed connect, or a lost connection with
///   reconnection off).
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_publish`, `eq1_mqtt_delivery_cb`.
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

/// `eq1_mqtt_client_wait`, also telling what the broker said in its acknowledgement (MQTT
/// 5.0): `*out_reason_code` (may be NULL) receives its reason code (0x00 success, 0x10 no
/// matching subscribers, from 0x80 the failure, e.g. 0x87 not authorized, 0x97 quota
/// exceeded; 0 when the broker gave none), and `reason_buf` (may be NULL with `reason_len`
/// 0) its Reason String with snprintf semantics ("" when none). The out-params are written
/// once the publish completed (successfully or not), and reset otherwise.
///
/// Returns: as `eq1_mqtt_client_wait` (the publish's own status, `EQ1_STATUS_PUBLISH_REFUSED`
/// for a failure reason code), and `EQ1_STATUS_NULL_ARGUMENT` also when `reason_buf` is NULL
/// with a non-zero `reason_len`.
///
/// See also: `eq1_mqtt_client_wait`, `eq1_mqtt_client_set_delivery_report_callback`.
///
/// # Safety
/// `client` is NULL or live; `out_reason_code` NULL or writable; `reason_buf` NULL or
/// writable for `reason_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_wait_report(
    client: *mut eq1_mqtt_client,
    token: eq1_token,
    timeout_ms: c_int,
    out_reason_code: *mut u8,
    reason_buf: *mut c_char,
    reason_len: usize,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or writable per this function's contract.
        let code_out = unsafe { optional_out_param(out_reason_code, 0) };
        if !reason_buf.is_null() && reason_len > 0 {
            // SAFETY: writable for `reason_len` bytes per this function's contract.
            unsafe { *reason_buf = 0 };
        }
        // SAFETY: per this function's contract.
        let c = unsafe { client_handle(client) }?;
        if reason_buf.is_null() && reason_len > 0 {
            return Err(Error::NullArgument(format!(
                "reason_buf is NULL but reason_len is {reason_len}"
            )));
        }
        let timeout = crate::ffi::boundary::timeout_ms(timeout_ms, "wait")?;
        let (result, detail) = c.client.wait_report(token, timeout);
        if matches!(
            &result,
            Err(Error::Timeout(_)) | Err(Error::InvalidArgument(_))
        ) {
            return result;
        }
        if let Some(out) = code_out {
            *out = detail.as_ref().map_or(0, |d| d.code);
        }
        if let Some(text) = detail.as_ref().and_then(|d| d.text.as_deref()) {
            // SAFETY: per this function's contract.
            unsafe { copy_snprintf(text, reason_buf, reason_len) };
        }
        result
    })
}

/// Subscribes `callback` to `filter` and waits up to `timeout_ms` for the broker's answer;
/// `*out_granted_qos` (may be NULL) receives the granted QoS. A message matching several
/// subscriptions reaches each of their callbacks; subscribing the same filter again replaces
/// its callback (the old one is not called after this returns). `user_data` must stay valid
/// until unsubscribed, replaced, or the client is freed. While reconnecting, the SUBSCRIBE goes
/// out once the connection is back.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the broker granted the subscription: `*out_granted_qos` is set.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client`, `filter` or `callback` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `filter` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_FILTER` when `filter` is empty, longer than 65,535 bytes or breaks the
///   wildcard rules, or is a shared subscription (`$share/<group>/<filter>`) with an empty
///   group name, a `+` or `#` in it, or no filter after it.
/// - `EQ1_STATUS_INVALID_QOS` when `qos` is outside 0..2.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_FEATURE_NOT_SUPPORTED` when the MQTT 5.0 broker announced it has no shared
///   (`$share/...`) or no wildcard subscriptions.
/// - `EQ1_STATUS_NOT_CONNECTED` when the client is idle, connecting or disconnecting.
/// - `EQ1_STATUS_TIMEOUT` when no answer came within `timeout_ms`, or a callback being replaced
///   was still running then (the subscription stays requested).
/// - `EQ1_STATUS_SUBSCRIBE_REFUSED` when the broker refused it.
/// - `EQ1_STATUS_PAYLOAD_TOO_LARGE` when the SUBSCRIBE exceeds the broker's maximum packet size.
/// - `EQ1_STATUS_QUEUE_FULL` when all 65,535 packet identifiers are in use.
/// - `EQ1_STATUS_PROTOCOL_ERROR` when the broker's SUBACK broke the protocol.
/// - `EQ1_STATUS_DISCONNECTED` when the user disconnected before the answer, or the status that
///   ended the session (a lost connection with reconnection off).
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic, or the client's session
///   engine stopped).
///
/// See also: `eq1_mqtt_client_unsubscribe`, `eq1_mqtt_message_cb`,
/// `eq1_mqtt_client_set_message_callback`, `eq1_mqtt_client_subscribe_with_options`,
/// `eq1_mqtt_client_subscribe_many` (several filters, per-filter reason codes; how messages
/// are routed with subscription identifiers).
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
/// timeout; from inside a callback it is not). While not connected there is nothing to send and
/// the call succeeds at once.
///
/// Returns:
/// - `EQ1_STATUS_OK` when the broker acknowledged (or there was no connection to tell).
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `filter` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `filter` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_FILTER` when `filter` is empty, longer than 65,535 bytes or breaks the
///   wildcard rules.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_TIMEOUT` when UNSUBACK or a running callback outlasted the timeout (the
///   subscription is removed all the same).
/// - `EQ1_STATUS_UNSUBSCRIBE_REFUSED` when the MQTT 5.0 broker refused it (UNSUBACK 0x80 or
///   above; its callback is removed all the same). "No subscription existed" (0x11) is OK.
/// - `EQ1_STATUS_PAYLOAD_TOO_LARGE` when the UNSUBSCRIBE exceeds the broker's maximum packet
///   size.
/// - `EQ1_STATUS_QUEUE_FULL` when all 65,535 packet identifiers are in use.
/// - `EQ1_STATUS_DISCONNECTED` when the user disconnected before the answer, or the status that
///   ended the session (a lost connection with reconnection off).
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic, or the client's session
///   engine stopped).
///
/// See also: `eq1_mqtt_client_unsubscribe_many`, `eq1_mqtt_client_subscribe`.
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
/// Returns: as `eq1_mqtt_client_unsubscribe`, and
/// - `EQ1_STATUS_NULL_ARGUMENT` also when `filters` or one of its entries is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` also when `count` is 0.
///
/// See also: `eq1_mqtt_client_unsubscribe`.
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

/// Fills `*out` with the client's counters.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `out` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_stats`.
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

/// Renders the client's metrics in the OpenMetrics / Prometheus text exposition format into
/// `buf` with snprintf semantics (`buf = NULL, len = 0` asks for the length): the counters of
/// `eq1_mqtt_client_get_stats` (`eq1_mqtt_published_total`, ...), disconnects by reason
/// (`eq1_mqtt_disconnects_total{reason="<status name>"}`, `reason="requested"` for
/// `eq1_mqtt_client_disconnect`), gauges (`eq1_mqtt_connected`,
/// `eq1_mqtt_connection_uptime_seconds`, `eq1_mqtt_outbox_messages` / `_bytes`,
/// `eq1_mqtt_inbound_messages` / `_bytes`, `eq1_mqtt_pending_deliveries`), the histogram
/// `eq1_mqtt_publish_latency_seconds{qos}` (publish accepted to acknowledged, or written for
/// QoS 0; successful publishes) and its p50 / p99 / max in
/// `eq1_mqtt_publish_latency_estimate_seconds{qos,stat}`. Ends with `# EOF`. The text grows
/// with the disconnect reasons seen; ask for the length first, or give 64 KiB.
///
/// Returns: the length of the text without NUL (it may exceed `len - 1`: the copy was cut
/// short); 0 for NULL and for a client created before fork() in another process.
///
/// See also: `eq1_mqtt_client_get_stats`.
///
/// # Safety
/// `client` NULL or live; `buf` NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_metrics_text(
    client: *const eq1_mqtt_client,
    buf: *mut c_char,
    len: usize,
) -> usize {
    call_value(0, || {
        // SAFETY: per this function's contract.
        let Ok(c) = (unsafe { client_handle(client) }) else {
            return 0;
        };
        // SAFETY: per this function's contract.
        unsafe { copy_snprintf(&c.client.metrics_text(), buf, len) }
    })
}

/// Copies the client id (given or generated) into `buf` with snprintf semantics; `buf = NULL,
/// len = 0` asks for the length.
///
/// Returns: the length of the id without NUL; 0 for NULL and for a client created before fork()
/// in another process.
///
/// See also: `eq1_mqtt_options_set_client_id`.
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
        // SAFETY: per this function's contract.
        unsafe { copy_snprintf(&c.client.client_id(), buf, len) }
    })
}

/// How many messages the client took back from its store when it was created
/// (`eq1_mqtt_options_set_persistence`): publishes an earlier run accepted that had not
/// completed. They are sent before anything new; each keeps its original token, and its
/// outcome reaches the delivery callback like any other (install the callback before
/// connecting to hear them all). `eq1_mqtt_client_restored_message` tells which they are.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success: `*out_count` is the number (0 without persistence).
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` or `out_count` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_restored_message`, `eq1_mqtt_options_set_persistence`.
///
/// # Safety
/// `client` NULL or live; `out_count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_restored_count(
    client: *const eq1_mqtt_client,
    out_count: *mut usize,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out_count, 0, "out_count") }?;
        *out = c.client.restored().len();
        Ok(())
    })
}

/// One restored message (`index` below `eq1_mqtt_client_restored_count`, in the order they
/// were accepted): its original token, its QoS, and its topic copied into `topic_buf` with
/// snprintf semantics (`topic_buf` may be NULL with `topic_buf_len` 0; `*out_topic_len`
/// receives the topic's length without NUL). Out-params may be NULL when not wanted.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL, or `topic_buf` is NULL with a
///   non-zero `topic_buf_len`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `index` is not below the restored count.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_client_restored_count`, `eq1_mqtt_client_set_delivery_callback`.
///
/// # Safety
/// `client` NULL or live; `topic_buf` NULL or writable for `topic_buf_len` bytes; the
/// out-params NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_restored_message(
    client: *const eq1_mqtt_client,
    index: usize,
    out_token: *mut eq1_token,
    out_qos: *mut c_int,
    topic_buf: *mut c_char,
    topic_buf_len: usize,
    out_topic_len: *mut usize,
) -> eq1_status {
    with_client(client, |c| {
        // SAFETY: per this function's contract.
        let token = unsafe { optional_out_param(out_token, 0) };
        // SAFETY: per this function's contract.
        let qos = unsafe { optional_out_param(out_qos, 0) };
        // SAFETY: per this function's contract.
        let topic_len = unsafe { optional_out_param(out_topic_len, 0) };
        if topic_buf.is_null() && topic_buf_len > 0 {
            return Err(Error::NullArgument(
                "topic_buf is NULL with a non-zero topic_buf_len".into(),
            ));
        }
        let restored = c.client.restored();
        let Some(info) = restored.get(index) else {
            return Err(Error::InvalidArgument(format!(
                "restored message {index} does not exist: the client restored {}",
                restored.len()
            )));
        };
        if topic_buf_len > 0 {
            let copied = info.topic.len().min(topic_buf_len - 1);
            // SAFETY: `topic_buf` is writable for `topic_buf_len` bytes and `copied` is
            // below it.
            unsafe {
                std::ptr::copy_nonoverlapping(info.topic.as_ptr(), topic_buf.cast::<u8>(), copied);
                *topic_buf.add(copied) = 0;
            }
        }
        if let Some(t) = token {
            *t = info.token;
        }
        if let Some(q) = qos {
            *q = info.qos as c_int;
        }
        if let Some(l) = topic_len {
            *l = info.topic.len();
        }
        Ok(())
    })
}
