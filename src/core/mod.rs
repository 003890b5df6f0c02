//! What every protocol of the framework shares, and nothing MQTT-specific: the error type and
//! status table, logging, the I/O runtime, transports (TCP, TLS), reconnect backoff, delivery
//! tokens and the callback dispatcher. A TCP or Modbus protocol sits beside `mqtt` on these.

pub mod backoff;
pub mod connection_events;
pub mod dispatcher;
pub mod error;
pub mod log;
pub mod metrics;
pub mod panic;
pub mod runtime;
pub mod status;
pub mod tls;
pub mod tokens;
pub mod transport;
