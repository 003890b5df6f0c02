//! Library-wide functions: the version and the last error message. The header's opening notes
//! (cbindgen.toml) hold the library-wide rules, among them what fork() does to clients.

use crate::ffi::boundary::{call_value, copy_snprintf, last_error};
use std::ffi::c_char;

/// ==========================================================================================
/// Section: Library
///
/// Version, the last error message and the status table, logging.
/// ==========================================================================================
///
/// The library version as "MAJOR.MINOR.PATCH". Compare with the `EQ1_VERSION_*` macros to
/// detect a header/library mismatch.
///
/// Returns: a static, NUL-terminated string; never NULL, never free it.
///
/// See also: `eq1_version_number`.
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

/// The library version as one number, like `EQ1_VERSION_NUMBER`.
///
/// Returns: MAJOR * 10000 + MINOR * 100 + PATCH.
///
/// See also: `eq1_version`.
#[no_mangle]
pub extern "C" fn eq1_version_number() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// Copies the detail message of the last failed call on this thread into `buf` (snprintf
/// semantics: at most `len - 1` bytes plus NUL); call with `buf = NULL, len = 0` to learn the
/// size needed.
///
/// Returns: the length of the message without NUL (0 when there is none); it may exceed
/// `len - 1`, in which case the copy was cut short.
///
/// See also: `eq1_status_str`.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn eq1_last_error_message(buf: *mut c_char, len: usize) -> usize {
    call_value(0, || {
        // SAFETY: per this function's contract.
        unsafe { copy_snprintf(&last_error(), buf, len) }
    })
}
