//! The C boundary: the only module with `unsafe`. Every export checks its arguments, runs
//! through `boundary::call` (no panic reaches C) and returns an `eq1_status`.
#![allow(non_camel_case_types)]
#![allow(unsafe_code)]

pub mod boundary;
pub mod client;
pub mod library;
pub mod options;
pub mod status;
