//! The C face of the status table (`core::status`): `eq1_status` and `eq1_status_family` are
//! its two enums under their C names, and the exports below let C and the bindings read the
//! table at run time instead of copying it.

use crate::ffi::boundary::call_value;
use std::ffi::{c_char, c_int};

// The header's definitions of these two enums are rendered from the table by tests/header.rs.
pub use crate::core::status::{Family as eq1_status_family, Status as eq1_status};

/// A description of `status` (any integer is accepted), e.g. "EQ1_STATUS_TIMEOUT: timed out".
///
/// Returns: a static, NUL-terminated string, "unknown status" for a number that is not a
/// status; never NULL, never free it.
///
/// See also: `eq1_status_name`, `eq1_last_error_message` (the detail of the last failure).
#[no_mangle]
pub extern "C" fn eq1_status_str(status: c_int) -> *const c_char {
    call_value(c"unknown status".as_ptr(), || {
        eq1_status::from_number(status)
            .map_or(c"unknown status", |s| s.info().described)
            .as_ptr()
    })
}

/// The C name of `status`, e.g. "EQ1_STATUS_TIMEOUT".
///
/// Returns: a static, NUL-terminated string (never free it); NULL for a number that is not a
/// status.
///
/// See also: `eq1_status_str`.
#[no_mangle]
pub extern "C" fn eq1_status_name(status: c_int) -> *const c_char {
    call_value(std::ptr::null(), || {
        eq1_status::from_number(status).map_or(std::ptr::null(), |s| s.info().name.as_ptr())
    })
}

/// The family of `status` (any integer is accepted): what kind of cause it has, for choosing
/// an exception class or a reaction.
///
/// Returns: the family; `EQ1_STATUS_FAMILY_UNKNOWN` for a number that is not a status (e.g.
/// one from a newer library).
///
/// See also: `eq1_status_family`.
#[no_mangle]
pub extern "C" fn eq1_status_family_of(status: c_int) -> eq1_status_family {
    call_value(eq1_status_family::Unknown, || eq1_status::family_of(status))
}

/// How many statuses the library defines; with `eq1_status_at` a binding can list them all.
///
/// Returns: the number of statuses.
///
/// See also: `eq1_status_at`.
#[no_mangle]
pub extern "C" fn eq1_status_count() -> usize {
    call_value(0, || eq1_status::ALL.len())
}

/// The number of the `index`-th status (0 <= index < eq1_status_count(), in ascending order).
///
/// Returns: the status number; -1 for an index out of range.
///
/// See also: `eq1_status_count`, `eq1_status_name`.
#[no_mangle]
pub extern "C" fn eq1_status_at(index: usize) -> c_int {
    call_value(-1, || eq1_status::ALL.get(index).map_or(-1, |s| s.number()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn text(ptr: *const c_char) -> String {
        assert!(!ptr.is_null());
        // SAFETY: the exports return static NUL-terminated strings.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn every_listed_status_has_its_name_family_and_text() {
        let count = eq1_status_count();
        assert_eq!(count, eq1_status::ALL.len());
        for index in 0..count {
            let number = eq1_status_at(index);
            let name = text(eq1_status_name(number));
            assert!(text(eq1_status_str(number)).starts_with(&format!("{name}: ")));
            assert_ne!(eq1_status_family_of(number), eq1_status_family::Unknown);
        }
        assert_eq!(eq1_status_at(count), -1);
    }

    #[test]
    fn unknown_numbers_are_described_but_nameless() {
        assert_eq!(text(eq1_status_str(12345)), "unknown status");
        assert!(eq1_status_name(12345).is_null());
        assert_eq!(eq1_status_family_of(-7), eq1_status_family::Unknown);
    }

    #[test]
    fn the_text_keeps_its_established_form() {
        assert_eq!(text(eq1_status_str(20)), "EQ1_STATUS_TIMEOUT: timed out");
        assert_eq!(text(eq1_status_name(0)), "EQ1_STATUS_OK");
    }
}
