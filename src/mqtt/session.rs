//! The MQTT session as a state machine without I/O: it takes commands from the handle, packets
//! from the broker and the current time, and gives back bytes to write, events for the
//! application and its next deadline. It owns all session state (packet ids, the outbox, the
//! inflight window, inbound QoS 1/2, pending subscribes and unsubscribes, topic aliases, the
//! broker's limits, keep-alive timing). No sockets, no runtime, no locks: the driver
//! (`driver.rs`) owns the socket, the timers and reconnection, and unit tests drive it directly.
//!
//! `W` is whatever the caller uses to be answered (a channel in the driver, a number in tests):
//! the session hands it back in `Event::Reply`.

use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::tokens::AckDetail;
use crate::core::tokens::Token;
use crate::mqtt::options::{Options, ProtocolVersion, QueueFullPolicy, Will};
use crate::mqtt::outbuf::{self, OutBuf};
use crate::mqtt::packet_ids::PacketIds;
use crate::mqtt::persistence::{accepted_instant, Persistence, Restored, RestoredStage};
use crate::mqtt::subscribe::{
    AckProperties, FilterRequest, SubscribeReport, SubscribeResult, UnsubscribeReport,
    UnsubscribeResult, NO_SUBSCRIPTION_EXISTED,
};
use crate::mqtt::topic_alias::{AliasUse, OutboundAliases};
use crate::mqtt::validate;
use crate::mqtt::wire::{
    auth_reason, reason_name, AuthPacket, BrokerLimits, Codec, ConnAck, InPublish, Incoming,
    OutPublish,
};
use crate::mqtt::{Message, Qos};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of publishes the session encodes ahead of the socket: beyond this, messages wait in
/// the outbox, where they count against its limits (a broker that does not read cannot make
/// us buffer without bound).
pub(crate) const WRITE_AHEAD: usize = 256 * 1024;

/// How long sending waits after the store refused a QoS 2 packet id before trying again.
const PERSIST_RETRY: Duration = Duration::from_secs(1);

/// MQTT 5.0 DISCONNECT reason codes the session sends.
pub(crate) mod reason {
    pub(crate) const NORMAL: u8 = 0x00;
    pub(crate) use crate::mqtt::frame_check::{PROTOCOL_ERROR, TOPIC_ALIAS_INVALID};
    pub(crate) const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    /// Our authentication callback refused to go on (or the broker's final data did not
    /// verify): the spec has no client reason for it beyond "unspecified error".
    pub(crate) const UNSPECIFIED_ERROR: u8 = 0x80;
}

/// One step of an MQTT 5.0 enhanced-authentication exchange that the application's
/// authentication callback judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthChallenge {
    /// Names this step: the answer carries it back (answers to a step that is over are
    /// ignored).
    pub step: u64,
    pub method: String,
    /// 0x18 (continue authentication): the broker's challenge, answer with response data.
    /// 0x00 (success): the broker accepted and sent final data (CONNACK or AUTH) for us to
    /// verify, answer success or failure.
    pub reason: u8,
    /// Empty when the broker sent none.
    pub data: Bytes,
    /// Re-authentication on a connection, rather than the CONNECT handshake.
    pub reauthenticating: bool,
}

/// The authentication callback's answer to an `AuthChallenge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthAnswer {
    /// Send this response data to the broker (answers a 0x18 challenge).
    Continue(Bytes),
    /// The broker's final data verified (answers a 0x00 challenge).
    Success,
    /// Give up: the connection closes and the exchange fails with `AuthFailed`.
    Failure(String),
}

/// A publish accepted by the handle, waiting in the outbox.
pub struct Queued {
    pub token: Token,
    pub message: OutPublish,
    /// When the handle accepted it: its MQTT 5.0 Message Expiry Interval runs from here.
    pub accepted: Instant,
}

impl Queued {
    /// When its Message Expiry Interval passes, if it has one.
    fn expires_at(&self) -> Option<Instant> {
        expiry_of(&self.message, self.accepted)
    }

    /// What it counts against the outbox's byte limit.
    pub fn weight(&self) -> u64 {
        (self.message.topic.len() + self.message.payload.len()) as u64
    }
}

/// The acknowledgement a received QoS 1/2 message still owes the broker: sent once its
/// handlers have returned, so that a message is acknowledged only after the application saw
/// it, and a slow consumer holds the broker at its inflight window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckTicket {
    /// Which connection received it: an acknowledgement is only valid on that connection.
    pub connection: u64,
    pub pkid: u16,
    pub qos: Qos,
}

/// What the session has to tell its owner.
#[derive(Debug)]
pub enum Event<W> {
    /// CONNACK accepted.
    Connected { session_present: bool },
    /// A message for the application; the ticket acknowledges it once handled.
    Message(Message, Option<AckTicket>),
    /// A publish token's outcome, with what the broker said in its acknowledgement (MQTT
    /// 5.0 reason code, reason string, user properties) when it said more than "success".
    Completed(Token, Result<()>, Option<Arc<AckDetail>>),
    /// The answer to a subscribe, unsubscribe, disconnect or re-authentication.
    Reply(W, Outcome),
    /// The authentication callback has a step of the exchange to judge; its answer comes
    /// back through `auth_answer`.
    AuthChallenge(AuthChallenge),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Per filter, in the order given: the reason code, granted QoS or refusal.
    Subscribed(SubscribeReport),
    Unsubscribed(UnsubscribeReport),
    Disconnected,
    Reauthenticated,
    Failed(Error),
}

/// Encoded packets for one write, and what completes once they are written.
#[derive(Debug, Default)]
pub struct Transmit {
    pub bytes: OutBuf,
    /// QoS 0 publishes in `bytes`: delivered once written.
    pub written_tokens: Vec<Token>,
    /// Outbox places (messages, bytes) to give back once written.
    pub released: (u64, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not connected and not trying: the user has not connected, or disconnected.
    Idle,
    /// Between connections: connecting or reconnecting.
    Offline,
    /// CONNECT written, waiting for CONNACK.
    AwaitConnAck,
    Connected,
    /// The user's DISCONNECT is encoded: nothing more is sent.
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitAck,
    /// PUBREL sent; waiting for PUBCOMP.
    AwaitComp,
}

struct Inflight {
    token: Token,
    message: OutPublish,
    accepted: Instant,
    /// What the broker said in PUBREC (QoS 2), reported with the PUBCOMP.
    pubrec: Option<AckDetail>,
    stage: Stage,
    /// Send order, so that a resumed session retransmits in the original order.
    sequence: u64,
    /// Its packet id and stage are in the store (QoS 2 with persistence).
    stored_state: bool,
}

/// A subscription the session restores after a reconnect (with its options, identifier and
/// the user properties of the SUBSCRIBE that made it).
struct Subscription {
    request: FilterRequest,
    user_properties: Vec<(String, String)>,
    /// The broker acknowledged it in the current session.
    confirmed: bool,
}

/// One subscribe call: answered once each of its filters has its SUBACK code. With
/// subscription identifiers each filter goes in a SUBACK of its own (a SUBSCRIBE carries at
/// most one identifier), so one call may wait for several SUBACKs.
struct SubscribeCall<W> {
    filters: Vec<FilterRequest>,
    user_properties: Vec<(String, String)>,
    reply: W,
    results: Vec<Option<SubscribeResult>>,
    ack: AckProperties,
}

/// One SUBSCRIBE packet waiting for its SUBACK.
struct PendingSubscribe {
    filters: Vec<FilterRequest>,
    /// The call it answers (its key in `subscribe_calls`) and the places of its filters in
    /// that call; `None` for a restore nobody waits for.
    call: Option<(u64, Vec<usize>)>,
}

struct PendingUnsubscribe<W> {
    filters: Vec<String>,
    user_properties: Vec<(String, String)>,
    reply: Option<W>,
}

struct Disconnecting<W> {
    deadline: Instant,
    request: DisconnectRequest,
    replies: Vec<W>,
}

/// Whom the enhanced-authentication exchange waits for.
#[derive(Debug)]
enum AuthWait {
    /// Our CONNECT or AUTH is out: the broker answers next.
    Broker,
    /// The callback has the broker's AUTH 0x18 (this step).
    Response(u64),
    /// The callback verifies the broker's final data; in the handshake its CONNACK waits here.
    Verify(u64, Option<Box<ConnAck>>),
}

/// An enhanced-authentication exchange under way: the CONNECT handshake, or a
/// re-authentication (with its waiter and deadline) while the connection carries on.
struct AuthExchange<W> {
    wait: AuthWait,
    reauth: Option<(W, Instant)>,
}

/// What the user's DISCONNECT says (MQTT 5.0; 3.1.1 sends a bare DISCONNECT): its reason
/// code, a new session expiry interval, user properties. Checked by the client handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectRequest {
    pub reason_code: u8,
    pub session_expiry: Option<u32>,
    pub user_properties: Vec<(String, String)>,
}

/// What belongs to one connection and starts afresh with the next.
struct Link {
    keep_alive: Duration,
    last_sent: Instant,
    last_received: Instant,
    ping_sent: Option<Instant>,
    read_paused: bool,
    limits: BrokerLimits,
    /// Inbound topic aliases (v5), at most the maximum we announced.
    aliases: HashMap<u16, String>,
    /// Outbound topic aliases (v5), within the broker's Topic Alias Maximum.
    out_aliases: OutboundAliases,
}

impl Link {
    fn new(keep_alive: Duration, now: Instant) -> Link {
        Link {
            keep_alive,
            last_sent: now,
            last_received: now,
            ping_sent: None,
            read_paused: false,
            limits: BrokerLimits::default(),
            aliases: HashMap::new(),
            out_aliases: OutboundAliases::default(),
        }
    }
}

pub struct Session<W> {
    options: Arc<Options>,
    client_id: String,
    will: Option<Will>,
    codec: Codec,
    phase: Phase,
    link: Link,
    /// Counts connections, to tell an acknowledgement owed on this one from a stale one.
    connection_number: u64,
    ids: PacketIds,
    outbox: VecDeque<Queued>,
    /// Topic + payload bytes in `outbox`.
    outbox_bytes: u64,
    /// Outbox messages with a Message Expiry Interval, by when they expire.
    expiries: BTreeSet<(Instant, Token)>,
    inflight: BTreeMap<u16, Inflight>,
    sequence: u64,
    subscriptions: Vec<Subscription>,
    subscribes: HashMap<u16, PendingSubscribe>,
    subscribe_calls: HashMap<u64, SubscribeCall<W>>,
    next_call: u64,
    unsubscribes: HashMap<u16, PendingUnsubscribe<W>>,
    /// Subscribes made between connections (or cut off by one ending), sent once connected.
    deferred_subscribes: Vec<SubscribeCall<W>>,
    /// Unsubscribes made between connections, sent if the broker kept the session.
    deferred_unsubscribes: Vec<PendingUnsubscribe<W>>,
    /// Received QoS 1 ids whose PUBACK the application still owes.
    inbound_qos1: HashSet<u16>,
    /// Received QoS 2 ids awaiting PUBREL.
    /// Received QoS 2 ids awaiting PUBREL, with the connection each arrived on: the Receive
    /// Maximum counts only those of the current connection (a resumed session may still hold
    /// older ones).
    inbound_qos2: HashMap<u16, u64>,
    /// How many of `inbound_qos2` arrived on the current connection.
    inbound_qos2_current: usize,
    disconnecting: Option<Disconnecting<W>>,
    /// The Server Reference of the last CONNACK 0x9C / 0x9D.
    redirect: Option<String>,
    session_present: bool,
    response_information: Option<String>,
    /// What the broker's last DISCONNECT said (v5), for the connection event.
    server_disconnect: Option<crate::mqtt::wire::ServerDisconnect>,
    /// The CONNACK of the current (or last) connection.
    last_connack: Option<ConnAck>,
    out: Transmit,
    events: VecDeque<Event<W>>,
    /// Outbox places given back (negative) or taken again (positive) since the last
    /// `take_queue_delta`, outside of transmits: (messages, bytes).
    queue_delta: (i64, i64),
    /// The enhanced-authentication exchange of this connection, while one runs.
    auth: Option<AuthExchange<W>>,
    /// Numbers authentication steps (never reused within a session, so that a late answer
    /// from an earlier connection is recognised).
    auth_steps: u64,
    /// Store and forward, when configured: accepted publishes, QoS 2 packet ids and stages,
    /// received QoS 2 ids awaiting PUBREL.
    persist: Option<Arc<Persistence>>,
    /// A store write failed before a QoS 2 PUBLISH could go out: sending waits until then.
    persist_retry: Option<Instant>,
    /// Records guarding packets in `out` were written since the last transmit: the store's
    /// barrier runs before the bytes are handed over.
    persist_dirty: bool,
}

impl<W> Session<W> {
    pub fn new(options: Arc<Options>, client_id: String, now: Instant) -> Session<W> {
        let codec = Codec::new(&options);
        let link = Link::new(options.keep_alive, now);
        Session {
            options,
            client_id,
            will: None,
            codec,
            phase: Phase::Idle,
            link,
            connection_number: 0,
            ids: PacketIds::default(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            expiries: BTreeSet::new(),
            inflight: BTreeMap::new(),
            sequence: 0,
            subscriptions: Vec::new(),
            subscribes: HashMap::new(),
            subscribe_calls: HashMap::new(),
            next_call: 0,
            unsubscribes: HashMap::new(),
            deferred_subscribes: Vec::new(),
            deferred_unsubscribes: Vec::new(),
            inbound_qos1: HashSet::new(),
            inbound_qos2: HashMap::new(),
            inbound_qos2_current: 0,
            disconnecting: None,
            redirect: None,
            session_present: false,
            response_information: None,
            server_disconnect: None,
            last_connack: None,
            out: Transmit::default(),
            events: VecDeque::new(),
            queue_delta: (0, 0),
            auth: None,
            auth_steps: 0,
            persist: None,
            persist_retry: None,
            persist_dirty: false,
        }
    }

    /// Attaches the store and takes in what it held, before anything is sent: QoS 2
    /// messages that were sent come back in flight (resent with DUP, or PUBREL, if the broker
    /// kept the session; as new publishes otherwise), the others to the outbox in the order
    /// they were accepted. Returns the outbox messages and bytes restored (for the handle's
    /// queue counters).
    pub fn restore(
        &mut self,
        persist: Arc<Persistence>,
        restored: &Restored,
        now: Instant,
    ) -> (u64, u64) {
        let mut queued = (0, 0);
        for m in &restored.messages {
            let accepted = accepted_instant(m.accepted, now);
            let in_flight = match m.stage {
                Some(RestoredStage::AwaitAck(pkid)) => Some((pkid, Stage::AwaitAck)),
                Some(RestoredStage::AwaitComp(pkid)) => Some((pkid, Stage::AwaitComp)),
                None => None,
            };
            match in_flight {
                Some((pkid, stage)) if self.ids.mark(pkid) => {
                    self.sequence += 1;
                    self.inflight.insert(
                        pkid,
                        Inflight {
                            token: m.token,
                            message: m.message.clone(),
                            accepted,
                            pubrec: None,
                            stage,
                            sequence: self.sequence,
                            stored_state: true,
                        },
                    );
                }
                _ => {
                    let entry = Queued {
                        token: m.token,
                        message: m.message.clone(),
                        accepted,
                    };
                    queued.0 += 1;
                    queued.1 += entry.weight();
                    self.outbox_bytes += entry.weight();
                    self.index_expiry(&entry);
                    self.outbox.push_back(entry);
                }
            }
        }
        for pkid in &restored.inbound_qos2 {
            self.inbound_qos2.insert(*pkid, 0);
        }
        self.persist = Some(persist);
        queued
    }

    /// The flow of a message ended: its records leave the store.
    fn forget_stored(&self, token: Token, qos: u8, had_state: bool) {
        if let Some(p) = &self.persist {
            p.forget(token, qos, had_state);
        }
    }

    // ----- what the driver asks -----

    #[cfg(test)]
    /// The protocol version of the current (or next) connection.
    pub fn version(&self) -> ProtocolVersion {
        self.codec.version
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// What the broker of the current connection announced.
    pub fn limits(&self) -> BrokerLimits {
        self.link.limits
    }

    /// The Response Information of the last CONNACK (v5, when the broker gave one).
    pub fn response_information(&self) -> Option<&str> {
        self.response_information.as_deref()
    }

    /// The CONNACK of the current (or last) connection.
    pub fn last_connack(&self) -> Option<&ConnAck> {
        self.last_connack.as_ref()
    }

    /// The client identifier CONNECT carries: the configured one, or the one the broker
    /// assigned (v5) once it did.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the broker kept the session, as its last CONNACK said.
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    pub fn poll_event(&mut self) -> Option<Event<W>> {
        self.events.pop_front()
    }

    /// Outbox places given back or taken outside of transmits, since the last call.
    pub fn take_queue_delta(&mut self) -> (i64, i64) {
        std::mem::take(&mut self.queue_delta)
    }

    #[cfg(test)]
    /// Unacknowledged publishes in flight (sent, not completed).
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    #[cfg(test)]
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    // ----- connection lifecycle -----

    /// The user connects: the session leaves idle with the will for its CONNECTs, and starts
    /// from the configured protocol version again.
    pub fn begin(&mut self, will: Option<Will>) {
        self.will = will;
        self.codec = Codec::new(&self.options);
        if self.phase == Phase::Idle {
            self.phase = Phase::Offline;
        }
    }

    /// Tries MQTT 3.1.1 after a 5.0 CONNECT was refused for its version, when the options
    /// allow it. Returns whether the next connection will use 3.1.1.
    pub fn fall_back_to_v311(&mut self) -> bool {
        if !self.options.protocol_fallback || self.codec.version == ProtocolVersion::V311 {
            return false;
        }
        if self.options.auth.is_some() {
            log!(
                Level::Warn,
                "not falling back to MQTT 3.1.1: the configured authentication method needs MQTT 5.0"
            );
            return false;
        }
        log!(
            Level::Info,
            "the broker does not speak MQTT 5.0: falling back to MQTT 3.1.1"
        );
        self.codec = self.codec.with_version(ProtocolVersion::V311);
        true
    }

    /// A new connection is open: CONNECT goes first.
    pub fn connection_opened(&mut self, now: Instant) -> Result<()> {
        self.drop_unsent(&Error::ConnectionLost(
            "connection lost before the QoS 0 message was written".into(),
        ));
        self.connection_number += 1;
        self.inbound_qos2_current = 0;
        self.link = Link::new(self.options.keep_alive, now);
        self.phase = Phase::AwaitConnAck;
        self.auth = self.options.auth.as_ref().map(|_| AuthExchange {
            wait: AuthWait::Broker,
            reauth: None,
        });
        let options = self.options.clone();
        self.codec.connect(
            &options,
            &self.client_id,
            self.will.as_ref(),
            self.out.bytes.tail(),
        )
    }

    /// The connection is gone (lost, refused, or timed out before CONNACK). Session state
    /// stays for the next connection; what was not written yet is rewritten from state.
    pub fn connection_closed(&mut self, reason: &Error) {
        self.drop_unsent(&Error::ConnectionLost(format!(
            "connection lost before the QoS 0 message was written: {reason}"
        )));
        self.inbound_qos1.clear();
        self.link.aliases.clear();
        if let Some((reply, _)) = self.auth.take().and_then(|a| a.reauth) {
            self.events.push_back(Event::Reply(
                reply,
                Outcome::Failed(Error::AuthFailed(format!(
                    "re-authentication did not complete: {reason}"
                ))),
            ));
        }
        for (pkid, _) in std::mem::take(&mut self.subscribes) {
            self.ids.release(pkid);
        }
        // A call is sent again whole on the next connection: what a SUBACK of this one said
        // is forgotten with it.
        let mut cut_off: Vec<(u64, SubscribeCall<W>)> = std::mem::take(&mut self.subscribe_calls)
            .into_iter()
            .collect();
        cut_off.sort_by_key(|(key, _)| *key);
        for (_, mut call) in cut_off {
            call.results = vec![None; call.filters.len()];
            call.ack = AckProperties::default();
            self.deferred_subscribes.push(call);
        }
        for (pkid, pending) in std::mem::take(&mut self.unsubscribes) {
            self.ids.release(pkid);
            self.deferred_unsubscribes.push(pending);
        }
        if self.phase != Phase::Idle {
            self.phase = Phase::Offline;
        }
    }

    /// The session is over (connect failed and no retry, the user disconnected, reconnect is
    /// off): everything pending fails with `reason`. With `keep_outbox`, queued publishes
    /// stay for the next connect (queueing before the first connect).
    pub fn end(&mut self, reason: &Error, keep_outbox: bool) {
        self.connection_closed(reason);
        self.phase = Phase::Idle;
        let stored = self.persist.is_some();
        if !keep_outbox && !stored {
            while let Some(queued) = self.pop_outbox() {
                self.give_back(&queued);
                self.complete(queued.token, Err(reason.clone()));
            }
        }
        // With a store, what the broker has not completed stays (in memory and on disk) for
        // the next connect or the next start: store and forward.
        if !stored {
            for (_, entry) in std::mem::take(&mut self.inflight) {
                self.complete(entry.token, Err(reason.clone()));
            }
        }
        for call in std::mem::take(&mut self.deferred_subscribes) {
            self.events
                .push_back(Event::Reply(call.reply, Outcome::Failed(reason.clone())));
        }
        for pending in std::mem::take(&mut self.deferred_unsubscribes) {
            if let Some(reply) = pending.reply {
                self.events
                    .push_back(Event::Reply(reply, Outcome::Failed(reason.clone())));
            }
        }
        if let Some(disconnecting) = self.disconnecting.take() {
            for reply in disconnecting.replies {
                self.events
                    .push_back(Event::Reply(reply, Outcome::Disconnected));
            }
        }
        if !stored {
            self.inbound_qos2.clear();
        }
        self.inbound_qos2_current = 0;
        self.ids = PacketIds::default();
        for pkid in self.inflight.keys() {
            self.ids.mark(*pkid);
        }
    }

    // ----- commands from the handle -----

    pub fn publish(&mut self, queued: Queued) {
        match self.phase {
            Phase::Idle if !self.options.queue_before_connect => self.refuse(
                queued,
                Error::NotConnected("the client is not connected".into()),
            ),
            Phase::Closing => self.refuse(
                queued,
                Error::NotConnected("the client is disconnecting".into()),
            ),
            _ => {
                self.enqueue(queued);
                self.report_store_drops();
            }
        }
    }

    /// Drop-oldest on a full store: the messages the store dropped to take this one (the
    /// oldest queued, so at the front of the outbox) leave the outbox and are reported
    /// `Dropped` now, as the outbox's own drop-oldest does, not when sending reaches them.
    fn report_store_drops(&mut self) {
        let Some(persist) = self.persist.clone() else {
            return;
        };
        while let Some(front) = self.outbox.front() {
            if !persist.was_dropped(front.token) {
                break;
            }
            let Some(dropped) = self.pop_outbox() else {
                break;
            };
            self.give_back(&dropped);
            self.complete(dropped.token, Err(store_dropped()));
        }
    }

    #[cfg(test)]
    /// A subscribe with default options and no identifiers or user properties.
    pub fn subscribe(&mut self, filters: Vec<(String, Qos)>, reply: W) {
        let filters = filters
            .into_iter()
            .map(|(f, q)| FilterRequest::new(f, crate::mqtt::SubscribeOptions::qos(q), None))
            .collect();
        self.subscribe_with(filters, Vec::new(), reply)
    }

    /// Subscribes the filters (each with its options and the identifier the handle gave
    /// it), answered with one `Outcome::Subscribed` once the broker answered every filter.
    pub fn subscribe_with(
        &mut self,
        filters: Vec<FilterRequest>,
        user_properties: Vec<(String, String)>,
        reply: W,
    ) {
        if let Err(e) = self.check_filters_supported(&filters) {
            self.events
                .push_back(Event::Reply(reply, Outcome::Failed(e)));
            return;
        }
        match self.phase {
            Phase::Idle | Phase::Closing => {
                self.events.push_back(Event::Reply(
                    reply,
                    Outcome::Failed(Error::NotConnected("the client is not connected".into())),
                ));
                return;
            }
            _ => {}
        }
        for request in &filters {
            match self
                .subscriptions
                .iter_mut()
                .find(|s| s.request.filter == request.filter)
            {
                Some(existing) => {
                    existing.request = request.clone();
                    existing.user_properties = user_properties.clone();
                    existing.confirmed = false;
                }
                None => self.subscriptions.push(Subscription {
                    request: request.clone(),
                    user_properties: user_properties.clone(),
                    confirmed: false,
                }),
            }
        }
        let call = SubscribeCall {
            results: vec![None; filters.len()],
            filters,
            user_properties,
            reply,
            ack: AckProperties::default(),
        };
        if self.phase == Phase::Connected {
            self.start_call(call);
        } else {
            // Sent with the restore once (re)connected.
            self.deferred_subscribes.push(call);
        }
    }

    /// Any filter may be unsubscribed, also one this handle never subscribed (a persistent
    /// session from an earlier process holds it).
    pub fn unsubscribe(&mut self, filters: Vec<String>, reply: W) {
        self.unsubscribe_with(filters, Vec::new(), reply)
    }

    /// `unsubscribe` with v5 user properties; answered with the UNSUBACK's codes.
    pub fn unsubscribe_with(
        &mut self,
        filters: Vec<String>,
        user_properties: Vec<(String, String)>,
        reply: W,
    ) {
        self.subscriptions
            .retain(|s| !filters.contains(&s.request.filter));
        let count = filters.len();
        match self.phase {
            Phase::Connected => self.send_unsubscribe(PendingUnsubscribe {
                filters,
                user_properties,
                reply: Some(reply),
            }),
            Phase::Offline | Phase::AwaitConnAck => {
                // Answered now; sent if the broker turns out to have kept the session.
                self.deferred_unsubscribes.push(PendingUnsubscribe {
                    filters,
                    user_properties,
                    reply: None,
                });
                self.events.push_back(Event::Reply(
                    reply,
                    Outcome::Unsubscribed(UnsubscribeReport::all_done(count)),
                ));
            }
            Phase::Idle | Phase::Closing => {
                self.events.push_back(Event::Reply(
                    reply,
                    Outcome::Unsubscribed(UnsubscribeReport::all_done(count)),
                ));
            }
        }
    }

    /// The user disconnects: in-flight publishes get until `deadline`, then DISCONNECT goes
    /// out (`disconnect_due`). Several callers may wait for the same disconnect.
    pub fn disconnect(&mut self, deadline: Instant, reply: W) {
        self.disconnect_with(deadline, DisconnectRequest::default(), reply);
    }

    /// `disconnect` with what the DISCONNECT says; when several callers wait for the same
    /// disconnect, the first caller's request is sent.
    pub fn disconnect_with(&mut self, deadline: Instant, request: DisconnectRequest, reply: W) {
        match self.phase {
            Phase::Connected | Phase::Closing => match &mut self.disconnecting {
                Some(d) => d.replies.push(reply),
                None => {
                    self.disconnecting = Some(Disconnecting {
                        deadline,
                        request,
                        replies: vec![reply],
                    })
                }
            },
            Phase::Idle => self
                .events
                .push_back(Event::Reply(reply, Outcome::Disconnected)),
            // No connection to send DISCONNECT on: the disconnect is complete at once.
            Phase::Offline | Phase::AwaitConnAck => {
                self.events
                    .push_back(Event::Reply(reply, Outcome::Disconnected));
                self.end(
                    &Error::Disconnected(
                        "the client disconnected before the broker acknowledged the message".into(),
                    ),
                    false,
                );
            }
        }
    }

    /// The application has handled a received QoS 1/2 message: acknowledge it, if it came
    /// on this connection (a broker that kept the session resends it otherwise).
    pub fn acknowledge(&mut self, ticket: AckTicket) {
        if ticket.connection != self.connection_number || self.phase != Phase::Connected {
            return;
        }
        let encoded = match ticket.qos {
            Qos::AtLeastOnce => {
                self.inbound_qos1.remove(&ticket.pkid);
                self.codec.puback(ticket.pkid, self.out.bytes.tail())
            }
            _ => {
                if let Some(p) = &self.persist {
                    self.persist_dirty = true;
                    if let Err(e) = p.record_inbound(ticket.pkid) {
                        log!(
                            Level::Warn,
                            "cannot store received packet id {} before PUBREC (a retransmission after a restart could be delivered twice): {e}",
                            ticket.pkid
                        );
                    }
                }
                self.codec.pubrec(ticket.pkid, self.out.bytes.tail())
            }
        };
        if let Err(e) = encoded {
            log!(
                Level::Error,
                "cannot acknowledge packet {}: {e}",
                ticket.pkid
            );
        }
    }

    // ----- what the broker sent -----

    /// Handles one packet. An error closes the connection (the session has encoded the v5
    /// DISCONNECT with its reason, if any, for the driver to write first).
    pub fn handle_packet(&mut self, packet: Incoming, now: Instant) -> Result<()> {
        self.link.last_received = now;
        if self.phase == Phase::AwaitConnAck {
            return match packet {
                Incoming::ConnAck(ack) => self.handle_connack(ack, now),
                Incoming::Auth(auth) => self.handle_auth(auth),
                other => Err(self.violation(
                    reason::PROTOCOL_ERROR,
                    format!("expected CONNACK, the broker sent {}", other.kind()),
                )),
            };
        }
        match packet {
            Incoming::Publish(publish, alias) => self.receive(publish, alias)?,
            Incoming::PubAck(pkid, detail) => {
                if self.inflight.get(&pkid).is_some_and(|i| i.message.qos == 1) {
                    self.finish_publish(pkid, detail);
                } else {
                    log!(Level::Debug, "ignoring unexpected PUBACK {pkid}");
                }
            }
            Incoming::PubRec(pkid, detail) => match self.inflight.get_mut(&pkid) {
                Some(entry) if entry.message.qos == 2 => {
                    if detail.code >= 0x80 {
                        // A failure ends the flow: no PUBREL (MQTT-4.3.3 / 3.5.2.1).
                        self.finish_publish(pkid, detail);
                    } else {
                        if entry.stage == Stage::AwaitAck && !detail.is_plain() {
                            entry.pubrec = Some(detail);
                        }
                        entry.stage = Stage::AwaitComp;
                        if let Some(p) = &self.persist {
                            entry.stored_state = true;
                            // Synced (sync mode) before the PUBREL leaves: after a power loss
                            // the flow resumes at PUBREL, never at a PUBLISH the broker may
                            // already have completed.
                            self.persist_dirty = true;
                            if let Err(e) =
                                p.record_stage(entry.token, RestoredStage::AwaitComp(pkid))
                            {
                                // The stored stage says PUBLISH: after a restart it is resent
                                // with DUP under the same id, which the broker answers with
                                // PUBREC again without delivering twice.
                                log!(
                                    Level::Warn,
                                    "cannot store the PUBREL stage of packet {pkid}: {e}"
                                );
                            }
                        }
                        self.codec.pubrel(pkid, self.out.bytes.tail())?;
                    }
                }
                _ => {
                    // v5: the broker hears that we know no such flow (PUBREL 0x92), so that
                    // it can end its side; 3.1.1 has no way to say it.
                    log!(Level::Debug, "unexpected PUBREC {pkid}");
                    if self.codec.version == ProtocolVersion::V5 && detail.code < 0x80 {
                        self.codec.pubrel_with(pkid, true, self.out.bytes.tail())?;
                    }
                }
            },
            Incoming::PubComp(pkid, detail) => {
                if self
                    .inflight
                    .get(&pkid)
                    .is_some_and(|i| i.stage == Stage::AwaitComp)
                {
                    if detail.code == 0x92 {
                        log!(
                            Level::Warn,
                            "PUBCOMP {pkid}: the broker no longer knows the packet identifier; it had accepted the message with PUBREC"
                        );
                    }
                    // The PUBREC accepted the message: PUBCOMP only ends the flow. What the
                    // broker said about the message (PUBREC) is what the caller hears,
                    // unless PUBCOMP says more.
                    let pubrec = self.inflight.get_mut(&pkid).and_then(|i| i.pubrec.take());
                    let detail = if detail.is_plain() {
                        pubrec.unwrap_or(detail)
                    } else {
                        detail
                    };
                    self.finish_publish_ok(pkid, detail);
                } else {
                    log!(Level::Debug, "ignoring unexpected PUBCOMP {pkid}");
                }
            }
            Incoming::PubRel(pkid, _) => {
                // Answered even for an unknown id, so that the broker can finish its side; v5
                // says it was unknown (reason 0x92).
                let known = self.inbound_qos2.remove(&pkid);
                if known == Some(self.connection_number) {
                    self.inbound_qos2_current -= 1;
                }
                if let (Some(p), Some(_)) = (&self.persist, known) {
                    p.forget_inbound(pkid);
                }
                self.codec
                    .pubcomp_with(pkid, known.is_none(), self.out.bytes.tail())?;
            }
            Incoming::SubAck(pkid, codes, ack) => self.handle_suback(pkid, codes, ack)?,
            Incoming::UnsubAck(pkid, codes, ack) => self.handle_unsuback(pkid, codes, ack)?,
            Incoming::PingResp => self.link.ping_sent = None,
            Incoming::Auth(auth) => self.handle_auth(auth)?,
            Incoming::Disconnect(disconnect) => {
                let text = disconnect.describe();
                self.server_disconnect = Some(disconnect);
                return Err(Error::ConnectionLost(text));
            }
            Incoming::ConnAck(_) => {
                return Err(self.violation(
                    reason::PROTOCOL_ERROR,
                    "the broker sent a second CONNACK".into(),
                ))
            }
            Incoming::Unexpected(name) => {
                return Err(self.violation(
                    reason::PROTOCOL_ERROR,
                    format!("the broker sent a {name} packet, which only clients may send"),
                ))
            }
        }
        Ok(())
    }

    /// The decoder rejected what the broker sent: the connection closes with `reason`.
    pub fn malformed(&mut self, reason_code: u8, error: Error) -> Error {
        self.encode_disconnect(reason_code);
        error
    }

    fn handle_connack(&mut self, ack: ConnAck, now: Instant) -> Result<()> {
        if let Some(refusal) = ack.refusal {
            if matches!(refusal, Error::ServerMoved(_)) {
                self.redirect = ack.details.server_reference.clone();
            }
            return Err(match (refusal, &self.options.auth) {
                (Error::NotAuthorized(m), Some(auth)) => {
                    Error::AuthFailed(format!("{m} (authentication method '{}')", auth.method))
                }
                (refusal, _) => refusal,
            });
        }
        if ack.session_present && self.options.clean_session {
            return Err(self.violation(
                reason::PROTOCOL_ERROR,
                "CONNACK says session present, but we asked for a clean session".into(),
            ));
        }
        if let Some(accepted) = self.connack_authentication(ack)? {
            self.connected(accepted, now);
        }
        Ok(())
    }

    /// Enhanced authentication in CONNACK: the method must be ours, and final data goes to
    /// the callback to verify first. Returns the CONNACK when the connection may proceed.
    fn connack_authentication(&mut self, ack: ConnAck) -> Result<Option<ConnAck>> {
        let Some(configured) = self.options.auth.as_ref().map(|a| a.method.clone()) else {
            if ack.auth_method.is_some() || ack.auth_data.is_some() {
                return Err(self.violation(
                    reason::PROTOCOL_ERROR,
                    "CONNACK carries an authentication method or data, but we sent no authentication method".into(),
                ));
            }
            return Ok(Some(ack));
        };
        if let Some(method) = ack.auth_method.as_deref().filter(|m| *m != configured) {
            return Err(self.violation(
                reason::PROTOCOL_ERROR,
                format!("CONNACK names authentication method '{method}'; we use '{configured}'"),
            ));
        }
        if !matches!(self.auth.as_ref().map(|a| &a.wait), Some(AuthWait::Broker)) {
            return Err(self.violation(
                reason::PROTOCOL_ERROR,
                "the broker sent CONNACK while its authentication challenge was unanswered".into(),
            ));
        }
        match ack.auth_data.clone() {
            None => {
                self.auth = None;
                Ok(Some(ack))
            }
            Some(data) => {
                let step = self.challenge(configured, auth_reason::SUCCESS, data, false);
                if let Some(exchange) = &mut self.auth {
                    exchange.wait = AuthWait::Verify(step, Some(Box::new(ack)));
                }
                Ok(None)
            }
        }
    }

    /// CONNACK accepted (and its authentication verified): the connection is up.
    fn connected(&mut self, ack: ConnAck, now: Instant) {
        self.link = Link::new(
            ack.server_keep_alive
                .map(|s| Duration::from_secs(s as u64))
                .unwrap_or(self.options.keep_alive),
            now,
        );
        self.link.limits = ack.limits;
        let alias_maximum = match self.codec.version {
            ProtocolVersion::V5 if self.options.topic_alias_auto => {
                ack.limits.topic_alias_maximum.unwrap_or(0)
            }
            _ => 0,
        };
        self.link.out_aliases.reset(alias_maximum);
        self.response_information = ack.response_information.clone();
        if let Some(assigned) = &ack.assigned_client_id {
            // Reconnects resume the session under the identifier the broker chose.
            self.client_id = assigned.clone();
        }
        self.last_connack = Some(ack.clone());
        self.phase = Phase::Connected;
        self.session_present = ack.session_present;
        self.resume(ack.session_present, now);
        self.events.push_back(Event::Connected {
            session_present: ack.session_present,
        });
    }

    // ----- enhanced authentication (MQTT 5.0 AUTH) -----

    /// The broker's AUTH: only within an exchange we started, with our method, and in the
    /// exchange's turn.
    fn handle_auth(&mut self, auth: AuthPacket) -> Result<()> {
        let Some(configured) = self.options.auth.as_ref().map(|a| a.method.clone()) else {
            return Err(self.violation(
                reason::PROTOCOL_ERROR,
                "the broker sent AUTH, but we sent no authentication method".into(),
            ));
        };
        if let Some(method) = auth.method.as_deref().filter(|m| *m != configured) {
            return Err(self.violation(
                reason::PROTOCOL_ERROR,
                format!(
                    "the broker's AUTH names authentication method '{method}'; we use '{configured}' (it must not change)"
                ),
            ));
        }
        let handshake = self.phase == Phase::AwaitConnAck;
        let wait = self.auth.as_ref().map(|a| &a.wait);
        match (wait, auth.reason) {
            (_, auth_reason::REAUTHENTICATE) => Err(self.violation(
                reason::PROTOCOL_ERROR,
                "the broker sent AUTH 0x19 (re-authenticate), which only clients send".into(),
            )),
            (None, _) => Err(self.violation(
                reason::PROTOCOL_ERROR,
                "the broker sent AUTH with no authentication exchange under way".into(),
            )),
            (Some(AuthWait::Response(_) | AuthWait::Verify(..)), _) => Err(self.violation(
                reason::PROTOCOL_ERROR,
                "the broker sent AUTH before we answered its previous one".into(),
            )),
            (Some(AuthWait::Broker), auth_reason::SUCCESS) if handshake => Err(self.violation(
                reason::PROTOCOL_ERROR,
                "the broker sent AUTH 0x00 during CONNECT; success comes with CONNACK".into(),
            )),
            (Some(AuthWait::Broker), auth_reason::SUCCESS) => match auth.data {
                Some(data) => {
                    let step = self.challenge(configured, auth_reason::SUCCESS, data, true);
                    if let Some(exchange) = &mut self.auth {
                        exchange.wait = AuthWait::Verify(step, None);
                    }
                    Ok(())
                }
                None => {
                    self.finish_reauthentication();
                    Ok(())
                }
            },
            (Some(AuthWait::Broker), auth_reason::CONTINUE) => {
                let data = auth.data.unwrap_or_default();
                let step = self.challenge(configured, auth_reason::CONTINUE, data, !handshake);
                if let Some(exchange) = &mut self.auth {
                    exchange.wait = AuthWait::Response(step);
                }
                Ok(())
            }
            (Some(_), code) => Err(self.violation(
                reason::PROTOCOL_ERROR,
                format!("the broker sent AUTH with reason code {code:#04x}"),
            )),
        }
    }

    fn challenge(&mut self, method: String, code: u8, data: Bytes, reauth: bool) -> u64 {
        self.auth_steps += 1;
        self.events.push_back(Event::AuthChallenge(AuthChallenge {
            step: self.auth_steps,
            method,
            reason: code,
            data,
            reauthenticating: reauth,
        }));
        self.auth_steps
    }

    /// The authentication callback answered `step`. An error closes the connection (the
    /// session has encoded DISCONNECT for the driver to write first).
    pub fn auth_answer(&mut self, step: u64, answer: AuthAnswer, now: Instant) -> Result<()> {
        let Some(exchange) = self.auth.as_mut() else {
            log!(
                Level::Debug,
                "ignoring an authentication answer to step {step}: no exchange under way"
            );
            return Ok(());
        };
        let current = match &exchange.wait {
            AuthWait::Response(s) | AuthWait::Verify(s, _) => *s,
            AuthWait::Broker => 0,
        };
        if current != step {
            log!(
                Level::Debug,
                "ignoring an authentication answer to step {step}: that step is over"
            );
            return Ok(());
        }
        let wait = std::mem::replace(&mut exchange.wait, AuthWait::Broker);
        match (wait, answer) {
            (AuthWait::Response(_), AuthAnswer::Continue(data)) => {
                if data.len() > crate::mqtt::validate::MAX_STRING_LEN {
                    return Err(self.fail_authentication(format!(
                        "the authentication callback answered {} bytes; at most 65,535 fit",
                        data.len()
                    )));
                }
                let method = self.options.auth.as_ref().map(|a| a.method.clone()).unwrap_or_default();
                self.codec
                    .auth(auth_reason::CONTINUE, &method, Some(&data), self.out.bytes.tail());
                Ok(())
            }
            (AuthWait::Verify(_, Some(ack)), AuthAnswer::Success) => {
                self.auth = None;
                self.connected(*ack, now);
                Ok(())
            }
            (AuthWait::Verify(_, None), AuthAnswer::Success) => {
                self.finish_reauthentication();
                Ok(())
            }
            (_, AuthAnswer::Failure(why)) => Err(self.fail_authentication(format!(
                "the authentication callback refused: {why}"
            ))),
            (AuthWait::Response(_), AuthAnswer::Success) => Err(self.fail_authentication(
                "the broker asked to continue the authentication, but the callback answered success (answer continue with response data)".into(),
            )),
            (_, AuthAnswer::Continue(_)) => Err(self.fail_authentication(
                "the broker accepted with final data to verify, but the callback answered continue (answer success or failure)".into(),
            )),
            (AuthWait::Broker, _) => Ok(()),
        }
    }

    /// The exchange failed on our side: DISCONNECT (unspecified error) and close; a
    /// re-authentication's waiter hears why.
    fn fail_authentication(&mut self, text: String) -> Error {
        log!(Level::Error, "authentication failed: {text}");
        self.encode_disconnect(reason::UNSPECIFIED_ERROR);
        let error = Error::AuthFailed(text);
        if let Some((reply, _)) = self.auth.take().and_then(|a| a.reauth) {
            self.events
                .push_back(Event::Reply(reply, Outcome::Failed(error.clone())));
        }
        error
    }

    fn finish_reauthentication(&mut self) {
        if let Some((reply, _)) = self.auth.take().and_then(|a| a.reauth) {
            self.events
                .push_back(Event::Reply(reply, Outcome::Reauthenticated));
        }
    }

    /// The user re-authenticates (MQTT 5.0 AUTH 0x19 with the configured method): the
    /// exchange runs through the authentication callback while publishing goes on, until the
    /// broker's AUTH 0x00 or `deadline` (then the connection closes).
    pub fn reauthenticate(&mut self, data: Option<Bytes>, deadline: Instant, reply: W) {
        let failure = match (&self.options.auth, self.phase) {
            (None, _) => Some(Error::AuthNotConfigured(
                "no authentication method is configured (set_auth_method) to re-authenticate with"
                    .into(),
            )),
            (Some(_), phase) if phase != Phase::Connected || self.disconnecting.is_some() => {
                Some(Error::NotConnected("the client is not connected".into()))
            }
            (Some(_), _) if self.auth.is_some() => Some(Error::InvalidState(
                "an authentication exchange is already under way".into(),
            )),
            _ => None,
        };
        if let Some(error) = failure {
            self.events
                .push_back(Event::Reply(reply, Outcome::Failed(error)));
            return;
        }
        let method = self
            .options
            .auth
            .as_ref()
            .map(|a| a.method.clone())
            .unwrap_or_default();
        self.codec.auth(
            auth_reason::REAUTHENTICATE,
            &method,
            data.as_deref(),
            self.out.bytes.tail(),
        );
        self.auth = Some(AuthExchange {
            wait: AuthWait::Broker,
            reauth: Some((reply, deadline)),
        });
    }

    /// After CONNACK: put session state in line with what the broker kept, and encode the
    /// retransmissions and the subscription restore.
    fn resume(&mut self, session_present: bool, now: Instant) {
        if !session_present {
            // Publishes the broker never completed go back to the head of the outbox, in
            // their original order, to be sent again as new messages. Even a QoS 2 message
            // past PUBREC is sent again: a broker that lost our session may have lost the
            // message with it, and a possible duplicate is better than a possible loss.
            let mut ordered: Vec<Inflight> =
                std::mem::take(&mut self.inflight).into_values().collect();
            ordered.sort_by_key(|i| i.sequence);
            for entry in ordered.into_iter().rev() {
                if let (Some(p), true) = (&self.persist, entry.stored_state) {
                    p.forget_state(entry.token);
                }
                self.requeue_front(Queued {
                    token: entry.token,
                    message: entry.message,
                    accepted: entry.accepted,
                });
            }
            // The broker holds no subscription: unsubscribes have nothing left to do.
            for pending in std::mem::take(&mut self.deferred_unsubscribes) {
                if let Some(reply) = pending.reply {
                    self.events.push_back(Event::Reply(
                        reply,
                        Outcome::Unsubscribed(UnsubscribeReport::all_done(pending.filters.len())),
                    ));
                }
            }
            for (pkid, _) in std::mem::take(&mut self.inbound_qos2) {
                if let Some(p) = &self.persist {
                    p.forget_inbound(pkid);
                }
            }
            self.inbound_qos2_current = 0;
            self.ids = PacketIds::default();
            for subscription in &mut self.subscriptions {
                subscription.confirmed = false;
            }
        } else {
            let mut ordered: Vec<(u16, Stage, u64)> = self
                .inflight
                .iter()
                .map(|(pkid, i)| (*pkid, i.stage, i.sequence))
                .collect();
            ordered.sort_by_key(|(_, _, sequence)| *sequence);
            let max_packet = self.max_outgoing_packet();
            for (pkid, stage, _) in ordered {
                let sent = match stage {
                    Stage::AwaitAck => {
                        let entry = &self.inflight[&pkid];
                        let wire = match aged(&entry.message, entry.accepted, now) {
                            Ok(aged) => aged,
                            // Expired while we were away. A QoS 1 message is dropped; a QoS 2
                            // one goes out with the shortest interval, since the broker may
                            // hold its packet identifier in a flow only PUBREL ends.
                            Err(e) if entry.message.qos == 1 => {
                                if let Some(entry) = self.inflight.remove(&pkid) {
                                    self.ids.release(pkid);
                                    self.forget_stored(
                                        entry.token,
                                        entry.message.qos,
                                        entry.stored_state,
                                    );
                                    self.complete(entry.token, Err(e));
                                }
                                continue;
                            }
                            Err(_) => Some(with_expiry(&entry.message, 1)),
                        };
                        let message = wire.as_ref().unwrap_or(&entry.message);
                        encode_publish(
                            &self.codec,
                            &mut self.link.out_aliases,
                            max_packet,
                            message,
                            pkid,
                            true,
                            &mut self.out.bytes,
                        )
                    }
                    Stage::AwaitComp => self.codec.pubrel(pkid, self.out.bytes.tail()),
                };
                if let Err(e) = sent {
                    log!(Level::Error, "cannot retransmit packet {pkid}: {e}");
                }
            }
            for pending in std::mem::take(&mut self.deferred_unsubscribes) {
                self.send_unsubscribe(pending);
            }
        }
        // Subscribes made while offline go out with their waiters; every other unconfirmed
        // subscription is restored without one (with its options and identifier).
        let deferred = std::mem::take(&mut self.deferred_subscribes);
        let asked: HashSet<String> = deferred
            .iter()
            .flat_map(|call| call.filters.iter().map(|f| f.filter.clone()))
            .collect();
        // Restored as they were made: filters subscribed with the same user properties go
        // together, each group in SUBSCRIBEs carrying those properties again.
        type Group = (Vec<(String, String)>, Vec<(usize, FilterRequest)>);
        let mut restore: Vec<Group> = Vec::new();
        for s in self
            .subscriptions
            .iter()
            .filter(|s| !s.confirmed && !asked.contains(&s.request.filter))
        {
            match restore.iter_mut().find(|(p, _)| *p == s.user_properties) {
                Some((_, group)) => group.push((group.len(), s.request.clone())),
                None => restore.push((s.user_properties.clone(), vec![(0, s.request.clone())])),
            }
        }
        for mut call in deferred {
            // Current options, and only filters still subscribed (an unsubscribe may have
            // come): a filter removed meanwhile is answered as such.
            for (i, request) in call.filters.iter_mut().enumerate() {
                match self
                    .subscriptions
                    .iter()
                    .find(|s| s.request.filter == request.filter)
                {
                    Some(current) => *request = current.request.clone(),
                    None => {
                        call.results[i] = Some(SubscribeResult {
                            reason_code: 0x80,
                            granted: Err(Error::Disconnected(
                                "the subscription was removed before it could be sent".into(),
                            )),
                            subscription_id: None,
                        })
                    }
                }
            }
            if call.results.iter().all(Option::is_some) {
                self.events.push_back(Event::Reply(
                    call.reply,
                    Outcome::Failed(Error::Disconnected(
                        "the subscription was removed before it could be sent".into(),
                    )),
                ));
            } else {
                self.start_call(call);
            }
        }
        for (user_properties, filters) in restore {
            if let Err(e) = self.send_subscribes(filters, &user_properties, None) {
                log!(Level::Warn, "restoring subscriptions failed: {e}");
            }
        }
    }

    fn receive(&mut self, mut publish: InPublish, alias: Option<u16>) -> Result<()> {
        if let Some(alias) = alias {
            let maximum = self.options.v5_connect.topic_alias_maximum;
            if alias == 0 || alias > maximum {
                return Err(self.violation(
                    reason::TOPIC_ALIAS_INVALID,
                    format!("the broker used topic alias {alias}; we allow 1..={maximum}"),
                ));
            }
            if publish.topic.is_empty() {
                match self.link.aliases.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => {
                        return Err(self.violation(
                            reason::PROTOCOL_ERROR,
                            format!("the broker used topic alias {alias} before defining it"),
                        ))
                    }
                }
            } else {
                self.link.aliases.insert(alias, publish.topic.clone());
            }
        } else if publish.topic.is_empty() {
            return Err(self.violation(
                reason::PROTOCOL_ERROR,
                "PUBLISH with an empty topic and no topic alias".into(),
            ));
        }
        let qos = Qos::from_u8(publish.qos).unwrap_or(Qos::ExactlyOnce);
        let ticket = AckTicket {
            connection: self.connection_number,
            pkid: publish.pkid,
            qos,
        };
        let ticket = match qos {
            Qos::AtMostOnce => None,
            Qos::AtLeastOnce => {
                if !self.inbound_qos1.contains(&publish.pkid) {
                    self.check_receive_maximum()?;
                    self.inbound_qos1.insert(publish.pkid);
                }
                Some(ticket)
            }
            Qos::ExactlyOnce => {
                // Held until PUBREL: a retransmission (DUP set) of an id still held is
                // acknowledged at once and not delivered again. The same id without DUP is a
                // new message: a broker restored from a stale persistence file reuses ids it
                // had already used (seen with mosquitto after SIGKILL), and treating those as
                // duplicates would lose them.
                if self.inbound_qos2.contains_key(&publish.pkid) {
                    if publish.dup {
                        self.codec.pubrec(publish.pkid, self.out.bytes.tail())?;
                        return Ok(());
                    }
                } else {
                    self.check_receive_maximum()?;
                    self.inbound_qos2
                        .insert(publish.pkid, self.connection_number);
                    self.inbound_qos2_current += 1;
                }
                Some(ticket)
            }
        };
        self.events.push_back(Event::Message(
            Message {
                topic: publish.topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
                dup: publish.dup,
                packet_id: publish.pkid,
                properties: publish.properties,
                subscription_ids: publish.subscription_ids,
            },
            ticket,
        ));
        Ok(())
    }

    /// The broker may have at most the Receive Maximum we announced of QoS 1/2 messages
    /// unacknowledged (65,535 when we announced none).
    fn check_receive_maximum(&mut self) -> Result<()> {
        let maximum = self.options.v5_connect.receive_maximum.unwrap_or(u16::MAX) as usize;
        let unacknowledged = self.inbound_qos1.len() + self.inbound_qos2_current;
        if self.codec.version == ProtocolVersion::V5 && unacknowledged >= maximum {
            return Err(self.violation(
                reason::RECEIVE_MAXIMUM_EXCEEDED,
                format!(
                    "the broker sent more than the receive maximum of {maximum} unacknowledged QoS 1/2 messages"
                ),
            ));
        }
        Ok(())
    }

    fn handle_suback(&mut self, pkid: u16, codes: Vec<u8>, ack: AckProperties) -> Result<()> {
        let Some(pending) = self.subscribes.remove(&pkid) else {
            log!(Level::Debug, "ignoring unexpected SUBACK {pkid}");
            return Ok(());
        };
        self.ids.release(pkid);
        if codes.len() != pending.filters.len() {
            let error = self.violation(
                reason::PROTOCOL_ERROR,
                format!(
                    "SUBACK has {} return codes for {} filters",
                    codes.len(),
                    pending.filters.len()
                ),
            );
            // The waiter hears why (a dropped one reads as "engine stopped"), and forgets its
            // filters as the handle does on an error; a restore stays for the next connection.
            if let Some((key, _)) = pending.call {
                self.fail_call(key, error.clone());
            }
            return Err(error);
        }
        let detail = ack
            .reason_string
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let mut results = Vec::with_capacity(codes.len());
        for (request, code) in pending.filters.iter().zip(codes) {
            let filter = &request.filter;
            let granted = match Qos::from_u8(code) {
                Some(qos) => Ok(qos),
                None if code < 0x80 => {
                    Err(format!("SUBACK granted QoS {code}, which does not exist"))
                }
                None => Err(format!(
                    "broker refused the subscription: {} ({code:#04x}){detail}",
                    reason_name(code)
                )),
            };
            let granted = match granted {
                Ok(qos) => {
                    if let Some(s) = self
                        .subscriptions
                        .iter_mut()
                        .find(|s| &s.request.filter == filter)
                    {
                        s.confirmed = true;
                    }
                    Ok(qos)
                }
                Err(reason) => {
                    self.subscriptions.retain(|s| &s.request.filter != filter);
                    log!(Level::Warn, "subscription to '{filter}' refused: {reason}");
                    Err(Error::SubscribeRefused(format!("'{filter}': {reason}")))
                }
            };
            results.push(SubscribeResult {
                reason_code: code,
                granted,
                subscription_id: request.id,
            });
        }
        let Some((key, places)) = pending.call else {
            return Ok(());
        };
        let Some(call) = self.subscribe_calls.get_mut(&key) else {
            return Ok(());
        };
        for (place, result) in places.into_iter().zip(results) {
            if let Some(slot) = call.results.get_mut(place) {
                *slot = Some(result);
            }
        }
        call.ack.merge(ack);
        if call.results.iter().all(Option::is_some) {
            if let Some(call) = self.subscribe_calls.remove(&key) {
                let report = SubscribeReport {
                    filters: call.results.into_iter().flatten().collect(),
                    ack: call.ack,
                };
                self.events
                    .push_back(Event::Reply(call.reply, Outcome::Subscribed(report)));
            }
        }
        Ok(())
    }

    fn handle_unsuback(&mut self, pkid: u16, codes: Vec<u8>, ack: AckProperties) -> Result<()> {
        let Some(pending) = self.unsubscribes.remove(&pkid) else {
            log!(Level::Debug, "ignoring unexpected UNSUBACK {pkid}");
            return Ok(());
        };
        self.ids.release(pkid);
        // 3.1.1's UNSUBACK has no codes: every filter is gone.
        let codes = if self.codec.version == ProtocolVersion::V311 {
            vec![0; pending.filters.len()]
        } else {
            codes
        };
        if codes.len() != pending.filters.len() {
            let error = self.violation(
                reason::PROTOCOL_ERROR,
                format!(
                    "UNSUBACK has {} reason codes for {} filters",
                    codes.len(),
                    pending.filters.len()
                ),
            );
            if let Some(reply) = pending.reply {
                self.events
                    .push_back(Event::Reply(reply, Outcome::Failed(error.clone())));
            }
            return Err(error);
        }
        let detail = ack
            .reason_string
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let filters = pending
            .filters
            .iter()
            .zip(codes)
            .map(|(filter, code)| UnsubscribeResult {
                reason_code: code,
                result: if code == 0 || code == NO_SUBSCRIPTION_EXISTED {
                    Ok(())
                } else {
                    Err(Error::UnsubscribeRefused(format!(
                        "'{filter}': broker refused the unsubscribe: {} ({code:#04x}){detail}",
                        reason_name(code)
                    )))
                },
            })
            .collect();
        if let Some(reply) = pending.reply {
            self.events.push_back(Event::Reply(
                reply,
                Outcome::Unsubscribed(UnsubscribeReport { filters, ack }),
            ));
        }
        Ok(())
    }

    /// A call that cannot complete: its waiter hears why, its filters are forgotten (as the
    /// handle forgets them on an error).
    fn fail_call(&mut self, key: u64, error: Error) {
        if let Some(call) = self.subscribe_calls.remove(&key) {
            for request in &call.filters {
                self.subscriptions
                    .retain(|s| s.request.filter != request.filter);
            }
            self.events
                .push_back(Event::Reply(call.reply, Outcome::Failed(error)));
        }
    }

    /// The broker answered a publish (PUBACK, or a failing PUBREC): reason codes from 0x80
    /// are failures.
    fn finish_publish(&mut self, pkid: u16, detail: AckDetail) {
        if detail.code < 0x80 {
            self.finish_publish_ok(pkid, detail);
            return;
        }
        if let Some(entry) = self.inflight.remove(&pkid) {
            self.ids.release(pkid);
            self.forget_stored(entry.token, entry.message.qos, entry.stored_state);
            let mut text = format!(
                "'{}': broker refused the publish: {} (0x{:02X})",
                entry.message.topic,
                reason_name(detail.code),
                detail.code
            );
            if let Some(reason) = &detail.text {
                text += &format!(": {reason}");
            }
            self.complete_with(
                entry.token,
                Err(Error::PublishRefused(text)),
                Some(Arc::new(detail)),
            );
        }
    }

    fn finish_publish_ok(&mut self, pkid: u16, detail: AckDetail) {
        if let Some(entry) = self.inflight.remove(&pkid) {
            self.ids.release(pkid);
            self.forget_stored(entry.token, entry.message.qos, entry.stored_state);
            let detail = (!detail.is_plain()).then(|| Arc::new(detail));
            self.complete_with(entry.token, Ok(()), detail);
        }
    }

    /// What the broker's DISCONNECT said, once (v5): taken by the driver for the connection
    /// event.
    /// The Server Reference of the last CONNACK that sent the client elsewhere.
    pub fn take_redirect(&mut self) -> Option<String> {
        self.redirect.take()
    }

    pub fn take_server_disconnect(&mut self) -> Option<crate::mqtt::wire::ServerDisconnect> {
        self.server_disconnect.take()
    }

    // ----- time -----

    /// When `handle_timeout` next needs to run.
    pub fn next_deadline(&self) -> Option<Instant> {
        let disconnect = self.disconnecting.as_ref().map(|d| d.deadline);
        let reauth = self.reauth_deadline();
        let disconnect = match (disconnect, reauth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let disconnect = match (disconnect, self.persist_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let keep_alive = match self.phase {
            Phase::Connected if !self.link.keep_alive.is_zero() => {
                let link = &self.link;
                Some(match link.ping_sent {
                    // While reading is paused a PINGRESP may sit unread: only keep talking.
                    Some(_) if link.read_paused => link.last_sent + link.keep_alive,
                    Some(sent) => sent + link.keep_alive / 2,
                    None => link.last_sent.min(link.last_received) + link.keep_alive,
                })
            }
            _ => None,
        };
        match (disconnect, keep_alive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Keep-alive: PINGREQ after a keep-alive period of silence in either direction; the
    /// connection is dead when the PINGRESP is half a period late (1.5 x keep-alive in all).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        if self.reauth_deadline().is_some_and(|d| now >= d) {
            let error = Error::Timeout(
                "re-authentication did not complete within its timeout; the connection closes (the next one authenticates anew)".into(),
            );
            if let Some((reply, _)) = self.auth.take().and_then(|a| a.reauth) {
                self.events
                    .push_back(Event::Reply(reply, Outcome::Failed(error.clone())));
            }
            self.encode_disconnect(reason::UNSPECIFIED_ERROR);
            return Err(error);
        }
        if self.phase != Phase::Connected || self.link.keep_alive.is_zero() {
            return Ok(());
        }
        let link = &mut self.link;
        match link.ping_sent {
            Some(sent) if !link.read_paused && now >= sent + link.keep_alive / 2 => {
                Err(Error::ConnectionLost(format!(
                    "the broker stopped answering (no PINGRESP within {} ms)",
                    (link.keep_alive / 2).as_millis()
                )))
            }
            Some(_) if link.read_paused && now >= link.last_sent + link.keep_alive => {
                // Reading is paused (the application is behind): keep the broker hearing
                // from us; the answers are read once reading resumes.
                self.codec.pingreq(self.out.bytes.tail());
                Ok(())
            }
            Some(_) => Ok(()),
            None => {
                if now >= link.last_sent.min(link.last_received) + link.keep_alive {
                    self.codec.pingreq(self.out.bytes.tail());
                    link.ping_sent = Some(now);
                }
                Ok(())
            }
        }
    }

    /// The driver stopped (or resumed) reading because the application is behind. A PINGRESP
    /// that arrived meanwhile is still unread, so its clock restarts when reading resumes.
    pub fn set_read_paused(&mut self, paused: bool, now: Instant) {
        if self.link.read_paused && !paused && self.link.ping_sent.is_some() {
            self.link.ping_sent = Some(now);
        }
        self.link.read_paused = paused;
    }

    // ----- output -----

    /// True while the answers the session owes the broker (acks, PUBCOMPs, pings) pile up
    /// faster than the socket takes them: the driver stops reading until they are written, so
    /// a broker that sends but never reads cannot make us buffer without bound.
    pub fn output_is_full(&self) -> bool {
        self.out.bytes.len() >= 2 * WRITE_AHEAD
    }

    /// Encodes what is ready (outbox within the inflight window and the write-ahead bound)
    /// and hands it over for one write. `None` when there is nothing to write.
    pub fn transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.pump(now);
        if self.out.bytes.is_empty() {
            return None;
        }
        if std::mem::take(&mut self.persist_dirty) {
            if let Some(p) = &self.persist {
                p.barrier();
            }
        }
        self.link.last_sent = now;
        Some(std::mem::take(&mut self.out))
    }

    /// When the user's disconnect is due (in-flight publishes done, or its deadline passed):
    /// encodes DISCONNECT and returns true, once. The driver then writes it and reports with
    /// `finish_disconnect`.
    pub fn disconnect_due(&mut self, now: Instant) -> bool {
        let Some(disconnecting) = &self.disconnecting else {
            return false;
        };
        if self.phase != Phase::Connected {
            return false;
        }
        let drained = self.inflight.is_empty() && self.outbox.is_empty();
        if !drained && now < disconnecting.deadline {
            return false;
        }
        let mut request = disconnecting.request.clone();
        if self.codec.version == ProtocolVersion::V5 {
            let mut probe = BytesMut::new();
            self.codec.disconnect_with(
                request.reason_code,
                request.session_expiry,
                &request.user_properties,
                &mut probe,
            );
            if probe.len() > self.max_outgoing_packet() {
                // MQTT-3.14.2-4: user properties that would exceed the broker's maximum
                // packet size are left out.
                log!(
                    Level::Warn,
                    "DISCONNECT user properties left out: the broker's maximum packet size is {} bytes",
                    self.max_outgoing_packet()
                );
                request.user_properties.clear();
            }
        }
        self.codec.disconnect_with(
            request.reason_code,
            request.session_expiry,
            &request.user_properties,
            self.out.bytes.tail(),
        );
        self.phase = Phase::Closing;
        true
    }

    /// The driver wrote DISCONNECT (or could not): the session ends, its waiters hear how.
    pub fn finish_disconnect(&mut self, written: Result<()>) {
        let replies = self
            .disconnecting
            .take()
            .map(|d| d.replies)
            .unwrap_or_default();
        self.end(
            &Error::Disconnected(
                "the client disconnected before the broker acknowledged the message".into(),
            ),
            false,
        );
        let outcome = match written {
            Ok(()) => Outcome::Disconnected,
            Err(e) => Outcome::Failed(e),
        };
        for reply in replies {
            self.events.push_back(Event::Reply(reply, outcome.clone()));
        }
    }

    fn reauth_deadline(&self) -> Option<Instant> {
        self.auth
            .as_ref()
            .and_then(|a| a.reauth.as_ref())
            .map(|(_, deadline)| *deadline)
    }

    /// True while a user's disconnect waits for in-flight publishes.
    pub fn is_disconnecting(&self) -> bool {
        self.disconnecting.is_some()
    }

    /// Moves publishes from the outbox into the write buffer, in order, within the inflight
    /// window and the write-ahead bound.
    fn pump(&mut self, now: Instant) {
        if self.phase != Phase::Connected {
            return;
        }
        if self.persist_retry.is_some_and(|at| now < at) {
            return;
        }
        self.persist_retry = None;
        let window = self
            .options
            .inflight_window
            .min(self.link.limits.receive_maximum.unwrap_or(u16::MAX).max(1))
            as usize;
        while let Some(front) = self.outbox.front() {
            if self.out.bytes.len() >= WRITE_AHEAD {
                break;
            }
            if front.message.qos > 0 && self.inflight.len() >= window {
                break;
            }
            let Some(queued) = self.pop_outbox() else {
                break;
            };
            if self
                .persist
                .as_ref()
                .is_some_and(|p| p.leaves_outbox(queued.token))
            {
                // A full store dropped it (drop-oldest) after publish had accepted it.
                self.give_back(&queued);
                self.complete(queued.token, Err(store_dropped()));
                continue;
            }
            let aged = match aged(&queued.message, queued.accepted, now) {
                Ok(aged) => aged,
                Err(e) => {
                    self.give_back(&queued);
                    self.forget_stored(queued.token, queued.message.qos, false);
                    self.complete(queued.token, Err(e));
                    continue;
                }
            };
            let wire = aged.as_ref().unwrap_or(&queued.message);
            if let Err(e) = self.check_publish_allowed(wire) {
                self.give_back(&queued);
                self.forget_stored(queued.token, queued.message.qos, false);
                self.complete(queued.token, Err(e));
                continue;
            }
            let max_packet = self.max_outgoing_packet();
            if queued.message.qos == 0 {
                match encode_publish(
                    &self.codec,
                    &mut self.link.out_aliases,
                    max_packet,
                    wire,
                    0,
                    false,
                    &mut self.out.bytes,
                ) {
                    Ok(()) => {
                        self.out.written_tokens.push(queued.token);
                        self.release_on_write(&queued);
                    }
                    Err(e) => {
                        self.give_back(&queued);
                        self.complete(queued.token, Err(e));
                    }
                }
                // QoS 0 leaves the store once it leaves the outbox.
                self.forget_stored(queued.token, 0, false);
                continue;
            }
            let Some(pkid) = self.ids.allocate() else {
                self.push_front(queued);
                break;
            };
            // QoS 2 under persistence: its packet id is in the store before the PUBLISH can
            // reach the socket, so that a restart resends it under the same id (a new id
            // would make the broker deliver it twice).
            let mut stored_state = false;
            if let (Some(p), 2) = (&self.persist, queued.message.qos) {
                if let Err(e) = p.record_stage(queued.token, RestoredStage::AwaitAck(pkid)) {
                    log!(
                        Level::Error,
                        "cannot store the packet id of a QoS 2 message; sending waits and retries in {} ms: {e}",
                        PERSIST_RETRY.as_millis()
                    );
                    self.ids.release(pkid);
                    self.push_front(queued);
                    self.persist_retry = Some(now + PERSIST_RETRY);
                    break;
                }
                stored_state = true;
                self.persist_dirty = true;
            }
            if let Err(e) = encode_publish(
                &self.codec,
                &mut self.link.out_aliases,
                max_packet,
                wire,
                pkid,
                false,
                &mut self.out.bytes,
            ) {
                self.ids.release(pkid);
                self.give_back(&queued);
                self.forget_stored(queued.token, queued.message.qos, stored_state);
                self.complete(queued.token, Err(e));
                continue;
            }
            self.release_on_write(&queued);
            self.sequence += 1;
            self.inflight.insert(
                pkid,
                Inflight {
                    token: queued.token,
                    message: queued.message,
                    accepted: queued.accepted,
                    pubrec: None,
                    stage: Stage::AwaitAck,
                    sequence: self.sequence,
                    stored_state,
                },
            );
        }
    }

    /// What the broker announced it cannot take is refused here, never sent.
    fn check_publish_allowed(&self, message: &OutPublish) -> Result<()> {
        check_publish_against(
            &self.link.limits,
            self.max_outgoing_packet(),
            &self.codec,
            message,
        )
    }

    fn check_filters_supported(&self, filters: &[FilterRequest]) -> Result<()> {
        check_filters_against(&self.link.limits, filters)
    }

    /// The largest packet we may send: the broker's maximum (v5), within MQTT's own.
    pub fn max_outgoing_packet(&self) -> usize {
        self.link
            .limits
            .maximum_packet_size
            .unwrap_or(u32::MAX)
            .min(crate::mqtt::options::MQTT_MAX_PACKET_SIZE) as usize
    }

    /// Whether SUBSCRIBEs carry subscription identifiers on this connection: MQTT 5.0, and the
    /// broker did not announce them unavailable.
    fn subscription_ids_usable(&self) -> bool {
        self.codec.version == ProtocolVersion::V5
            && self.link.limits.subscription_ids_available != Some(false)
    }

    /// Sends the call's filters that have no answer yet; the call waits in `subscribe_calls`.
    fn start_call(&mut self, call: SubscribeCall<W>) {
        let key = self.next_call;
        self.next_call += 1;
        let unanswered: Vec<(usize, FilterRequest)> = call
            .filters
            .iter()
            .enumerate()
            .filter(|(i, _)| call.results[*i].is_none())
            .map(|(i, f)| (i, f.clone()))
            .collect();
        let user_properties = call.user_properties.clone();
        self.subscribe_calls.insert(key, call);
        if let Err(e) = self.send_subscribes(unanswered, &user_properties, Some(key)) {
            self.fail_call(key, e);
        }
    }

    /// Encodes SUBSCRIBEs for `filters` (their places in the call `call`): one per filter,
    /// each with that filter's identifier, when identifiers are usable; otherwise one for all.
    /// All or nothing: on an error nothing is sent.
    fn send_subscribes(
        &mut self,
        filters: Vec<(usize, FilterRequest)>,
        user_properties: &[(String, String)],
        call: Option<u64>,
    ) -> Result<()> {
        let with_ids =
            self.subscription_ids_usable() && filters.iter().any(|(_, f)| f.id.is_some());
        let groups: Vec<Vec<(usize, FilterRequest)>> = if with_ids {
            filters.into_iter().map(|f| vec![f]).collect()
        } else {
            vec![filters]
        };
        let start = self.out.bytes.len();
        let mut encoded: Vec<(u16, PendingSubscribe)> = Vec::with_capacity(groups.len());
        let mut failure = None;
        for group in groups {
            let Some(pkid) = self.ids.allocate() else {
                failure = Some(Error::QueueFull(
                    "all 65,535 packet identifiers are in use".into(),
                ));
                break;
            };
            let (places, mut requests): (Vec<usize>, Vec<FilterRequest>) =
                group.into_iter().unzip();
            if !with_ids {
                for request in &mut requests {
                    request.id = None;
                }
            }
            let id = requests.first().and_then(|r| r.id);
            let encode = self.encode_bounded(|codec, buf| {
                codec.subscribe(pkid, &requests, id, user_properties, buf)
            });
            if let Err(e) = encode {
                self.ids.release(pkid);
                failure = Some(e);
                break;
            }
            encoded.push((
                pkid,
                PendingSubscribe {
                    filters: requests,
                    call: call.map(|key| (key, places)),
                },
            ));
        }
        if let Some(e) = failure {
            for (pkid, _) in encoded {
                self.ids.release(pkid);
            }
            self.out.bytes.truncate(start);
            return Err(e);
        }
        self.subscribes.extend(encoded);
        Ok(())
    }

    fn send_unsubscribe(&mut self, pending: PendingUnsubscribe<W>) {
        let Some(pkid) = self.ids.allocate() else {
            self.answer_failed(
                pending.reply,
                Error::QueueFull("all 65,535 packet identifiers are in use".into()),
            );
            return;
        };
        let filters = pending.filters.clone();
        let user_properties = pending.user_properties.clone();
        match self
            .encode_bounded(|codec, buf| codec.unsubscribe(pkid, &filters, &user_properties, buf))
        {
            Ok(()) => {
                self.unsubscribes.insert(pkid, pending);
            }
            Err(e) => {
                self.ids.release(pkid);
                self.answer_failed(pending.reply, e);
            }
        }
    }

    /// Encodes a packet and takes it back out if it exceeds the broker's maximum packet size.
    fn encode_bounded(
        &mut self,
        encode: impl FnOnce(&Codec, &mut BytesMut) -> Result<()>,
    ) -> Result<()> {
        let before = self.out.bytes.len();
        let codec = self.codec;
        encode(&codec, self.out.bytes.tail())?;
        let size = self.out.bytes.len() - before;
        let limit = self.max_outgoing_packet();
        if size > limit {
            self.out.bytes.truncate(before);
            return Err(Error::PayloadTooLarge(format!(
                "the packet is {size} bytes; the broker's maximum packet size is {limit}"
            )));
        }
        Ok(())
    }

    fn answer_failed(&mut self, reply: Option<W>, error: Error) {
        match reply {
            Some(reply) => self
                .events
                .push_back(Event::Reply(reply, Outcome::Failed(error))),
            None => log!(Level::Warn, "restoring subscriptions failed: {error}"),
        }
    }

    /// A protocol violation by the broker: v5 tells it why before the connection closes.
    fn violation(&mut self, reason_code: u8, text: String) -> Error {
        log!(Level::Error, "closing the connection: {text}");
        self.encode_disconnect(reason_code);
        Error::Protocol(text)
    }

    fn encode_disconnect(&mut self, reason_code: u8) {
        if self.codec.version == ProtocolVersion::V5 || reason_code == reason::NORMAL {
            self.codec.disconnect(reason_code, self.out.bytes.tail());
        }
    }

    // ----- the outbox -----

    /// Appends to the outbox (the handle already reserved its place); with the drop-oldest
    /// policy this is where the queue is trimmed.
    fn enqueue(&mut self, queued: Queued) {
        self.outbox_bytes += queued.weight();
        self.index_expiry(&queued);
        self.outbox.push_back(queued);
        if self.options.queue_full_policy == QueueFullPolicy::DropOldest {
            while self.outbox.len() > 1
                && (self.outbox.len() > self.options.queue_max_messages
                    || self.outbox_bytes > self.options.queue_max_bytes as u64)
            {
                let Some(oldest) = self.pop_outbox() else {
                    break;
                };
                self.give_back(&oldest);
                self.forget_stored(oldest.token, oldest.message.qos, false);
                self.complete(
                    oldest.token,
                    Err(Error::Dropped(
                        "dropped from the full offline queue to make room for a newer message"
                            .into(),
                    )),
                );
            }
        }
    }

    /// A publish that will never reach the outbox: gives back the place the handle reserved.
    fn refuse(&mut self, queued: Queued, reason: Error) {
        self.give_back(&queued);
        self.forget_stored(queued.token, queued.message.qos, false);
        self.complete(queued.token, Err(reason));
    }

    fn pop_outbox(&mut self) -> Option<Queued> {
        let queued = self.outbox.pop_front()?;
        self.outbox_bytes -= queued.weight();
        if let Some(at) = queued.expires_at() {
            self.expiries.remove(&(at, queued.token));
        }
        Some(queued)
    }

    fn requeue_front(&mut self, queued: Queued) {
        self.queue_delta.0 += 1;
        self.queue_delta.1 += queued.weight() as i64;
        self.push_front(queued);
    }

    /// Back to the head of the outbox (it was taken out and could not be sent yet).
    fn push_front(&mut self, queued: Queued) {
        self.outbox_bytes += queued.weight();
        self.index_expiry(&queued);
        self.outbox.push_front(queued);
    }

    fn index_expiry(&mut self, queued: &Queued) {
        if let Some(at) = queued.expires_at() {
            self.expiries.insert((at, queued.token));
        }
    }

    fn give_back(&mut self, queued: &Queued) {
        self.queue_delta.0 -= 1;
        self.queue_delta.1 -= queued.weight() as i64;
    }

    fn release_on_write(&mut self, queued: &Queued) {
        self.out.released.0 += 1;
        self.out.released.1 += queued.weight();
    }

    /// Bytes not handed to the driver are void on a new connection: QoS 0 publishes among them
    /// fail, QoS 1/2 ones are rewritten from the inflight state.
    fn drop_unsent(&mut self, reason: &Error) {
        let unsent = std::mem::take(&mut self.out);
        self.queue_delta.0 -= unsent.released.0 as i64;
        self.queue_delta.1 -= unsent.released.1 as i64;
        for token in unsent.written_tokens {
            self.complete(token, Err(reason.clone()));
        }
    }

    fn complete(&mut self, token: Token, result: Result<()>) {
        self.complete_with(token, result, None);
    }

    fn complete_with(&mut self, token: Token, result: Result<()>, detail: Option<Arc<AckDetail>>) {
        self.events
            .push_back(Event::Completed(token, result, detail));
    }

    // ----- message expiry -----

    /// When the next outbox message expires (MQTT 5.0 Message Expiry Interval).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Drops the outbox messages whose Message Expiry Interval has passed: each is reported
    /// `Expired`. Runs while offline too (the driver calls it at `next_expiry`).
    pub fn expire_outbox(&mut self, now: Instant) {
        let mut expired = HashSet::new();
        while let Some(&(at, token)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            expired.insert(token);
        }
        if expired.is_empty() {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.outbox.len());
        for queued in std::mem::take(&mut self.outbox) {
            if expired.contains(&queued.token) {
                self.outbox_bytes -= queued.weight();
                self.give_back(&queued);
                self.forget_stored(queued.token, queued.message.qos, false);
                self.complete(queued.token, Err(expired_error(&queued.message)));
            } else {
                kept.push_back(queued);
            }
        }
        self.outbox = kept;
    }
}

/// When a message accepted at `accepted` expires (MQTT 5.0 Message Expiry Interval).
fn expiry_of(message: &OutPublish, accepted: Instant) -> Option<Instant> {
    let seconds = message.properties.as_ref()?.message_expiry?;
    accepted.checked_add(Duration::from_secs(seconds as u64))
}

fn expired_error(message: &OutPublish) -> Error {
    Error::Expired(format!(
        "the message to '{}' expired (message expiry interval {} s) before it could be sent",
        message.topic,
        message
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry)
            .unwrap_or(0)
    ))
}

/// The message as it goes out at `now`: its Message Expiry Interval less the whole seconds it
/// waited (what MQTT-3.3.2-6 asks of a server, done likewise for our outbox); `Ok(None)` when
/// it goes out unchanged, `Err(Expired)` when the interval has passed.
fn aged(message: &OutPublish, accepted: Instant, now: Instant) -> Result<Option<OutPublish>> {
    let Some(expiry) = message.properties.as_ref().and_then(|p| p.message_expiry) else {
        return Ok(None);
    };
    let waited = now.saturating_duration_since(accepted).as_secs();
    if waited >= expiry as u64 {
        return Err(expired_error(message));
    }
    if waited == 0 {
        return Ok(None);
    }
    Ok(Some(with_expiry(message, expiry - waited as u32)))
}

fn store_dropped() -> Error {
    Error::Dropped("dropped from the full store to make room for a newer message".into())
}

fn with_expiry(message: &OutPublish, seconds: u32) -> OutPublish {
    let mut properties = message.properties.as_deref().cloned().unwrap_or_default();
    properties.message_expiry = Some(seconds);
    OutPublish {
        properties: Some(Arc::new(properties)),
        ..message.clone()
    }
}

/// Encodes a PUBLISH into the write buffer with the topic alias the table plans for it: the
/// buffer is written in order, so a PUBLISH that establishes an alias always precedes those
/// that use it on the same connection. An alias that would make the packet exceed the maximum
/// packet size is not used (the size checks count the full topic, the largest form but for the
/// 3 bytes an establishing alias adds).
fn encode_publish(
    codec: &Codec,
    aliases: &mut OutboundAliases,
    max_packet: usize,
    message: &OutPublish,
    pkid: u16,
    dup: bool,
    out: &mut OutBuf,
) -> Result<()> {
    let mut plan = aliases.plan(&message.topic);
    if matches!(plan, AliasUse::Establish(_))
        && codec.publish_size_aliased(
            message.topic.len(),
            message.payload.len(),
            message.qos,
            message.properties.as_deref(),
            plan,
        ) > max_packet
    {
        plan = AliasUse::None;
    }
    if message.payload.len() < outbuf::OWN_SLICE_PAYLOAD {
        codec.publish_aliased(message, pkid, dup, plan, out.tail())?;
    } else {
        // The payload is written from the message itself: no copy behind its header.
        codec.publish_head_aliased(message, pkid, dup, plan, out.tail())?;
        out.put_payload(&message.payload);
    }
    aliases.commit(&message.topic, plan);
    Ok(())
}

/// The checks a publish must pass against a broker's announced limits: shared by the handle
/// (to refuse at once) and the session (authoritative, when the message is sent).
pub fn check_publish_against(
    limits: &BrokerLimits,
    max_packet: usize,
    codec: &Codec,
    message: &OutPublish,
) -> Result<()> {
    let maximum_qos = limits.maximum_qos.unwrap_or(2);
    if message.qos > maximum_qos {
        return Err(Error::QosNotSupported(format!(
            "the broker's maximum QoS is {maximum_qos}; a QoS {} publish to '{}' was not sent",
            message.qos, message.topic
        )));
    }
    if message.retain && limits.retain_available == Some(false) {
        return Err(Error::FeatureNotSupported(format!(
            "the broker does not support retained messages; the retained publish to '{}' was not sent",
            message.topic
        )));
    }
    let size = codec.publish_size(
        message.topic.len(),
        message.payload.len(),
        message.qos,
        message.properties.as_deref(),
    );
    if size > max_packet {
        return Err(Error::PayloadTooLarge(format!(
            "a PUBLISH with a {}-byte payload is {size} bytes; the maximum packet size is {max_packet}",
            message.payload.len()
        )));
    }
    Ok(())
}

/// Subscription features a v5 broker may announce it lacks, and what MQTT forbids on a
/// shared subscription (no-local, MQTT-3.8.3-4).
pub fn check_filters_against(limits: &BrokerLimits, filters: &[FilterRequest]) -> Result<()> {
    for request in filters {
        let filter = &request.filter;
        let shared = validate::is_shared(filter);
        if shared && limits.shared_available == Some(false) {
            return Err(Error::FeatureNotSupported(format!(
                "the broker does not support shared subscriptions ('{filter}')"
            )));
        }
        if shared && request.options.no_local {
            return Err(Error::InvalidArgument(format!(
                "no-local cannot be set on a shared subscription ('{filter}'; MQTT-3.8.3-4)"
            )));
        }
        let inner = validate::routing_filter(filter);
        let wildcard = inner.contains('+') || inner.contains('#');
        if wildcard && limits.wildcard_available == Some(false) {
            return Err(Error::FeatureNotSupported(format!(
                "the broker does not support wildcard subscriptions ('{filter}')"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
