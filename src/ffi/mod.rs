//! The C boundary: the only module with `unsafe`. Every export checks its arguments, runs
//! through `boundary::call` (no panic reaches C) and returns an `eq1_status`.
//!
//! cbindgen writes the header's functions in the order of the modules below (then of their
//! source), so the modules follow the header's sections: Library (version and last error,
//! status table, logging), Options (with TLS beyond files, `tls`), Client, MQTT 5.0 (with enhanced authentication, `auth`),
//! Callbacks (with the authentication callback, `auth_callback`). Keep them in that order.
#![allow(non_camel_case_types)]
#![allow(unsafe_code)]

pub mod boundary;

pub mod library;

pub mod status;

pub mod logging;

pub mod options;
pub mod tls;
pub mod transport;

pub mod client;

pub mod subscribe;

pub mod v5;

pub mod auth;
pub mod request;

pub mod callbacks;

pub mod auth_callback;

pub mod protocol_events;

pub mod tcp;

pub mod serial;

pub mod modbus;

pub mod protocol;
