//! The library's log callback: where its messages (and those of a caught panic) go, since it
//! never prints.

use crate::core::log::{self, Level};
use crate::ffi::boundary::call;
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
///
/// Returns:
/// - `EQ1_STATUS_OK` when the callback is installed (or removed).
/// - `EQ1_STATUS_INVALID_ARGUMENT` when `max_level` is outside 1..5 (nothing changes).
/// - `EQ1_STATUS_INTERNAL` on a bug in the library (a caught panic).
///
/// See also: `eq1_log_cb`, `eq1_log_level`.
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
