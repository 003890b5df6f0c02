//! What a client's three sides coordinate through: the handle (caller threads), the driver
//! (runtime thread) and the dispatcher (callback thread). Session state is not here: the
//! session state machine owns it. Here are tokens, the callback routes, connection state,
//! counters, the bounded event queue to the dispatcher, and the broker limits the handle
//! checks publishes against.

use crate::core::dispatcher::{Backlog, CallbackGate, EventQueue};
use crate::core::error::{Error, Result};
use crate::core::tokens::{AckDetail, Token, Tokens};
use crate::mqtt::metrics::Metrics;
use crate::mqtt::options::Endpoint;
use crate::mqtt::session::{AckTicket, AuthAnswer, AuthChallenge};
use crate::mqtt::subscriptions::{MessageHandler, RouteSnapshot, SubscriptionTable};
use crate::mqtt::wire::{BrokerLimits, ServerDisconnect};
use crate::mqtt::Message;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the client stands; written by the engine, read by the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Idle = 0,
    Connecting = 1,
    Connected = 2,
    Reconnecting = 3,
    Disconnecting = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    ConnectionLost,
    Disconnected,
}

#[derive(Debug, Clone)]
pub struct ConnectionEvent {
    pub state: ConnectionState,
    /// Why the connection was lost (`None` for connects and user disconnects).
    pub reason: Option<Error>,
    pub session_present: bool,
    pub broker: Option<Endpoint>,
    /// On connect: what the broker's CONNACK said.
    pub connack: Option<Arc<ConnAckInfo>>,
    /// On a loss by the broker's DISCONNECT (v5): what it said.
    pub server_disconnect: Option<Arc<ServerDisconnect>>,
}

/// What the broker said in CONNACK, for the application. On MQTT 3.1.1 only
/// `session_present` is known; everything else is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckInfo {
    pub session_present: bool,
    /// The identifier the broker assigned (v5, when we connected with an empty one).
    pub assigned_client_id: Option<String>,
    /// The keep-alive the broker imposes (v5); the client uses it instead of its own.
    pub server_keep_alive: Option<u16>,
    /// Answer to Request Response Information (v5).
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<(String, String)>,
    /// The session expiry the broker uses, when it announced one (v5).
    pub session_expiry: Option<u32>,
    pub limits: BrokerLimits,
}

impl ConnAckInfo {
    pub fn from_connack(ack: &crate::mqtt::wire::ConnAck) -> ConnAckInfo {
        ConnAckInfo {
            session_present: ack.session_present,
            assigned_client_id: ack.assigned_client_id.clone(),
            server_keep_alive: ack.server_keep_alive,
            response_information: ack.response_information.clone(),
            server_reference: ack.details.server_reference.clone(),
            reason_string: ack.details.reason_string.clone(),
            user_properties: ack.details.user_properties.clone(),
            session_expiry: ack.details.session_expiry,
            limits: ack.limits,
        }
    }
}

/// What the dispatcher thread delivers to user callbacks, in order.
pub enum Dispatch {
    Message(Message, Option<AckTicket>),
    Connection(ConnectionEvent),
    Delivery(Token, Result<()>, Option<Arc<AckDetail>>),
    /// A route was added: held messages may have a callback now.
    Redeliver,
    /// Library code that must run on the dispatcher thread, in order with the callbacks (a
    /// request's outcome). Run even while the client is being freed, so that every request
    /// hears its outcome exactly once.
    Call(Box<dyn FnOnce() + Send>),
    /// A step of the enhanced-authentication exchange for the authentication handler.
    Auth(AuthChallenge),
    Shutdown,
}

pub type ConnectionHandler = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;
/// Answers each step of the MQTT 5.0 enhanced-authentication exchange.
pub type AuthHandler = Arc<dyn Fn(&AuthChallenge) -> AuthAnswer + Send + Sync>;
/// A publish's outcome, with what the broker said about it (MQTT 5.0 reason code, reason
/// string, user properties) when it said anything.
pub type DeliveryHandler = Arc<dyn Fn(Token, &Result<()>, Option<&AckDetail>) + Send + Sync>;

#[derive(Default, Clone)]
pub struct Handlers {
    pub connection: Option<ConnectionHandler>,
    pub delivery: Option<DeliveryHandler>,
    /// Receives every message that no subscription's handler takes.
    pub message: Option<MessageHandler>,
    pub auth: Option<AuthHandler>,
}

/// Counters since the client was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub published: u64,
    pub delivered: u64,
    pub failed: u64,
    pub received: u64,
    pub queued: u64,
    pub dropped: u64,
    pub reconnects: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    pub queued: AtomicU64,
    pub queued_bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

pub fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

pub struct Shared {
    pub tokens: Tokens,
    /// Which handler receives which topic (the dispatcher's routing table).
    subscriptions: Mutex<SubscriptionTable>,
    handlers: Mutex<Handlers>,
    /// Moves after every change of `subscriptions` or `handlers` (while its lock is held):
    /// the dispatcher keeps a copy of both and takes their locks only when this moved.
    routes_version: AtomicU64,
    pub counters: Counters,
    pub metrics: Metrics,
    state: AtomicU8,
    /// The current broker's announced limits, as the handle checks publishes and subscribes
    /// against them (packed into one atomic: read on every publish).
    broker_limits: AtomicU64,
    has_delivery_handler: AtomicBool,
    /// What the dispatcher thread runs, in order.
    pub events: EventQueue<Dispatch>,
    /// Received messages not yet handled by callbacks (held ones included): bounded, the
    /// driver stops reading while it is full.
    pub backlog: Backlog,
    /// Lets unsubscribe wait until a handler it removed has returned.
    pub gate: CallbackGate,
    /// Set when the client is being freed: the dispatcher drops what is still queued.
    pub closing: AtomicBool,
    /// The Response Information of the broker's last CONNACK (MQTT 5.0, when given).
    pub response_information: Mutex<Option<String>>,
    /// The last CONNACK, and the client identifier in use (the broker may assign one).
    connack: Mutex<(Option<Arc<ConnAckInfo>>, Option<String>)>,
}

impl Shared {
    pub fn new(backlog: Backlog) -> Shared {
        Shared {
            tokens: Tokens::default(),
            subscriptions: Mutex::default(),
            handlers: Mutex::default(),
            routes_version: AtomicU64::new(0),
            counters: Counters::default(),
            metrics: Metrics::default(),
            state: AtomicU8::new(State::Idle as u8),
            broker_limits: AtomicU64::new(pack_limits(
                &BrokerLimits::default(),
                crate::mqtt::options::MQTT_MAX_PACKET_SIZE as usize,
            )),
            has_delivery_handler: AtomicBool::new(false),
            events: EventQueue::default(),
            backlog,
            gate: CallbackGate::default(),
            closing: AtomicBool::new(false),
            response_information: Mutex::new(None),
            connack: Mutex::new((None, None)),
        }
    }

    /// Records the CONNACK of a new connection and the client identifier in use.
    pub fn set_connack(&self, info: Arc<ConnAckInfo>, client_id: &str) {
        *self.connack.lock().unwrap_or_else(|p| p.into_inner()) =
            (Some(info), Some(client_id.to_string()));
    }

    /// The last CONNACK, if the client ever connected.
    pub fn connack(&self) -> Option<Arc<ConnAckInfo>> {
        self.connack
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The client identifier the last CONNECT used (`None` before the first connect).
    pub fn client_id_in_use(&self) -> Option<String> {
        self.connack
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// The limits the handle checks against, and the broker's maximum packet size for us.
    pub fn broker_limits(&self) -> (BrokerLimits, usize) {
        unpack_limits(self.broker_limits.load(Ordering::Acquire))
    }

    pub fn set_broker_limits(&self, limits: &BrokerLimits, max_packet: usize) {
        self.broker_limits
            .store(pack_limits(limits, max_packet), Ordering::Release);
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            1 => State::Connecting,
            2 => State::Connected,
            3 => State::Reconnecting,
            4 => State::Disconnecting,
            _ => State::Idle,
        }
    }

    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn transition(&self, from: State, to: State) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The routing table, to change it: the dispatcher sees the change from its next event
    /// on (the version moves when the guard is dropped).
    pub fn subscriptions(&self) -> RoutesGuard<'_> {
        RoutesGuard {
            table: self.subscriptions.lock().unwrap_or_else(|p| p.into_inner()),
            version: &self.routes_version,
        }
    }

    /// The routes version, then (when it moved since `seen`) the routing table and handlers.
    /// The version is read first (SeqCst, pairing with `CallbackGate`): a change made after
    /// it moves it again, and the next call copies again.
    pub fn routes_since(&self, seen: u64) -> Option<(u64, RouteSnapshot, Handlers)> {
        let version = self.routes_version.load(Ordering::SeqCst);
        if version == seen {
            return None;
        }
        let table = self
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        let handlers = self
            .handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Some((version, table, handlers))
    }

    pub fn set_handlers(&self, update: impl FnOnce(&mut Handlers)) {
        let mut handlers = self.handlers.lock().unwrap_or_else(|p| p.into_inner());
        update(&mut handlers);
        self.has_delivery_handler
            .store(handlers.delivery.is_some(), Ordering::Release);
        self.routes_version.fetch_add(1, Ordering::SeqCst);
    }

    pub fn emit(&self, event: Dispatch) {
        if let Dispatch::Connection(connection) = &event {
            self.metrics.connection_event(connection);
        }
        // The dispatcher may already be gone (client being freed): then it is dropped.
        self.events.push(event);
    }

    /// Completes a publish token: wakes waiters, counts it, tells the delivery callback.
    pub fn complete(&self, token: Token, result: Result<()>) {
        self.complete_with(token, result, None)
    }

    /// `complete`, with what the broker said in its acknowledgement.
    pub fn complete_with(&self, token: Token, result: Result<()>, detail: Option<Arc<AckDetail>>) {
        // Counted before waiters wake, so that stats read right after a wait include it.
        match &result {
            Ok(()) => bump(&self.counters.delivered, 1),
            Err(Error::Dropped(_)) => bump(&self.counters.dropped, 1),
            Err(_) => bump(&self.counters.failed, 1),
        }
        // Observed before waiters wake: metrics read right after a wait include it.
        let succeeded = result.is_ok();
        self.tokens
            .complete_with(token, &result, detail.clone(), |completed| {
                if succeeded {
                    self.metrics.completed(completed);
                }
            });
        if self.has_delivery_handler.load(Ordering::Acquire) {
            self.emit(Dispatch::Delivery(token, result, detail));
        }
    }

    pub fn complete_all_ok(&self, tokens: &[Token]) {
        bump(&self.counters.delivered, tokens.len() as u64);
        self.tokens
            .complete_all_ok(tokens, |completed| self.metrics.completed(completed));
        if self.has_delivery_handler.load(Ordering::Acquire) {
            for token in tokens {
                self.emit(Dispatch::Delivery(*token, Ok(()), None));
            }
        }
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            published: get(&c.published),
            delivered: get(&c.delivered),
            failed: get(&c.failed),
            received: get(&c.received),
            queued: get(&c.queued),
            dropped: get(&c.dropped),
            reconnects: get(&c.reconnects),
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
        }
    }
}

/// The locked routing table; moves the routes version when dropped (a change or not).
pub struct RoutesGuard<'a> {
    table: MutexGuard<'a, SubscriptionTable>,
    version: &'a AtomicU64,
}

impl std::ops::Deref for RoutesGuard<'_> {
    type Target = SubscriptionTable;
    fn deref(&self) -> &SubscriptionTable {
        &self.table
    }
}

impl std::ops::DerefMut for RoutesGuard<'_> {
    fn deref_mut(&mut self) -> &mut SubscriptionTable {
        &mut self.table
    }
}

impl Drop for RoutesGuard<'_> {
    fn drop(&mut self) {
        // Before the lock is released (fields drop after this), SeqCst: see `routes_since`.
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

/// Packs what the handle checks (maximum packet size, maximum QoS, retain / wildcard / shared
/// subscription availability) into one word; the other limits only the session needs.
fn pack_limits(limits: &BrokerLimits, max_packet: usize) -> u64 {
    let flag = |f: Option<bool>| match f {
        None => 0u64,
        Some(false) => 1,
        Some(true) => 2,
    };
    (max_packet.min(u32::MAX as usize) as u64)
        | (limits.maximum_qos.map_or(0, |q| q as u64 + 1) << 32)
        | (flag(limits.retain_available) << 34)
        | (flag(limits.wildcard_available) << 36)
        | (flag(limits.shared_available) << 38)
}

fn unpack_limits(word: u64) -> (BrokerLimits, usize) {
    let flag = |shift: u32| match (word >> shift) & 3 {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    };
    let limits = BrokerLimits {
        maximum_qos: match (word >> 32) & 3 {
            0 => None,
            q => Some(q as u8 - 1),
        },
        retain_available: flag(34),
        wildcard_available: flag(36),
        shared_available: flag(38),
        ..BrokerLimits::default()
    };
    (limits, (word & u32::MAX as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_limits_survive_packing() {
        let limits = BrokerLimits {
            maximum_qos: Some(0),
            retain_available: Some(false),
            wildcard_available: Some(true),
            shared_available: None,
            ..BrokerLimits::default()
        };
        assert_eq!(unpack_limits(pack_limits(&limits, 1000)), (limits, 1000));
        let none = BrokerLimits::default();
        assert_eq!(
            unpack_limits(pack_limits(&none, 268_435_460)),
            (none, 268_435_460)
        );
    }
}
