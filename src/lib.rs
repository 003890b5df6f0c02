//! EQ-1 Network: a communication framework with a Rust core and a C ABI. MQTT 3.1.1 / 5.0 is
//! its first protocol. `ffi` is the C boundary (the only place with `unsafe`); everything else
//! is plain Rust.

// `unsafe` is confined to the C boundary (src/ffi/, which allows it).
#![deny(unsafe_code)]

pub mod core;
pub mod ffi;
pub mod modbus;
pub mod mqtt;
pub mod persist;
pub mod protocol;
pub mod protocols;

pub use crate::core::error::{Error, Result};
