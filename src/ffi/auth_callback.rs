//! The authentication callback at the C boundary: it answers each step of the MQTT 5.0
//! enhanced-authentication exchange (types in `auth`).

use crate::ffi::auth::{
    eq1_mqtt_auth_challenge, eq1_mqtt_auth_response, EQ1_MQTT_AUTH_CONTINUE,
    EQ1_MQTT_AUTH_DATA_CAPACITY, EQ1_MQTT_AUTH_FAILURE, EQ1_MQTT_AUTH_REASON_CAPACITY,
    EQ1_MQTT_AUTH_SUCCESS,
};
use crate::ffi::boundary::c_string;
use crate::ffi::client::{eq1_mqtt_client, with_client, UserData};
use crate::ffi::status::eq1_status;
use crate::mqtt::{AuthAnswer, AuthChallenge};
use bytes::Bytes;
use std::ffi::{c_char, c_void, CStr};
use std::sync::Arc;

/// Answers one step of the enhanced-authentication exchange: read `challenge`, fill
/// `response` (both borrowed until it returns). Runs on the client's dispatcher thread; the
/// connection keeps its keep-alive meanwhile, and the exchange is bounded by the connect or
/// re-authentication timeout.
pub type eq1_mqtt_auth_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        challenge: *const eq1_mqtt_auth_challenge,
        response: *mut eq1_mqtt_auth_response,
    ),
>;

/// Sets (or with NULL removes) the authentication callback: it answers the broker's
/// challenges of the exchange the authentication method starts
/// (`eq1_mqtt_options_set_auth_method`), at connect and in `eq1_mqtt_client_reauthenticate`.
/// Without one, a challenge fails the exchange with `EQ1_STATUS_AUTH_FAILED`. `user_data`
/// must stay valid until the callback is replaced or removed, or the client freed.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `client` is NULL.
/// - `EQ1_STATUS_INVALID_STATE` when `client` was created before fork() in another process.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_auth_cb`, `eq1_mqtt_auth_challenge`, `eq1_mqtt_auth_response`.
///
/// # Safety
/// `client` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_client_set_auth_callback(
    client: *mut eq1_mqtt_client,
    callback: eq1_mqtt_auth_cb,
    user_data: *mut c_void,
) -> eq1_status {
    with_client(client, |c| {
        let user_data = UserData(user_data);
        let handler = callback.map(|callback| {
            Arc::new(move |challenge: &AuthChallenge| {
                let user_data = user_data;
                c_answer(callback, user_data, challenge)
            }) as crate::mqtt::AuthHandler
        });
        c.client.set_auth_handler(handler);
        Ok(())
    })
}

fn c_answer(
    callback: unsafe extern "C" fn(
        *mut c_void,
        *const eq1_mqtt_auth_challenge,
        *mut eq1_mqtt_auth_response,
    ),
    user_data: UserData,
    challenge: &AuthChallenge,
) -> AuthAnswer {
    let method = c_string(&challenge.method);
    let view = eq1_mqtt_auth_challenge {
        method: method.as_ptr(),
        reason_code: challenge.reason,
        data: if challenge.data.is_empty() {
            std::ptr::null()
        } else {
            challenge.data.as_ptr()
        },
        data_len: challenge.data.len(),
        reauthenticating: challenge.reauthenticating,
    };
    let mut data = vec![0u8; EQ1_MQTT_AUTH_DATA_CAPACITY];
    let mut reason = vec![0u8; EQ1_MQTT_AUTH_REASON_CAPACITY];
    let mut response = eq1_mqtt_auth_response {
        action: EQ1_MQTT_AUTH_FAILURE,
        data: data.as_mut_ptr(),
        data_capacity: data.len(),
        data_len: 0,
        reason: reason.as_mut_ptr().cast::<c_char>(),
        reason_capacity: reason.len(),
    };
    // SAFETY: the user's callback; `view`, `response` and their buffers outlive the call.
    unsafe { callback(user_data.0, &view, &mut response) };
    // The callback may have overwritten the NUL at the end: the last byte is ours again.
    if let Some(last) = reason.last_mut() {
        *last = 0;
    }
    let reason = CStr::from_bytes_until_nul(&reason)
        .ok()
        .map(|r| r.to_string_lossy().into_owned())
        .filter(|r| !r.is_empty());
    match response.action {
        EQ1_MQTT_AUTH_CONTINUE if response.data_len > data.len() => AuthAnswer::Failure(format!(
            "the authentication callback set data_len {} beyond the buffer's {} bytes",
            response.data_len,
            data.len()
        )),
        EQ1_MQTT_AUTH_CONTINUE => {
            data.truncate(response.data_len);
            AuthAnswer::Continue(Bytes::from(data))
        }
        EQ1_MQTT_AUTH_SUCCESS => AuthAnswer::Success,
        EQ1_MQTT_AUTH_FAILURE => AuthAnswer::Failure(
            reason.unwrap_or_else(|| "the authentication callback answered failure".into()),
        ),
        other => AuthAnswer::Failure(format!(
            "the authentication callback answered action {other}, which is none of EQ1_MQTT_AUTH_CONTINUE/SUCCESS/FAILURE"
        )),
    }
}
