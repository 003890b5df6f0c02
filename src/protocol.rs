//! The framework's protocol interfaces (the original design's `BaseProtocol`, `PubSubProtocol`,
//! `ReqResProtocol`): MQTT implements `PubSub`; TCP, serial or Modbus plugins sit beside it.

use crate::core::error::Result;
use std::time::Duration;

/// What every protocol does: connect and disconnect.
pub trait BaseProtocol: Send + Sync {
    fn connect(&self, timeout: Duration) -> Result<()>;
    fn disconnect(&self, timeout: Duration) -> Result<()>;
    fn is_connected(&self) -> bool;
}

/// Publish/subscribe protocols.
pub trait PubSubProtocol: BaseProtocol {
    /// Identifies one accepted publish (its outcome is reported later).
    type Token;
    /// The protocol's delivery guarantee level (MQTT: QoS 0/1/2).
    type Qos;
    /// What receives the messages of one subscription.
    type Handler;
    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: Self::Qos,
        retain: bool,
    ) -> Result<Self::Token>;
    fn subscribe(
        &self,
        filter: &str,
        qos: Self::Qos,
        handler: Self::Handler,
        timeout: Duration,
    ) -> Result<Self::Qos>;
    fn unsubscribe(&self, filter: &str, timeout: Duration) -> Result<()>;
}

/// Request/response protocols (TCP, serial, Modbus): send bytes, receive bytes.
pub trait ReqResProtocol: BaseProtocol {
    fn send(&self, data: &[u8]) -> Result<()>;
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>>;
}
