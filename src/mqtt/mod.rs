//! MQTT 3.1.1 / 5.0: the first protocol of the framework. `Client` is the handle callers use;
//! the session engine behind it runs on the library's runtime thread.

pub mod client;
mod connection;
mod dispatcher;
mod engine;
pub mod options;
mod packet_ids;
pub mod properties;
pub mod shared;
pub mod subscriptions;
mod tls;
pub mod tokens;
mod transport;
pub mod validate;
mod wire;

pub use client::Client;
pub use engine::ConnectInfo;
pub use options::{BrokerAddress, Options, ProtocolVersion, QueueFullPolicy, Will};
pub use properties::PublishProperties;
pub use shared::{ConnectionEvent, ConnectionState, Stats};
pub use tokens::Token;

/// A message received on a subscription. Handlers borrow it for the duration of the call.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: bytes::Bytes,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: u16,
    /// MQTT 5.0 properties the sender set (`None` on 3.1.1 or when there are none).
    pub properties: Option<std::sync::Arc<PublishProperties>>,
}
