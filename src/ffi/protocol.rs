//! `eq1_protocol`: one C handle for a protocol of any kind, opened by name from the registry
//! (`protocols::registry`) with key/value options; and the plugin manager, which loads a
//! protocol from a shared object exporting a versioned vtable (`eq1_plugin_vtable`).
//!
//! Plugins are never unloaded: their code may be running on another thread until the last
//! instance closes, and keeping a shared object mapped costs little.

use crate::core::error::{Error, Result};
use crate::ffi::boundary::{bytes, c_str, call, call_value, handle, handle_mut, out_param};
use crate::ffi::boundary::{c_string, timeout_ms};
use crate::ffi::status::eq1_status;
use crate::protocols::registry::{self, Protocol, ProtocolOptions};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The plugin ABI this library speaks: `eq1_plugin_vtable.abi_version` must equal it.
pub const EQ1_PLUGIN_ABI_VERSION: u32 = 1;

/// Opaque key/value options for `eq1_protocol_open`. Not thread-safe.
pub struct eq1_protocol_options {
    inner: ProtocolOptions,
}

/// Opaque handle of a protocol instance of any kind. Thread-safe.
pub struct eq1_protocol {
    inner: Box<dyn Protocol>,
}

/// One option handed to a plugin's `open`: borrowed for the duration of the call.
#[repr(C)]
pub struct eq1_plugin_option {
    pub key: *const c_char,
    pub value: *const c_char,
}

/// What a plugin's shared object exports, returned by its function
/// `const eq1_plugin_vtable *eq1_plugin_entry(void)` (the pointer must stay valid while the
/// process runs). Each function returns an `eq1_status` number (0 = `EQ1_STATUS_OK`); the
/// library never calls two functions of one instance at the same time. `name`, `open` and
/// `close` are required; a NULL operation makes it fail with
/// `EQ1_STATUS_UNSUPPORTED_OPERATION`.
#[repr(C)]
pub struct eq1_plugin_vtable {
    /// `EQ1_PLUGIN_ABI_VERSION` of the header the plugin was built with.
    pub abi_version: u32,
    /// The protocol name it registers (1..64 of `[A-Za-z0-9._-]`).
    pub name: *const c_char,
    /// Creates an instance from `count` options; writes it to `*instance`.
    pub open: Option<
        unsafe extern "C" fn(
            options: *const eq1_plugin_option,
            count: usize,
            instance: *mut *mut c_void,
        ) -> c_int,
    >,
    /// Releases an instance (after which it is never used).
    pub close: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    pub connect: Option<unsafe extern "C" fn(instance: *mut c_void, timeout_ms: c_int) -> c_int>,
    pub disconnect: Option<unsafe extern "C" fn(instance: *mut c_void, timeout_ms: c_int) -> c_int>,
    pub send: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            data: *const u8,
            len: usize,
            timeout_ms: c_int,
        ) -> c_int,
    >,
    /// Writes at most `buf_len` bytes into `buf` and their number into `*out_len`.
    pub receive: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            buf: *mut u8,
            buf_len: usize,
            out_len: *mut usize,
            timeout_ms: c_int,
        ) -> c_int,
    >,
    pub publish: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            topic: *const c_char,
            payload: *const u8,
            len: usize,
            qos: c_int,
            retain: bool,
        ) -> c_int,
    >,
    pub subscribe: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            filter: *const c_char,
            qos: c_int,
            timeout_ms: c_int,
        ) -> c_int,
    >,
}

/// A vtable copied out of a loaded plugin (which stays loaded).
#[derive(Clone, Copy)]
struct Vtable {
    open: unsafe extern "C" fn(*const eq1_plugin_option, usize, *mut *mut c_void) -> c_int,
    close: unsafe extern "C" fn(*mut c_void),
    connect: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    disconnect: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    send: Option<unsafe extern "C" fn(*mut c_void, *const u8, usize, c_int) -> c_int>,
    receive: Option<unsafe extern "C" fn(*mut c_void, *mut u8, usize, *mut usize, c_int) -> c_int>,
    publish: Option<
        unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize, c_int, bool) -> c_int,
    >,
    subscribe: Option<unsafe extern "C" fn(*mut c_void, *const c_char, c_int, c_int) -> c_int>,
}

struct Instance(*mut c_void);
// SAFETY: the plugin contract says an instance may be used from any thread, one call at a time;
// the Mutex around it makes the calls take turns.
unsafe impl Send for Instance {}

struct PluginProtocol {
    name: String,
    vtable: Vtable,
    instance: Mutex<Instance>,
    connected: std::sync::atomic::AtomicBool,
}

/// A plugin function's status as a result: the statuses a caller reacts to keep their meaning,
/// any other failure is `PluginFailed` naming the plugin, the function and the number.
fn plugin_result(name: &str, function: &str, status: c_int) -> Result<()> {
    use crate::core::status::Status;
    if status == 0 {
        return Ok(());
    }
    let known = Status::from_number(status);
    let detail = format!(
        "plugin '{name}': {function} returned status {status} ({})",
        known
            .and_then(|s| s.info().name.to_str().ok())
            .unwrap_or("not a libeq1 status")
    );
    Err(match known {
        Some(Status::Timeout) => Error::Timeout(detail),
        Some(Status::NotConnected) => Error::NotConnected(detail),
        Some(Status::ConnectionLost) => Error::ConnectionLost(detail),
        Some(Status::InvalidArgument) => Error::InvalidArgument(detail),
        _ => Error::PluginFailed(detail),
    })
}

fn ms(timeout: Duration) -> c_int {
    c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX)
}

impl PluginProtocol {
    fn instance(&self) -> MutexGuard<'_, Instance> {
        self.instance
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check(&self, function: &str, status: c_int) -> Result<()> {
        plugin_result(&self.name, function, status)
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::UnsupportedOperation(format!("plugin '{}' has no {what} function", self.name))
    }
}

impl Drop for PluginProtocol {
    fn drop(&mut self) {
        let instance = self.instance().0;
        // SAFETY: the instance came from this plugin's open and is released once, here.
        unsafe { (self.vtable.close)(instance) };
    }
}

impl Protocol for PluginProtocol {
    fn kind(&self) -> &str {
        &self.name
    }
    fn connect(&self, timeout: Duration) -> Result<()> {
        let f = self
            .vtable
            .connect
            .ok_or_else(|| self.unsupported("connect"))?;
        let instance = self.instance();
        // SAFETY: a live instance of this plugin; calls take turns (the lock).
        self.check("connect", unsafe { f(instance.0, ms(timeout)) })?;
        self.connected
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
    fn disconnect(&self, timeout: Duration) -> Result<()> {
        let f = self
            .vtable
            .disconnect
            .ok_or_else(|| self.unsupported("disconnect"))?;
        let instance = self.instance();
        self.connected
            .store(false, std::sync::atomic::Ordering::Release);
        // SAFETY: as for connect.
        self.check("disconnect", unsafe { f(instance.0, ms(timeout)) })
    }
    fn is_connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::Acquire)
    }
    fn send(&self, data: &[u8], timeout: Duration) -> Result<()> {
        let f = self.vtable.send.ok_or_else(|| self.unsupported("send"))?;
        let instance = self.instance();
        // SAFETY: as for connect; `data` is readable for its length during the call.
        self.check("send", unsafe {
            f(instance.0, data.as_ptr(), data.len(), ms(timeout))
        })
    }
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let f = self
            .vtable
            .receive
            .ok_or_else(|| self.unsupported("receive"))?;
        let mut buffer = vec![0u8; max_len.clamp(1, 16 * 1024 * 1024)];
        let mut len = 0usize;
        let instance = self.instance();
        // SAFETY: as for connect; the buffer is writable for its length.
        let status = unsafe {
            f(
                instance.0,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut len,
                ms(timeout),
            )
        };
        self.check("receive", status)?;
        if len > buffer.len() {
            return Err(Error::PluginFailed(format!(
                "plugin '{}': receive reported {len} bytes in a buffer of {}",
                self.name,
                buffer.len()
            )));
        }
        buffer.truncate(len);
        Ok(buffer)
    }
    fn request(&self, data: &[u8], max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        if self.vtable.send.is_none() || self.vtable.receive.is_none() {
            return Err(self.unsupported("send or receive (for a request)"));
        }
        self.send(data, timeout)?;
        self.receive(max_len, timeout)
    }
    fn publish(&self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Result<()> {
        let f = self
            .vtable
            .publish
            .ok_or_else(|| self.unsupported("publish"))?;
        let topic = c_string(topic);
        let instance = self.instance();
        // SAFETY: as for connect; the strings and bytes live during the call.
        self.check("publish", unsafe {
            f(
                instance.0,
                topic.as_ptr(),
                payload.as_ptr(),
                payload.len(),
                qos as c_int,
                retain,
            )
        })
    }
    fn subscribe(&self, filter: &str, qos: u8, timeout: Duration) -> Result<()> {
        let f = self
            .vtable
            .subscribe
            .ok_or_else(|| self.unsupported("subscribe"))?;
        let filter = c_string(filter);
        let instance = self.instance();
        // SAFETY: as for connect.
        self.check("subscribe", unsafe {
            f(instance.0, filter.as_ptr(), qos as c_int, ms(timeout))
        })
    }
}

fn open_plugin_instance(
    name: &str,
    vtable: Vtable,
    options: &ProtocolOptions,
) -> Result<Box<dyn Protocol>> {
    let pairs: Vec<(CString, CString)> = options
        .iter()
        .map(|(k, v)| (c_string(k), c_string(v)))
        .collect();
    let c_options: Vec<eq1_plugin_option> = pairs
        .iter()
        .map(|(k, v)| eq1_plugin_option {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let mut instance = std::ptr::null_mut();
    // SAFETY: the options array and its strings live during the call; `instance` is writable.
    let status = unsafe { (vtable.open)(c_options.as_ptr(), c_options.len(), &mut instance) };
    plugin_result(name, "open", status)?;
    if instance.is_null() {
        return Err(Error::PluginFailed(format!(
            "plugin '{name}': open succeeded but gave no instance"
        )));
    }
    Ok(Box::new(PluginProtocol {
        name: name.to_owned(),
        vtable,
        instance: Mutex::new(Instance(instance)),
        connected: std::sync::atomic::AtomicBool::new(false),
    }))
}

/// Loads the plugin at `path` and registers its protocol; returns its name.
fn load_plugin(path: &str) -> Result<String> {
    // SAFETY: loading runs the object's initialisers: the caller trusts the plugin it names.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| Error::PluginLoad(format!("cannot load plugin {path}: {e}")))?;
    type Entry = unsafe extern "C" fn() -> *const eq1_plugin_vtable;
    // SAFETY: the symbol is declared by the plugin ABI with this signature.
    let entry: libloading::Symbol<Entry> =
        unsafe { library.get(b"eq1_plugin_entry\0") }.map_err(|e| {
            Error::PluginSymbol(format!(
                "plugin {path} does not export eq1_plugin_entry: {e}"
            ))
        })?;
    // SAFETY: calling the plugin's entry point per the ABI.
    let table = unsafe { entry() };
    // SAFETY: NULL or a vtable valid for the life of the process (ABI contract; the library is
    // never unloaded).
    let table = unsafe { table.as_ref() }.ok_or_else(|| {
        Error::PluginSymbol(format!("plugin {path}: eq1_plugin_entry returned NULL"))
    })?;
    if table.abi_version != EQ1_PLUGIN_ABI_VERSION {
        return Err(Error::PluginVersion(format!(
            "plugin {path} was built for plugin ABI version {}, this library speaks version {EQ1_PLUGIN_ABI_VERSION}",
            table.abi_version
        )));
    }
    // SAFETY: NULL or a NUL-terminated string (ABI contract).
    let name = unsafe { c_str(table.name, "the plugin's name") }
        .map_err(|e| Error::PluginSymbol(format!("plugin {path}: {}", e.message())))?
        .to_owned();
    let missing = |what: &str| {
        Error::PluginSymbol(format!("plugin {path} ('{name}') has no {what} function"))
    };
    let vtable = Vtable {
        open: table.open.ok_or_else(|| missing("open"))?,
        close: table.close.ok_or_else(|| missing("close"))?,
        connect: table.connect,
        disconnect: table.disconnect,
        send: table.send,
        receive: table.receive,
        publish: table.publish,
        subscribe: table.subscribe,
    };
    let registered = name.clone();
    registry::register(&name, move |options| {
        open_plugin_instance(&registered, vtable, options)
    })?;
    // Never unloaded (see the module notes).
    std::mem::forget(library);
    Ok(name)
}

/// ==========================================================================================
/// Section: Protocols
///
/// One handle for a protocol of any kind: `eq1_protocol_open` creates an instance from a
/// registered name (the built-ins "mqtt", "tcp", "serial", "modbus-tcp", "modbus-rtu", and
/// those loaded with `eq1_protocol_load_plugin`; `eq1_protocol_names` lists them) and
/// key/value options; the generic operations fail with `EQ1_STATUS_UNSUPPORTED_OPERATION` when
/// the kind does not have them. An unknown option is refused.
///
/// - "mqtt": host (or uri), port (1883), client_id, username, password, keep_alive (s),
///   clean_session, version (3.1.1 or 5), tls, tls_ca_file, publish_timeout_ms (publish waits
///   for the outcome, 5000), receive_queue (1000). Publish and subscribe; receive returns the
///   payload of the next message of any subscription made through the handle, in order.
/// - "tcp": host, port, framing (raw, u16, u32, delimiter), delimiter, max_frame,
///   connect_timeout_ms, auto_reconnect, tls, tls_ca_file, tls_cert_file, tls_key_file,
///   tls_verify_hostname, tls_insecure. Send, receive, request.
/// - "serial": device, baud (9600), data_bits (5..8), parity (none, odd, even), stop_bits (1
///   or 2), flow_control (none, software, hardware), read_timeout_ms. Send, receive, request.
/// - "modbus-tcp": host, port (502), unit_id, timeout_ms, retries; "modbus-rtu": device, baud,
///   data_bits, parity (N, O, E), stop_bits, unit_id, timeout_ms, retries. Request: a request
///   PDU in, the response PDU out.
///
/// ==========================================================================================
///
/// New, empty protocol options.
///
/// Returns: the options, to free with `eq1_protocol_options_free`; NULL only on a bug in the
/// library (a caught panic).
#[no_mangle]
pub extern "C" fn eq1_protocol_options_new() -> *mut eq1_protocol_options {
    call_value(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(eq1_protocol_options {
            inner: ProtocolOptions::new(),
        }))
    })
}

/// Releases options. NULL is a no-op.
///
/// Returns: nothing.
///
/// # Safety
/// `options` NULL or from `eq1_protocol_options_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_options_free(options: *mut eq1_protocol_options) {
    call_value((), || {
        if !options.is_null() {
            // SAFETY: created by Box::into_raw in eq1_protocol_options_new; released once.
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// Sets (or replaces) the option `key` to `value` (both copied). Values are checked by
/// `eq1_protocol_open`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when an argument is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `key` or `value` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `key` is empty.
///
/// # Safety
/// `options` NULL or live; `key`, `value` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_options_set(
    options: *mut eq1_protocol_options,
    key: *const c_char,
    value: *const c_char,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let options = unsafe { handle_mut(options, "options") }?;
        // SAFETY: per this function's contract.
        let key = unsafe { c_str(key, "key") }?;
        // SAFETY: per this function's contract.
        let value = unsafe { c_str(value, "value") }?;
        if key.is_empty() {
            return Err(Error::InvalidArgument("the option key is empty".into()));
        }
        options.inner.set(key, value);
        Ok(())
    })
}

/// Creates an instance of the protocol `name` from `options` (NULL: none), not connected.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success; `*out` is the handle, to release with `eq1_protocol_close`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `name` or `out` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `name` is not valid UTF-8.
/// - `EQ1_STATUS_UNKNOWN_PROTOCOL` when no protocol of that name is registered.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when an option is unknown, missing or invalid.
/// - `EQ1_STATUS_PLUGIN_FAILED` when a plugin's open failed.
///
/// # Safety
/// `name` NULL or NUL-terminated; `options` NULL or live; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_open(
    name: *const c_char,
    options: *const eq1_protocol_options,
    out: *mut *mut eq1_protocol,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let out = unsafe { out_param(out, std::ptr::null_mut(), "out") }?;
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(name, "name") }?;
        let empty = ProtocolOptions::new();
        // SAFETY: per this function's contract.
        let options = match unsafe { options.as_ref() } {
            Some(o) => &o.inner,
            None => &empty,
        };
        let inner = registry::open(name, options)?;
        *out = Box::into_raw(Box::new(eq1_protocol { inner }));
        Ok(())
    })
}

/// Disconnects (if connected) and releases the handle. NULL is a no-op.
///
/// Returns: `EQ1_STATUS_OK` (also for NULL).
///
/// # Safety
/// `protocol` NULL or from `eq1_protocol_open`, no call on it running or after.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_close(protocol: *mut eq1_protocol) -> eq1_status {
    call(|| {
        if !protocol.is_null() {
            // SAFETY: created by Box::into_raw in eq1_protocol_open; released once.
            let owned = unsafe { Box::from_raw(protocol) };
            if owned.inner.is_connected() {
                let _ = owned.inner.disconnect(Duration::from_secs(1));
            }
        }
        Ok(())
    })
}

fn with_protocol(
    protocol: *const eq1_protocol,
    body: impl FnOnce(&dyn Protocol) -> Result<()>,
) -> eq1_status {
    call(|| {
        // SAFETY: NULL or live, per the functions' contracts.
        let protocol = unsafe { handle(protocol, "protocol") }?;
        body(protocol.inner.as_ref())
    })
}

/// Connects within `timeout_ms`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `protocol` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - the statuses of the kind's own connect (e.g. `eq1_tcp_client_connect`,
///   `eq1_serial_client_connect`; `EQ1_STATUS_PLUGIN_FAILED` for a plugin).
///
/// # Safety
/// `protocol` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_connect(
    protocol: *const eq1_protocol,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_protocol(protocol, |p| {
        p.connect(timeout_ms(timeout_ms_value, "connect")?)
    })
}

/// Disconnects within `timeout_ms`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `protocol` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_UNSUPPORTED_OPERATION` for a plugin without a disconnect function.
///
/// # Safety
/// `protocol` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_disconnect(
    protocol: *const eq1_protocol,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_protocol(protocol, |p| {
        p.disconnect(timeout_ms(timeout_ms_value, "disconnect")?)
    })
}

/// Returns: true while connected; false for NULL.
///
/// # Safety
/// `protocol` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_is_connected(protocol: *const eq1_protocol) -> bool {
    call_value(false, || {
        // SAFETY: per this function's contract.
        unsafe { handle(protocol, "protocol") }.is_ok_and(|p| p.inner.is_connected())
    })
}

/// Sends `len` bytes (one message for a framed kind) within `timeout_ms`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `protocol` is NULL, or `data` NULL with a non-zero `len`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_UNSUPPORTED_OPERATION` when the kind cannot send.
/// - the statuses of the kind's own send (e.g. `eq1_tcp_client_send`).
///
/// # Safety
/// `protocol` NULL or live; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_send(
    protocol: *const eq1_protocol,
    data: *const u8,
    len: usize,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_protocol(protocol, |p| {
        // SAFETY: per this function's contract.
        let data = unsafe { bytes(data, len, "data") }?;
        p.send(data, timeout_ms(timeout_ms_value, "send")?)
    })
}

/// # Safety
/// `buf` NULL or writable for `buf_len` bytes; `out_len` NULL or writable.
unsafe fn deliver(
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
    receive: impl FnOnce(usize) -> Result<Vec<u8>>,
) -> Result<()> {
    // SAFETY: per the contract.
    let out_len = unsafe { out_param(out_len, 0, "out_len") }?;
    if buf.is_null() {
        return Err(Error::NullArgument("buf is NULL".into()));
    }
    if buf_len == 0 {
        return Err(Error::InvalidArgument("buf_len is 0".into()));
    }
    let data = receive(buf_len)?;
    let len = data.len().min(buf_len);
    // SAFETY: `buf` writable for `buf_len` >= `len` bytes; distinct regions.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, len) };
    *out_len = len;
    Ok(())
}

/// Receives one message (or what arrived, for a raw kind) of at most `buf_len` bytes into
/// `buf`, within `timeout_ms`.
///
/// Returns:
/// - `EQ1_STATUS_OK` on success; `*out_len` bytes are in `buf`.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `protocol`, `buf` or `out_len` is NULL.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `buf_len` is 0 or `timeout_ms` negative.
/// - `EQ1_STATUS_UNSUPPORTED_OPERATION` when the kind cannot receive.
/// - `EQ1_STATUS_TIMEOUT` when nothing came in time; the statuses of the kind's own receive.
///
/// # Safety
/// `protocol` NULL or live; `buf` NULL or writable for `buf_len`; `out_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_receive(
    protocol: *const eq1_protocol,
    timeout_ms_value: c_int,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> eq1_status {
    with_protocol(protocol, |p| {
        let timeout = timeout_ms(timeout_ms_value, "receive")?;
        // SAFETY: per this function's contract.
        unsafe { deliver(buf, buf_len, out_len, |max| p.receive(max, timeout)) }
    })
}

/// Sends `data` and receives its answer into `buf`, within `timeout_ms`.
///
/// Returns: as `eq1_protocol_send` and `eq1_protocol_receive`.
///
/// # Safety
/// As for `eq1_protocol_send` and `eq1_protocol_receive`.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_request(
    protocol: *const eq1_protocol,
    data: *const u8,
    len: usize,
    timeout_ms_value: c_int,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> eq1_status {
    with_protocol(protocol, |p| {
        // SAFETY: per this function's contract.
        let data = unsafe { bytes(data, len, "data") }?;
        let timeout = timeout_ms(timeout_ms_value, "request")?;
        // SAFETY: per this function's contract.
        unsafe { deliver(buf, buf_len, out_len, |max| p.request(data, max, timeout)) }
    })
}

/// Publishes `len` bytes on `topic` (publish/subscribe kinds).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `protocol` or `topic` is NULL, or `payload` NULL with a
///   non-zero `len`.
/// - `EQ1_STATUS_INVALID_UTF8` when `topic` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_QOS` when `qos` is outside 0..2.
/// - `EQ1_STATUS_UNSUPPORTED_OPERATION` when the kind cannot publish (e.g. "tcp").
///
/// # Safety
/// `protocol` NULL or live; `topic` NULL or NUL-terminated; `payload` NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_publish(
    protocol: *const eq1_protocol,
    topic: *const c_char,
    payload: *const u8,
    len: usize,
    qos: c_int,
    retain: bool,
) -> eq1_status {
    with_protocol(protocol, |p| {
        // SAFETY: per this function's contract.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: per this function's contract.
        let payload = unsafe { bytes(payload, len, "payload") }?;
        let qos = u8::try_from(qos)
            .ok()
            .filter(|q| *q <= 2)
            .ok_or_else(|| Error::InvalidQos(format!("QoS {qos} is not 0, 1 or 2")))?;
        p.publish(topic, payload, qos, retain)
    })
}

/// Subscribes to `filter` within `timeout_ms` (publish/subscribe kinds).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `protocol` or `filter` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `filter` is not valid UTF-8.
/// - `EQ1_STATUS_INVALID_QOS` when `qos` is outside 0..2.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `timeout_ms` is negative.
/// - `EQ1_STATUS_UNSUPPORTED_OPERATION` when the kind cannot subscribe (e.g. "tcp").
///
/// # Safety
/// `protocol` NULL or live; `filter` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_subscribe(
    protocol: *const eq1_protocol,
    filter: *const c_char,
    qos: c_int,
    timeout_ms_value: c_int,
) -> eq1_status {
    with_protocol(protocol, |p| {
        // SAFETY: per this function's contract.
        let filter = unsafe { c_str(filter, "filter") }?;
        let qos = u8::try_from(qos)
            .ok()
            .filter(|q| *q <= 2)
            .ok_or_else(|| Error::InvalidQos(format!("QoS {qos} is not 0, 1 or 2")))?;
        p.subscribe(filter, qos, timeout_ms(timeout_ms_value, "subscribe")?)
    })
}

/// The names `eq1_protocol_open` knows (built-ins and loaded plugins), sorted, one per line
/// ("modbus-rtu\nmodbus-tcp\nmqtt\nserial\ntcp" without plugins), copied into `buf` with
/// snprintf semantics: at most `buf_len - 1` bytes and a NUL; `buf` may be NULL when
/// `buf_len` is 0, to ask for the length.
///
/// Returns: the length of the whole list without its NUL (a value >= `buf_len` means it was
/// cut short).
///
/// # Safety
/// `buf` NULL or writable for `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_names(buf: *mut c_char, buf_len: usize) -> usize {
    call_value(0, || {
        let names = registry::names().join("\n");
        // SAFETY: per this function's contract.
        unsafe { crate::ffi::boundary::copy_snprintf(&names, buf, buf_len) }
    })
}

/// Loads the plugin at `path` (a shared object exporting `eq1_plugin_entry`) and registers its
/// protocol under the vtable's name, for `eq1_protocol_open`. Plugins are never unloaded.
/// When `name_buf` is not NULL the registered name is copied there (snprintf semantics, at
/// most `name_len - 1` bytes and a NUL).
///
/// Returns:
/// - `EQ1_STATUS_OK` on success.
/// - `EQ1_STATUS_NULL_ARGUMENT` when `path` is NULL.
/// - `EQ1_STATUS_INVALID_UTF8` when `path` is not valid UTF-8.
/// - `EQ1_STATUS_PLUGIN_LOAD` when the file cannot be loaded (missing, not a shared object,
///   unresolved dependencies).
/// - `EQ1_STATUS_PROTOCOL_EXISTS` when a protocol of the vtable's name is registered already
///   (a built-in, or a plugin loaded before, also the same file loaded twice).
/// - `EQ1_STATUS_PLUGIN_SYMBOL` when `eq1_plugin_entry` is missing or returns NULL, or the
///   vtable lacks its name, open or close.
/// - `EQ1_STATUS_PLUGIN_VERSION` when the vtable's `abi_version` is not
///   `EQ1_PLUGIN_ABI_VERSION`.
/// - `EQ1_STATUS_INVALID_ARGUMENT` when the vtable's name is not a valid protocol name.
///
/// # Safety
/// `path` NULL or NUL-terminated; `name_buf` NULL or writable for `name_len` bytes. Loading
/// runs the plugin's code: load only plugins you trust.
#[no_mangle]
pub unsafe extern "C" fn eq1_protocol_load_plugin(
    path: *const c_char,
    name_buf: *mut c_char,
    name_len: usize,
) -> eq1_status {
    call(|| {
        // SAFETY: per this function's contract.
        let path = unsafe { c_str(path, "path") }?;
        let name = load_plugin(path)?;
        // SAFETY: per this function's contract.
        unsafe { crate::ffi::boundary::copy_snprintf(&name, name_buf, name_len) };
        Ok(())
    })
}
