//! The client handle: what callers (the C boundary, Rust users) hold. Validates every input,
//! turns calls into commands for the driver, and owns the dispatcher thread.

use crate::core::dispatcher::{self as callbacks, Backlog};
use crate::core::error::{Error, Result};
use crate::core::runtime;
use crate::core::tokens::Token;
use crate::mqtt::dispatcher;
use crate::mqtt::driver::{Command, ConnectInfo, Driver};
use crate::mqtt::options::{Options, ProtocolVersion, QueueFullPolicy, Will};
use crate::mqtt::persistence::{self, FullPolicy, Persistence, RestoredInfo};
use crate::mqtt::properties::PublishProperties;
use crate::mqtt::session::{
    check_filters_against, check_publish_against, DisconnectRequest, Queued,
};
use crate::mqtt::shared::{
    AuthHandler, ConnectionHandler, DeliveryHandler, Dispatch, Shared, State, Stats,
};
use crate::mqtt::subscribe::{FilterRequest, SubscribeOptions, SubscribeReport, UnsubscribeReport};
use crate::mqtt::subscriptions::MessageHandler;
use crate::mqtt::validate;
use crate::mqtt::wire::{Codec, OutPublish};
use crate::mqtt::Qos;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Slack on top of a caller's timeout for the engine to send its answer back.
const REPLY_GRACE: Duration = Duration::from_millis(500);

/// One subscription of `Client::subscribe_many`.
pub struct SubscribeRequest {
    pub filter: String,
    pub options: SubscribeOptions,
    pub handler: MessageHandler,
}

/// The DISCONNECT reason codes a client may send (MQTT 5.0 table 3-10).
pub const CLIENT_DISCONNECT_REASONS: [u8; 14] = [
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
];

pub struct Client {
    options: Arc<Options>,
    codec: Codec,
    shared: Arc<Shared>,
    commands: UnboundedSender<Command>,
    will: Mutex<Option<Will>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    dispatcher_id: ThreadId,
    client_id: String,
    /// Request/response (`request.rs`): requests waiting for replies.
    pub(crate) requests: Arc<crate::mqtt::request::Requests>,
    /// Store and forward, when configured.
    persistence: Option<Arc<Persistence>>,
    /// What the store held when the client was created.
    restored: Vec<RestoredInfo>,
}

impl Client {
    pub fn new(options: Options) -> Result<Client> {
        if options.brokers.is_empty() {
            return Err(Error::InvalidArgument("no broker configured".into()));
        }
        options.check_consistent()?;
        let runtime = runtime::get()?;
        let client_id = match options.client_id.as_deref() {
            // MQTT 5.0: an empty identifier asks the broker to assign one (CONNACK tells it).
            Some("") if options.version == ProtocolVersion::V5 => String::new(),
            Some("") | None => generated_client_id(),
            Some(id) => id.to_string(),
        };
        // Opened first: a store another process holds (or another client id's) refuses the
        // client before anything starts.
        let persistence = match options.persistence_options() {
            None => None,
            Some(settings) => {
                let policy = match options.queue_full_policy {
                    QueueFullPolicy::RejectNew => FullPolicy::RejectNew,
                    QueueFullPolicy::DropOldest => FullPolicy::DropOldest,
                };
                Some(persistence::open(&settings, &client_id, policy)?)
            }
        };
        let options = Arc::new(options);
        let backlog = Backlog::new(options.inbound_max_messages, options.inbound_max_bytes);
        let shared = Arc::new(Shared::new(backlog));
        let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
        let (auth_tx, auth_rx) = tokio::sync::mpsc::channel(dispatcher::AUTH_ANSWERS);
        let dispatcher = {
            let shared = shared.clone();
            let acks = commands.clone();
            let answers = auth_tx.clone();
            callbacks::spawn(move || dispatcher::run(shared, acks, answers))?
        };
        let dispatcher_id = dispatcher.thread().id();
        let restored: Vec<RestoredInfo> = persistence
            .as_ref()
            .map(|(_, r)| {
                r.messages
                    .iter()
                    .map(|m| RestoredInfo {
                        token: m.token,
                        topic: m.message.topic.clone(),
                        qos: m.message.qos,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tokens: Vec<(Token, u8)> = restored.iter().map(|r| (r.token, r.qos)).collect();
        shared.tokens.restore(&tokens);
        let driver = Driver::new(
            options.clone(),
            shared.clone(),
            client_id.clone(),
            (auth_rx, auth_tx),
            persistence.as_ref().map(|(p, r)| (p.clone(), r)),
        );
        runtime.spawn(driver.run(command_rx));
        Ok(Client {
            codec: Codec::new(&options),
            options,
            shared,
            commands,
            will: Mutex::new(None),
            dispatcher: Mutex::new(Some(dispatcher)),
            dispatcher_id,
            client_id,
            requests: Arc::default(),
            persistence: persistence.map(|(p, _)| p),
            restored,
        })
    }

    /// The messages the store held when this client was created (accepted by an earlier
    /// run, not completed): each keeps its original token, whose delivery is reported like
    /// any other.
    pub fn restored(&self) -> &[RestoredInfo] {
        &self.restored
    }

    /// The client identifier: the configured or generated one, or (MQTT 5.0, connected with
    /// an empty one) the one the broker assigned.
    pub fn client_id(&self) -> String {
        self.shared
            .client_id_in_use()
            .unwrap_or_else(|| self.client_id.clone())
    }

    /// What the broker said in the CONNACK of the current (or last) connection.
    pub fn connack(&self) -> Option<Arc<crate::mqtt::shared::ConnAckInfo>> {
        self.shared.connack()
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn set_connection_handler(&self, handler: Option<ConnectionHandler>) {
        self.shared.set_handlers(|h| h.connection = handler);
    }

    pub fn set_delivery_handler(&self, handler: Option<DeliveryHandler>) {
        self.shared.set_handlers(|h| h.delivery = handler);
    }

    /// The default message handler: receives every message no subscription's handler takes
    /// (libmosquitto's on_message, Paho's messageArrived). Messages held because nothing took
    /// them are handed to it now.
    pub fn set_message_handler(&self, handler: Option<MessageHandler>) {
        let added = handler.is_some();
        self.shared.set_handlers(|h| h.message = handler);
        if added {
            self.shared.emit(Dispatch::Redeliver);
        }
    }

    /// The MQTT 5.0 enhanced-authentication handler: answers each step of the exchange the
    /// configured authentication method starts (at CONNECT and on `reauthenticate`). It runs
    /// on the dispatcher thread; the connection keeps its keep-alive meanwhile.
    pub fn set_auth_handler(&self, handler: Option<AuthHandler>) {
        self.shared.set_handlers(|h| h.auth = handler);
    }

    /// Re-authenticates on the open connection (MQTT 5.0 AUTH 0x19 with the configured
    /// method and `data`), the exchange going through the authentication handler, and waits
    /// up to `timeout` for the broker's success. Publishing goes on meanwhile. A failure or
    /// a time-out closes the connection (the next one authenticates from the start).
    pub fn reauthenticate(&self, data: Option<&[u8]>, timeout: Duration) -> Result<()> {
        if self.options.auth.is_none() {
            return Err(Error::AuthNotConfigured(
                "no authentication method is configured (set_auth_method) to re-authenticate with"
                    .into(),
            ));
        }
        if data.is_some_and(|d| d.len() > validate::MAX_STRING_LEN) {
            return Err(Error::InvalidArgument(
                "authentication data is longer than 65,535 bytes".into(),
            ));
        }
        if timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "the re-authentication timeout must be at least 1 ms".into(),
            ));
        }
        if self.in_callback() {
            return Err(Error::CalledFromCallback(
                "re-authentication waits for the authentication callback, which runs on this thread: call it from another thread".into(),
            ));
        }
        if self.shared.state() != State::Connected {
            return Err(Error::NotConnected("the client is not connected".into()));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let command = Command::Reauthenticate {
            data: data.map(Bytes::copy_from_slice),
            timeout,
            reply,
        };
        if self.commands.send(command).is_err() {
            return Err(engine_gone());
        }
        // The session ends the exchange at its deadline; the grace covers the answer's way back.
        wait_reply(&answer, timeout, "re-authentication")?
    }

    /// The will goes into the next CONNECT; it cannot change while connected.
    pub fn set_will(&self, topic: &str, payload: &[u8], qos: Qos, retain: bool) -> Result<()> {
        self.set_will_with_properties(topic, payload, qos, retain, None, 0)
    }

    /// `set_will` with MQTT 5.0 will properties and a Will Delay Interval (seconds; 0: none),
    /// both refused on an MQTT 3.1.1 client.
    pub fn set_will_with_properties(
        &self,
        topic: &str,
        payload: &[u8],
        qos: Qos,
        retain: bool,
        properties: Option<PublishProperties>,
        delay: u32,
    ) -> Result<()> {
        validate::topic_name(topic)?;
        let properties = properties.filter(|p| !p.is_empty());
        if (properties.is_some() || delay > 0) && self.options.version != ProtocolVersion::V5 {
            return Err(Error::InvalidArgument(
                "will properties and a will delay need MQTT 5.0; this client speaks 3.1.1".into(),
            ));
        }
        if let Some(p) = &properties {
            p.validate()?;
        }
        let qos = qos as u8;
        if payload.len() > validate::MAX_STRING_LEN {
            return Err(Error::PayloadTooLarge(format!(
                "will payload is {} bytes; MQTT allows at most 65,535",
                payload.len()
            )));
        }
        if self.shared.state() != State::Idle {
            return Err(Error::InvalidState(
                "the will must be set before connecting".into(),
            ));
        }
        *self.will.lock().unwrap_or_else(|p| p.into_inner()) = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties: properties.map(Arc::new),
            delay: (delay > 0).then_some(delay),
        });
        Ok(())
    }

    pub fn clear_will(&self) -> Result<()> {
        if self.shared.state() != State::Idle {
            return Err(Error::InvalidState(
                "the will must be changed before connecting".into(),
            ));
        }
        *self.will.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Connects and returns after CONNACK or the first failure, within `timeout` (zero: the
    /// options' connect timeout). DNS, TCP, TLS and CONNACK all count against it.
    pub fn connect(&self, timeout: Duration) -> Result<ConnectInfo> {
        let timeout = if timeout.is_zero() {
            self.options.connect_timeout
        } else {
            timeout
        };
        if !self.shared.transition(State::Idle, State::Connecting) {
            return Err(Error::InvalidState(match self.shared.state() {
                State::Connected => "the client is already connected".into(),
                state => format!("the client is busy ({state:?})"),
            }));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let will = self.will.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let deadline = tokio::time::Instant::now() + timeout;
        if self
            .commands
            .send(Command::Connect {
                deadline,
                will,
                reply,
            })
            .is_err()
        {
            self.shared.set_state(State::Idle);
            return Err(engine_gone());
        }
        wait_reply(&answer, timeout, "connect")?
    }

    /// Queues a publish and returns its token at once; never waits on the network.
    pub fn publish(&self, topic: &str, payload: &[u8], qos: Qos, retain: bool) -> Result<Token> {
        self.publish_with_properties(topic, payload, qos, retain, None)
    }

    /// `publish` with MQTT 5.0 properties (refused on an MQTT 3.1.1 client).
    pub fn publish_with_properties(
        &self,
        topic: &str,
        payload: &[u8],
        qos: Qos,
        retain: bool,
        properties: Option<PublishProperties>,
    ) -> Result<Token> {
        validate::topic_name(topic)?;
        let qos = qos as u8;
        let properties = match properties.filter(|p| !p.is_empty()) {
            None => None,
            Some(_) if self.options.version != ProtocolVersion::V5 => {
                return Err(Error::InvalidArgument(
                    "PUBLISH properties need MQTT 5.0; this client speaks 3.1.1".into(),
                ))
            }
            Some(p) => {
                p.validate()?;
                Some(Arc::new(p))
            }
        };
        let message = OutPublish {
            topic: topic.to_string(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain,
            properties,
        };
        let (limits, broker_max) = self.shared.broker_limits();
        let max_packet = broker_max.min(self.options.max_packet_size as usize);
        check_publish_against(&limits, max_packet, &self.codec, &message)?;
        match self.shared.state() {
            State::Idle if !self.options.queue_before_connect => {
                return Err(Error::NotConnected("the client is not connected".into()))
            }
            State::Disconnecting => {
                return Err(Error::NotConnected("the client is disconnecting".into()))
            }
            _ => {}
        }
        let weight = (topic.len() + payload.len()) as u64;
        self.reserve_outbox_space(weight)?;
        let token = self.shared.tokens.issue(qos);
        if let Some(store) = &self.persistence {
            // Accepted means stored: the record is written here, in the caller's thread,
            // before publish returns.
            if let Err(e) = store.accept(token, &message, std::time::SystemTime::now()) {
                self.release_outbox_space(weight);
                self.shared.tokens.complete(token, &Err(e.clone()));
                return Err(e);
            }
        }
        if self
            .commands
            .send(Command::Publish(Queued {
                token,
                message,
                accepted: Instant::now(),
            }))
            .is_err()
        {
            self.release_outbox_space(weight);
            self.shared.complete(token, Err(engine_gone()));
            return Err(engine_gone());
        }
        self.shared
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        Ok(token)
    }

    /// Takes a place in the outbox before the publish is handed over, so that concurrent
    /// publishers can never overfill it. The engine gives the place back when it sends.
    fn reserve_outbox_space(&self, weight: u64) -> Result<()> {
        let counters = &self.shared.counters;
        if self.options.queue_full_policy == QueueFullPolicy::DropOldest {
            // Never refused: the engine drops the oldest when the queue overflows.
            counters.queued.fetch_add(1, Ordering::AcqRel);
            counters.queued_bytes.fetch_add(weight, Ordering::AcqRel);
            return Ok(());
        }
        let max_messages = self.options.queue_max_messages as u64;
        let max_bytes = self.options.queue_max_bytes as u64;
        let full = |queued: u64, bytes: u64| {
            Error::QueueFull(format!(
                "the outbox holds {queued} messages ({bytes} bytes); limits are {max_messages} messages, {max_bytes} bytes"
            ))
        };
        if counters
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < max_messages).then_some(q + 1)
            })
            .is_err()
        {
            return Err(full(
                max_messages,
                counters.queued_bytes.load(Ordering::Acquire),
            ));
        }
        let bytes_before = counters.queued_bytes.fetch_add(weight, Ordering::AcqRel);
        if bytes_before + weight > max_bytes {
            self.release_outbox_space(weight);
            return Err(full(counters.queued.load(Ordering::Acquire), bytes_before));
        }
        Ok(())
    }

    fn release_outbox_space(&self, weight: u64) {
        let counters = &self.shared.counters;
        counters.queued.fetch_sub(1, Ordering::AcqRel);
        counters.queued_bytes.fetch_sub(weight, Ordering::AcqRel);
    }

    /// Blocks until the publish behind `token` completed, failed, or `timeout` passed.
    pub fn wait(&self, token: Token, timeout: Duration) -> Result<()> {
        self.shared.tokens.wait(token, timeout)
    }

    /// `wait`, with what the broker said in its acknowledgement (MQTT 5.0 reason code,
    /// reason string, user properties), when it said more than "success".
    pub fn wait_report(&self, token: Token, timeout: Duration) -> crate::core::tokens::Report {
        self.shared.tokens.wait_report(token, timeout)
    }

    /// Subscribes and waits up to `timeout` for the broker's answer; returns the granted QoS.
    /// The handler receives every message whose topic matches `filter`.
    pub fn subscribe(
        &self,
        filter: &str,
        qos: Qos,
        handler: MessageHandler,
        timeout: Duration,
    ) -> Result<Qos> {
        self.subscribe_with_options(filter, SubscribeOptions::qos(qos), handler, timeout)
    }

    /// `subscribe` with subscription options (no-local, retain-as-published and retain
    /// handling need MQTT 5.0).
    pub fn subscribe_with_options(
        &self,
        filter: &str,
        options: SubscribeOptions,
        handler: MessageHandler,
        timeout: Duration,
    ) -> Result<Qos> {
        let request = SubscribeRequest {
            filter: filter.to_string(),
            options,
            handler,
        };
        let report = self.subscribe_many(vec![request], Vec::new(), timeout)?;
        report
            .filters
            .into_iter()
            .next()
            .map(|r| r.granted)
            .unwrap_or_else(|| Err(Error::Protocol("SUBACK without a return code".into())))
    }

    /// Subscribes several filters in one call, each with its options and handler, and waits
    /// up to `timeout` for the broker's answer to all of them: per filter its reason code and
    /// granted QoS or refusal, in the order given. With MQTT 5.0 each subscription gets an
    /// identifier of its own (sent when the broker takes them, one SUBSCRIBE per filter), so
    /// a message reaches exactly the handlers of the subscriptions it matched. A refused
    /// filter is not an error of the call: its result says so, and it gets no handler.
    pub fn subscribe_many(
        &self,
        requests: Vec<SubscribeRequest>,
        user_properties: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<SubscribeReport> {
        let deadline = Instant::now() + timeout;
        if requests.is_empty() {
            return Err(Error::InvalidArgument("no filter to subscribe".into()));
        }
        for (i, request) in requests.iter().enumerate() {
            validate::topic_filter(&request.filter)?;
            if requests[..i].iter().any(|r| r.filter == request.filter) {
                return Err(Error::InvalidArgument(format!(
                    "filter '{}' is given twice in one subscribe",
                    request.filter
                )));
            }
            if request.options.needs_v5() && self.options.version != ProtocolVersion::V5 {
                return Err(Error::Mqtt5Required(format!(
                    "no-local, retain-as-published and retain handling (asked for '{}') need MQTT 5.0; this client speaks 3.1.1",
                    request.filter
                )));
            }
        }
        self.check_user_properties(&user_properties, "SUBSCRIBE")?;
        let mut filters: Vec<FilterRequest> = requests
            .iter()
            .map(|r| FilterRequest::new(r.filter.clone(), r.options, None))
            .collect();
        check_filters_against(&self.shared.broker_limits().0, &filters)?;
        match self.shared.state() {
            State::Idle | State::Connecting | State::Disconnecting => {
                return Err(Error::NotConnected("the client is not connected".into()))
            }
            State::Connected | State::Reconnecting => {}
        }
        let mut replaced_any = false;
        {
            let mut routes = self.shared.subscriptions();
            for (request, filter) in requests.into_iter().zip(&mut filters) {
                let (replaced, id) = routes.insert(&request.filter, request.handler);
                replaced_any |= replaced;
                filter.id = Some(id);
            }
        }
        // Messages held for lack of a route may have one now.
        self.shared.emit(Dispatch::Redeliver);
        let names: Vec<String> = filters.iter().map(|f| f.filter.clone()).collect();
        let forget = |names: &[String]| {
            let mut routes = self.shared.subscriptions();
            for name in names {
                routes.remove(name);
            }
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let command = Command::Subscribe {
            filters,
            user_properties,
            reply,
        };
        if self.commands.send(command).is_err() {
            forget(&names);
            return Err(engine_gone());
        }
        if replaced_any && !self.in_callback() {
            // The old handler's user data may be freed once we return.
            self.wait_for_callbacks(deadline, "subscribe")?;
        }
        let outcome = wait_reply(&answer, remaining(deadline), "subscribe")?;
        match &outcome {
            Ok(report) => {
                let refused: Vec<String> = names
                    .iter()
                    .zip(&report.filters)
                    .filter(|(_, r)| r.granted.is_err())
                    .map(|(name, _)| name.clone())
                    .collect();
                forget(&refused);
            }
            Err(Error::Timeout(_)) => {}
            Err(_) => forget(&names),
        }
        outcome
    }

    /// User properties are MQTT 5.0 strings: only on a 5.0 client, each at most 65,535 bytes.
    fn check_user_properties(&self, properties: &[(String, String)], packet: &str) -> Result<()> {
        if properties.is_empty() {
            return Ok(());
        }
        if self.options.version != ProtocolVersion::V5 {
            return Err(Error::Mqtt5Required(format!(
                "{packet} user properties need MQTT 5.0; this client speaks 3.1.1"
            )));
        }
        for (name, value) in properties {
            if name.len() > validate::MAX_STRING_LEN || value.len() > validate::MAX_STRING_LEN {
                return Err(Error::InvalidArgument(format!(
                    "a {packet} user property is longer than 65,535 bytes"
                )));
            }
        }
        Ok(())
    }

    /// Removes the subscription (its handler is not called again) and waits for UNSUBACK.
    pub fn unsubscribe(&self, filter: &str, timeout: Duration) -> Result<()> {
        self.unsubscribe_many(&[filter], timeout)
    }

    /// Unsubscribes several filters with one UNSUBSCRIBE. Any filter may be given, also one
    /// this handle never subscribed (a persistent session from an earlier run may hold it).
    /// Once it returns, no removed handler is called again; a handler still running from
    /// another thread's point of view is waited for within `timeout`. A filter the MQTT 5.0
    /// broker refused to remove makes it fail with that refusal; "no subscription existed"
    /// does not.
    pub fn unsubscribe_many(&self, filters: &[&str], timeout: Duration) -> Result<()> {
        let report = self.unsubscribe_with_report(filters, Vec::new(), timeout)?;
        report
            .filters
            .into_iter()
            .map(|f| f.result)
            .find(Result::is_err)
            .unwrap_or(Ok(()))
    }

    /// `unsubscribe_many` with MQTT 5.0 user properties, answered with the UNSUBACK: per
    /// filter its reason code (0x11: no subscription existed) and the acknowledgement's reason
    /// string and user properties. A refused filter is not an error of the call.
    pub fn unsubscribe_with_report(
        &self,
        filters: &[&str],
        user_properties: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<UnsubscribeReport> {
        let deadline = Instant::now() + timeout;
        if filters.is_empty() {
            return Err(Error::InvalidArgument("no filter to unsubscribe".into()));
        }
        for filter in filters {
            validate::topic_filter(filter)?;
        }
        self.check_user_properties(&user_properties, "UNSUBSCRIBE")?;
        {
            let mut routes = self.shared.subscriptions();
            for filter in filters {
                routes.remove(filter);
            }
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let command = Command::Unsubscribe {
            filters: filters.iter().map(|f| f.to_string()).collect(),
            user_properties,
            reply,
        };
        if self.commands.send(command).is_err() {
            return Err(engine_gone());
        }
        // From here on its handler is not called again: wait out a call already running
        // (unless that call is us, unsubscribing from inside a callback).
        if !self.in_callback() {
            self.wait_for_callbacks(deadline, "unsubscribe")?;
        }
        wait_reply(&answer, remaining(deadline), "unsubscribe")?
    }

    fn wait_for_callbacks(&self, deadline: Instant, what: &str) -> Result<()> {
        if self.shared.gate.wait_idle(remaining(deadline)) {
            Ok(())
        } else {
            Err(Error::Timeout(format!(
                "{what}: a message callback of this client was still running when the timeout passed (the change is made; the running call may still use the old handler)"
            )))
        }
    }

    /// Waits up to `timeout` for in-flight QoS 1/2 publishes, then sends DISCONNECT. What is
    /// still unacknowledged then is reported failed. Stops automatic reconnection.
    pub fn disconnect(&self, timeout: Duration) -> Result<()> {
        self.send_disconnect(DisconnectRequest::default(), timeout)
    }

    /// `disconnect` with an MQTT 5.0 reason code (0x04 asks the broker to publish the will),
    /// a new session expiry interval and user properties. Only reason codes a client may send
    /// (MQTT 5.0 table 3-10); a session that began with expiry 0 cannot be given a non-zero
    /// one (MQTT 5.0 section 3.14.2.2.2). A 3.1.1 client may only use the defaults (0x00, no
    /// session expiry, no user properties).
    pub fn disconnect_with(
        &self,
        reason_code: u8,
        session_expiry: Option<u32>,
        user_properties: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<()> {
        let request = DisconnectRequest {
            reason_code,
            session_expiry,
            user_properties,
        };
        self.check_disconnect(&request)?;
        self.send_disconnect(request, timeout)
    }

    fn check_disconnect(&self, request: &DisconnectRequest) -> Result<()> {
        if self.options.version != ProtocolVersion::V5 {
            if request.reason_code != 0 || request.session_expiry.is_some() {
                return Err(Error::Mqtt5Required(
                    "a DISCONNECT reason code or session expiry needs MQTT 5.0; this client speaks 3.1.1"
                        .into(),
                ));
            }
            return self.check_user_properties(&request.user_properties, "DISCONNECT");
        }
        if !CLIENT_DISCONNECT_REASONS.contains(&request.reason_code) {
            return Err(Error::InvalidArgument(format!(
                "0x{:02X} is not a DISCONNECT reason code a client may send",
                request.reason_code
            )));
        }
        if let Some(expiry) = request.session_expiry {
            if expiry != 0 && self.options.session_expiry == 0 {
                return Err(Error::InvalidArgument(
                    "the session began with session expiry 0: a DISCONNECT may not set a non-zero one (MQTT 5.0 section 3.14.2.2.2)"
                        .into(),
                ));
            }
        }
        self.check_user_properties(&request.user_properties, "DISCONNECT")
    }

    fn send_disconnect(&self, request: DisconnectRequest, timeout: Duration) -> Result<()> {
        let state = self.shared.state();
        if state == State::Idle {
            return Err(Error::NotConnected("the client is not connected".into()));
        }
        if state == State::Connected {
            self.shared
                .transition(State::Connected, State::Disconnecting);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        if self
            .commands
            .send(Command::Disconnect {
                timeout,
                request,
                reply,
            })
            .is_err()
        {
            return Err(engine_gone());
        }
        // The driver answers after DISCONNECT went out (bounded by its own 2 s close).
        wait_reply(&answer, timeout + Duration::from_secs(3), "disconnect")?
    }

    pub fn is_connected(&self) -> bool {
        self.shared.state() == State::Connected
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Counters, queue depths, connection uptime, disconnects by reason and publish latency,
    /// as OpenMetrics text.
    pub fn metrics_text(&self) -> String {
        crate::mqtt::metrics::render(&self.shared)
    }

    /// True on this client's dispatcher thread, i.e. inside one of its callbacks.
    pub fn in_callback(&self) -> bool {
        std::thread::current().id() == self.dispatcher_id
    }

    /// Stops the engine and joins the dispatcher: after it returns no callback runs again.
    /// Refused from inside the client's own callback, where joining would deadlock.
    pub fn shutdown(&self) -> Result<()> {
        if self.in_callback() {
            return Err(Error::CalledFromCallback(
                "a client cannot be freed from inside its own callback".into(),
            ));
        }
        let dispatcher = self
            .dispatcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(dispatcher) = dispatcher {
            // Every request still waiting hears it before the dispatcher stops.
            self.requests.fail_all(
                &self.shared,
                &Error::Disconnected("the client was freed before the reply came".into()),
            );
            self.shared.closing.store(true, Ordering::Release);
            self.shared.emit(Dispatch::Shutdown);
            let _ = dispatcher.join();
            // The store's lock is released now, not when the engine task ends later: the
            // same directory may be opened again at once.
            if let Some(store) = &self.persistence {
                store.close();
            }
        }
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Dropping the command sender ends the engine task; the dispatcher must not outlive us.
        let _ = self.shutdown();
    }
}

fn wait_reply<T>(answer: &Receiver<T>, timeout: Duration, what: &str) -> Result<T> {
    answer
        .recv_timeout(timeout + REPLY_GRACE)
        .map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Error::Timeout(format!(
                "{what} did not complete within {} ms",
                timeout.as_millis()
            )),
            mpsc::RecvTimeoutError::Disconnected => engine_gone(),
        })
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn engine_gone() -> Error {
    Error::Internal("the session engine has stopped".into())
}

fn generated_client_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    format!("eq1-{:016x}", hasher.finish())
}

impl crate::protocol::BaseProtocol for crate::mqtt::Client {
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

impl crate::protocol::PubSubProtocol for crate::mqtt::Client {
    type Token = crate::mqtt::Token;
    type Qos = Qos;
    type Handler = MessageHandler;
    fn publish(&self, topic: &str, payload: &[u8], qos: Qos, retain: bool) -> Result<Self::Token> {
        crate::mqtt::Client::publish(self, topic, payload, qos, retain)
    }
    fn subscribe(
        &self,
        filter: &str,
        qos: Qos,
        handler: MessageHandler,
        timeout: Duration,
    ) -> Result<Qos> {
        crate::mqtt::Client::subscribe(self, filter, qos, handler, timeout)
    }
    fn unsubscribe(&self, filter: &str, timeout: Duration) -> Result<()> {
        crate::mqtt::Client::unsubscribe(self, filter, timeout)
    }
}
