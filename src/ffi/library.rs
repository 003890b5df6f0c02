//! Library-wide functions: version, last error message, log callback. The header's opening
//! notes (cbindgen.toml) hold the library-wide rules, among them what fork() does to clients.

use crate::core::log::{self, Level};
use crate::ffi::boundary::{call, call_value, last_error};
use crate::ffi::status::eq1_status;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

/// Log severities for `eq1_set_log_callback`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eq1_log_level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// Receives the library's log records. `message` lives until the callback returns. Called on
/// whichever library thread logs (often the I/O thread): keep it short and do not call back
/// into the library from it.
pub type eq1_log_cb = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: eq1_log_level, message: *const c_char),
>;

/// The library version as "MAJOR.MINOR.PATCH" (static; never free it). Compare with the
/// `EQ1_VERSION_*` macros to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn eq1_version() -> *const c_char {
    static VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => c"0.0.0",
    };
    VERSION.as_ptr()
}

/// The library version as MAJOR * 10000 + MINOR * 100 + PATCH, like `EQ1_VERSION_NUMBER`.
#[no_mangle]
pub extern "C" fn eq1_version_number() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// Copies the detail message of the last failed call on this thread into `buf` (snprintf
/// semantics: at most `len - 1` bytes plus NUL) and returns the message length without NUL;
/// call with `buf = NULL, len = 0` to learn the size needed. Returns 0 when there is none.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_last_error_message(buf: *mut c_char, len: usize) -> usize {
    call_value(0, || {
        let message = last_error();
        if !buf.is_null() && len > 0 {
            let copied = message.len().min(len - 1);
            // SAFETY: `buf` is writable for `len` bytes and `copied < len`.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), copied);
                *buf.add(copied) = 0;
            }
        }
        message.len()
    })
}

struct LogTarget {
    callback: unsafe extern "C" fn(*mut c_void, eq1_log_level, *const c_char),
    user_data: *mut c_void,
}
impl LogTarget {
    fn deliver(&self, level: eq1_log_level, text: &std::ffi::CStr) {
        // SAFETY: a callback the user installed, with the user data they gave.
        unsafe { (self.callback)(self.user_data, level, text.as_ptr()) }
    }
}

// SAFETY: the caller promises (header docs) that the callback and user_data may be used from
// any library thread.
unsafe impl Send for LogTarget {}
// SAFETY: as above; the target is only read.
unsafe impl Sync for LogTarget {}

/// Installs the log callback for the whole library (NULL removes it). `max_level` is the most
/// verbose level delivered (1 = errors only ... 5 = trace). The library never prints by itself:
/// a panic inside it (a bug, returned as `EQ1_STATUS_INTERNAL`) is logged here at
/// `EQ1_LOG_LEVEL_ERROR`, not printed. Panics elsewhere in the program keep the process's own
/// panic hook. After fork() the callback stays installed in the child.
#[no_mangle]
pub extern "C" fn eq1_set_log_callback(
    callback: eq1_log_cb,
    user_data: *mut c_void,
    max_level: c_int,
) -> eq1_status {
    call(|| {
        let level = Level::from_number(max_level).ok_or_else(|| {
            crate::Error::InvalidArgument(format!("log level {max_level} is outside 1..=5"))
        })?;
        let sink = callback.map(|callback| {
            let target = LogTarget {
                callback,
                user_data,
            };
            Arc::new(move |level: Level, message: &str| {
                let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
                let level = match level {
                    Level::Error => eq1_log_level::Error,
                    Level::Warn => eq1_log_level::Warn,
                    Level::Info => eq1_log_level::Info,
                    Level::Debug => eq1_log_level::Debug,
                    Level::Trace => eq1_log_level::Trace,
                };
                target.deliver(level, &text)
            }) as log::Sink
        });
        log::set_sink(sink, level);
        Ok(())
    })
}
