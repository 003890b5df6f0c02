//! Modbus client: TCP with requests pipelined by transaction id (`pipeline` over `mbap`'s
//! framing), RTU over a serial line on tokio-modbus; on the core's runtime, status table and
//! logging. `client` is the Rust handle; the C face is `src/ffi/modbus.rs`.

pub mod client;
pub mod limits;
mod mbap;
mod pipeline;
pub mod protocol;

pub use client::{CallOptions, Client, Options, Parity, SerialSettings, Stats, MAX_IN_FLIGHT};
