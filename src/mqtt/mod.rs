//! MQTT 3.1.1 / 5.0: the first protocol of the framework. `Client` is the handle callers use;
//! the session state machine (`session`) behind it is driven by a task on the library's
//! runtime thread (`driver`).

pub mod client;
mod dispatcher;
mod driver;
mod frame_check;
#[cfg(test)]
mod fuzz_support;
pub mod metrics;
pub mod options;
pub(crate) mod outbuf;
mod packet_ids;
pub mod persistence;
pub mod properties;
pub mod protocol;
pub mod request;
pub mod session;
pub mod shared;
pub mod subscribe;
pub mod subscriptions;
mod topic_alias;
pub mod validate;
mod wire;

pub use crate::core::tokens::Token;
pub use client::{Client, SubscribeRequest};
pub use driver::ConnectInfo;
pub use options::{Endpoint, Options, ProtocolVersion, QueueFullPolicy, Will};
pub use properties::PublishProperties;
pub use session::{AuthAnswer, AuthChallenge};
pub use shared::{AuthHandler, ConnectionEvent, ConnectionState, Stats};
pub use subscribe::{
    AckProperties, RetainHandling, SubscribeOptions, SubscribeReport, SubscribeResult,
    UnsubscribeReport, UnsubscribeResult,
};

/// MQTT delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl Qos {
    pub fn from_u8(n: u8) -> Option<Qos> {
        match n {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

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
    /// MQTT 5.0: identifiers of the subscriptions the broker matched it with.
    pub subscription_ids: Vec<u32>,
}
