//! The framework's protocol interfaces (the original design's `BaseProtocol`, `PubSubProtocol`,
//! `ReqResProtocol`): MQTT implements `PubSub`; TCP, serial or Modbus plugins sit beside it.

use crate::error::Result;
use std::time::Duration;

/// What every protocol does: connect and disconnect.
pub trait BaseProtocol: Send + Sync {
    fn connect(&self, timeout: Duration) -> Result<()>;
    fn disconnect(&self, timeout: Duration) -> Result<()>;
    fn is_connected(&self) -> bool;
}

/// Publish/subscribe protocols.
pub trait PubSubProtocol: BaseProtocol {
    type Token;
    fn publish(&self, topic: &str, payload: &[u8], qos: i32, retain: bool) -> Result<Self::Token>;
    fn subscribe(
        &self,
        filter: &str,
        qos: i32,
        handler: crate::mqtt::subscriptions::MessageHandler,
        timeout: Duration,
    ) -> Result<u8>;
    fn unsubscribe(&self, filter: &str, timeout: Duration) -> Result<()>;
}

/// Request/response protocols (TCP, serial, Modbus): send bytes, receive bytes.
pub trait ReqResProtocol: BaseProtocol {
    fn send(&self, data: &[u8]) -> Result<()>;
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>>;
}

impl BaseProtocol for crate::mqtt::Client {
    fn connect(&self, timeout: Duration) -> Result<()> {
        crate::mqtt::Client::connect(self, timeout).map(drop)
    }
    fn disconnect(&self, timeout: Duration) -> Result<()> {
        crate::mqtt::Client::disconnect(self, timeout)
    }
    fn is_connected(&self) -> bool {
        crate::mqtt::Client::is_connected(self)
    }
}

impl PubSubProtocol for crate::mqtt::Client {
    type Token = crate::mqtt::Token;
    fn publish(&self, topic: &str, payload: &[u8], qos: i32, retain: bool) -> Result<Self::Token> {
        crate::mqtt::Client::publish(self, topic, payload, qos, retain)
    }
    fn subscribe(
        &self,
        filter: &str,
        qos: i32,
        handler: crate::mqtt::subscriptions::MessageHandler,
        timeout: Duration,
    ) -> Result<u8> {
        crate::mqtt::Client::subscribe(self, filter, qos, handler, timeout)
    }
    fn unsubscribe(&self, filter: &str, timeout: Duration) -> Result<()> {
        crate::mqtt::Client::unsubscribe(self, filter, timeout)
    }
}
