//! The C face of the network transports: broker URIs (mixing TCP, TLS, WebSockets and Unix
//! sockets in one failover list), proxies, binding the outgoing socket, WebSocket headers.
//! These are options functions and belong to the header's Options section.

use crate::ffi::boundary::{c_str, optional_c_str};
use crate::ffi::options::{eq1_mqtt_options, with_options};
use crate::ffi::status::eq1_status;
use std::ffi::c_char;

/// Sets the one broker to connect to (replaces the list) from a URI:
/// `mqtt://host[:port]` (TCP, default port 1883), `mqtts://host[:port]` (TLS, 8883),
/// `ws://host[:port][/path]` (WebSockets, subprotocol `mqtt`, default port 80, path `/`),
/// `wss://host[:port][/path]` (WebSockets over TLS, 443) or `unix:///path/to/socket` (a Unix
/// domain socket). IPv6 hosts go in brackets (`mqtt://[::1]:1883`). The scheme decides TLS:
/// a later `eq1_mqtt_options_set_tls` sets the CA for `mqtts`/`wss` brokers but does not turn
/// `mqtt`/`ws` ones into TLS. `mqtts`/`wss` use the system's trust store until a CA is set
/// with `eq1_mqtt_options_set_tls`. Credentials do not go into the URI
/// (`eq1_mqtt_options_set_credentials`). The URI is copied.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `uri` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `uri` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `uri` is not one of the forms above (no or an unknown
///   scheme, empty host, port outside 1..65535, a path on `mqtt://`, user info, a relative
///   Unix path); the detail says which.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_add_broker_uri`, `eq1_mqtt_options_set_broker`.
///
/// # Safety
/// `options` is NULL or live; `uri` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_broker_uri(
    options: *mut eq1_mqtt_options,
    uri: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.set_broker_uri(unsafe { c_str(uri, "broker URI") }?)
    })
}

/// Appends a failover broker given as a URI (the forms of `eq1_mqtt_options_set_broker_uri`);
/// the first call replaces the default localhost:1883. One list may mix transports, e.g.
/// `wss://` first and `mqtts://` as the failover. A list that mixes TLS and plaintext brokers
/// while credentials are set is refused by `eq1_mqtt_client_new` (see
/// `eq1_mqtt_options_set_allow_plaintext_fallback`).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` or `uri` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `uri` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `uri` is not a broker URI; the detail says why.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_broker_uri`, `eq1_mqtt_options_add_broker`.
///
/// # Safety
/// As for `eq1_mqtt_options_set_broker_uri`.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_add_broker_uri(
    options: *mut eq1_mqtt_options,
    uri: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.add_broker_uri(unsafe { c_str(uri, "broker URI") }?)
    })
}

/// Sends every TCP, TLS and WebSocket connection through a proxy (not Unix sockets):
/// `http://[user:password@]host[:port]` (HTTP CONNECT, basic authentication, default port
/// 80), `socks5://[user:password@]host[:port]` (SOCKS5, RFC 1929 user/password, default
/// port 1080; the library resolves the broker's name) or `socks5h://...` (the proxy resolves
/// it). Reserved characters of the user name or password are %-escaped (`p%40ss` for `p@ss`).
/// TLS and WebSockets run end to end through the tunnel. NULL connects directly again. A
/// proxy set here wins over `eq1_mqtt_options_set_proxy_from_env`. A refused proxy password
/// makes the connection fail with `EQ1_STATUS_PROXY_AUTH_FAILED`, a proxy that will not reach
/// the broker with `EQ1_STATUS_PROXY_FAILED`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `uri` (or a %-escape in it) is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `uri` is not a proxy URI of the forms above (another
///   scheme such as `https` or `socks4`, empty host, bad port, a path, a SOCKS5 user name or
///   password over 255 bytes).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_proxy_from_env`.
///
/// # Safety
/// `options` is NULL or live; `uri` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_proxy(
    options: *mut eq1_mqtt_options,
    uri: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.set_proxy(unsafe { optional_c_str(uri, "proxy URI") }?)
    })
}

/// Opt-in (default off): when no proxy is set with `eq1_mqtt_options_set_proxy`, take it from
/// the environment: `https_proxy` for TLS brokers (`mqtts`, `wss`), `http_proxy` for the
/// others, `all_proxy` for either when the specific one is unset, `no_proxy` (comma-separated
/// host names, domain suffixes such as `.example.com`, IP addresses, `*` for all) for brokers
/// reached directly. Lower-case names are read first, then upper-case. A value without a
/// scheme is an HTTP proxy. The variables are read when this is called with `enabled` true,
/// not later.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when a variable holds no valid proxy URI (the detail names
///   the variable); the options stay as they were.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_proxy`.
///
/// # Safety
/// `options` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_proxy_from_env(
    options: *mut eq1_mqtt_options,
    enabled: bool,
) -> eq1_status {
    with_options(options, |o| o.set_proxy_from_env(enabled))
}

/// Binds outgoing TCP connections (to the broker or the proxy) to a local IP address, e.g.
/// `"127.0.0.2"` or `"::1"`; the port stays ephemeral. Only brokers (or proxies) with an
/// address of the same family are then reached. NULL unbinds.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `address` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `address` is not an IPv4 or IPv6 address.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// An address that is not this host's fails the connection with `EQ1_STATUS_BIND_FAILED`.
///
/// See also: `eq1_mqtt_options_set_bind_interface`.
///
/// # Safety
/// `options` is NULL or live; `address` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_bind_address(
    options: *mut eq1_mqtt_options,
    address: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.network
            .set_bind_address(unsafe { optional_c_str(address, "bind address") }?)
    })
}

/// Binds outgoing TCP connections to a network interface (SO_BINDTODEVICE), e.g. `"eth1"`.
/// Linux only; connecting then needs CAP_NET_RAW (root), otherwise it fails with
/// `EQ1_STATUS_BIND_FAILED`, as for an interface that does not exist. NULL unbinds.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `interface` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `interface` is not an interface name (1..15
///   characters without spaces, '/' or ':').
/// - `EQ1_STATUS_FEATURE_NOT_SUPPORTED` on a system other than Linux.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_bind_address`.
///
/// # Safety
/// `options` is NULL or live; `interface` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_set_bind_interface(
    options: *mut eq1_mqtt_options,
    interface: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        o.network
            .set_bind_interface(unsafe { optional_c_str(interface, "interface") }?)
    })
}

/// Adds an HTTP header to the WebSocket upgrade request of `ws://` and `wss://` brokers (e.g.
/// an `Authorization` token a gateway checks). Headers are sent in the order added; a name
/// may repeat. The library sets `Host`, `Upgrade`, `Connection` and the `Sec-WebSocket-*`
/// headers itself (subprotocol `mqtt`); those are refused here. Both strings are copied.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `options`, `name` or `value` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `name` or `value` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `name` is not an HTTP token or is one of the headers
///   the handshake sets, or `value` holds control characters or non-ASCII text.
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_mqtt_options_set_broker_uri`.
///
/// # Safety
/// `options` is NULL or live; `name` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn eq1_mqtt_options_add_websocket_header(
    options: *mut eq1_mqtt_options,
    name: *const c_char,
    value: *const c_char,
) -> eq1_status {
    with_options(options, |o| {
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(name, "header name") }?;
        // SAFETY: as above.
        let value = unsafe { c_str(value, "header value") }?;
        o.network.add_websocket_header(name, value)
    })
}
