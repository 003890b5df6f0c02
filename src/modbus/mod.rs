//! Modbus client (TCP and RTU over a serial line) on tokio-modbus, on the core's runtime, status
//! table and logging. `client` is the Rust handle; the C face is `src/ffi/modbus.rs`.

pub mod client;
pub mod limits;
pub mod protocol;

pub use client::{CallOptions, Client, Options, Parity, SerialSettings, Stats};
