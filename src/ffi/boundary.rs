//! The one way across the C boundary: every export runs through `call`, which catches panics,
//! turns `Result` into an `eq1_status` and records the detail message for this thread. Also the
//! pointer checks that tie each C argument to a Rust borrow.

use crate::core::error::{Error, Result};
use crate::core::panic::run_as_library;
use crate::ffi::status::eq1_status;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub fn set_last_error(message: &str) {
    LAST_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        last.clear();
        // The message is handed to C as a C string: an interior NUL would cut it short.
        last.extend(message.chars().filter(|c| *c != '\0'));
    });
}

pub fn last_error() -> String {
    LAST_ERROR.with(|last| last.borrow().clone())
}

/// Runs `body`, never letting a panic reach C (its message goes to the library log).
pub fn call(body: impl FnOnce() -> Result<()>) -> eq1_status {
    match catch_unwind(AssertUnwindSafe(|| run_as_library(body))) {
        Ok(Ok(())) => eq1_status::Ok,
        Ok(Err(error)) => {
            set_last_error(&error.message());
            eq1_status::from(&error)
        }
        Err(_) => {
            set_last_error("internal error: a panic was caught at the C boundary");
            eq1_status::Internal
        }
    }
}

/// For exports that return a value instead of a status: `fallback` on panic.
pub fn call_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(|| run_as_library(body))).unwrap_or_else(|_| {
        set_last_error("internal error: a panic was caught at the C boundary");
        fallback
    })
}

/// A C string for text handed to C: an interior NUL (which C would read as the end) becomes a
/// space.
pub fn c_string(text: &str) -> CString {
    CString::new(text).unwrap_or_else(|_| CString::new(text.replace('\0', " ")).unwrap_or_default())
}

/// Borrows a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
pub unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::NullArgument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Error::InvalidUtf8(format!(
            "{what} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// Like `c_str`, but NULL means "absent".
///
/// # Safety
/// As for `c_str`.
pub unsafe fn optional_c_str<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { c_str(ptr, what) }.map(Some)
    }
}

/// Borrows a byte buffer; NULL with length 0 is the empty buffer.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes valid for the call.
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::NullArgument(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Error::PayloadTooLarge(format!(
            "{what} length {len} is impossible"
        )));
    }
    // SAFETY: non-NULL, `len` bytes readable per the caller's contract, len <= isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Copies `text` into `buf` with snprintf semantics (at most `len - 1` bytes, then NUL; nothing
/// when `buf` is NULL or `len` is 0) and returns the full length, without NUL.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes.
pub unsafe fn copy_snprintf(text: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let copied = text.len().min(len - 1);
        // SAFETY: `buf` is writable for `len` bytes and `copied < len`.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), copied);
            *buf.add(copied) = 0;
        }
    }
    text.len()
}

/// This process's id, read without a system call (it is checked on every client call): a
/// fork() child handler refreshes it in the child.
pub fn process_id() -> u32 {
    // 0: not cached (the handler could not be registered), ask the kernel each time.
    static PID: AtomicU32 = AtomicU32::new(0);
    static WATCH_FORKS: Once = Once::new();
    extern "C" fn refresh_in_child() {
        // Runs in the child right after fork(): getpid and an atomic store are async-signal-safe.
        PID.store(std::process::id(), Ordering::Release);
    }
    WATCH_FORKS.call_once(|| {
        // SAFETY: registers a handler that neither allocates nor locks nor unwinds.
        if unsafe { libc::pthread_atfork(None, None, Some(refresh_in_child)) } == 0 {
            PID.store(std::process::id(), Ordering::Release);
        }
    });
    match PID.load(Ordering::Acquire) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// Borrows an opaque handle.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` created by this library.
pub unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: per the caller's contract a non-NULL pointer is a live `T`.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::NullArgument(format!("{what} is NULL")))
}

/// Borrows an opaque handle mutably.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T`, not used concurrently.
pub unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: per the caller's contract a non-NULL pointer is a live, unshared `T`.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::NullArgument(format!("{what} is NULL")))
}

/// Checks an out-parameter and resets it, so that it is written only on success.
///
/// # Safety
/// `ptr` is NULL or writable for one `T`.
pub unsafe fn out_param<'a, T>(ptr: *mut T, reset: T, what: &str) -> Result<&'a mut T> {
    // SAFETY: per the caller's contract a non-NULL pointer is writable.
    let out =
        unsafe { ptr.as_mut() }.ok_or_else(|| Error::NullArgument(format!("{what} is NULL")))?;
    *out = reset;
    Ok(out)
}

/// An out-parameter the caller may leave NULL (not interested); reset when given.
///
/// # Safety
/// `ptr` is NULL or writable for one `T`.
pub unsafe fn optional_out_param<'a, T>(ptr: *mut T, reset: T) -> Option<&'a mut T> {
    // SAFETY: per the caller's contract a non-NULL pointer is writable.
    let out = unsafe { ptr.as_mut() }?;
    *out = reset;
    Some(out)
}

/// Converts a millisecond timeout from C; negative is refused.
pub fn timeout_ms(ms: std::ffi::c_int, what: &str) -> Result<std::time::Duration> {
    if ms < 0 {
        return Err(Error::InvalidArgument(format!(
            "{what} timeout {ms} ms is negative"
        )));
    }
    Ok(std::time::Duration::from_millis(ms as u64))
}
