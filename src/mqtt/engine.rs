//! The session engine: one tokio task per client that owns the connection and all MQTT session
//! state (packet ids, inflight window, outbox, inbound QoS 2, keep-alive, reconnect with backoff,
//! failover, subscription restore). It talks to the handle through commands and to the
//! dispatcher through events; it never calls user code.

use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::tokens::Token;
use crate::mqtt::connection::{Connection, Handshake};
use crate::mqtt::options::{Endpoint, Options, QueueFullPolicy, Will};
use crate::mqtt::packet_ids::PacketIds;
use crate::mqtt::shared::{
    bump, AckTicket, ConnectionEvent, ConnectionState, Event, Shared, State,
};
use crate::mqtt::wire::{InPublish, Incoming, OutPublish};
use crate::mqtt::Message;
use rumqttc::tokio_rustls::TlsConnector;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, Instant};

/// A publish accepted by the handle, waiting in the outbox.
pub struct Queued {
    pub token: Token,
    pub message: OutPublish,
}

impl Queued {
    fn weight(&self) -> u64 {
        (self.message.topic.len() + self.message.payload.len()) as u64
    }
}

pub struct ConnectInfo {
    pub session_present: bool,
    pub broker: Endpoint,
}

pub enum Command {
    Connect {
        deadline: Instant,
        will: Option<Will>,
        reply: SyncSender<Result<ConnectInfo>>,
    },
    Publish(Queued),
    Subscribe {
        filter: String,
        qos: u8,
        reply: SyncSender<Result<u8>>,
    },
    Unsubscribe {
        filter: String,
        reply: SyncSender<Result<()>>,
    },
    Disconnect {
        timeout: Duration,
        reply: SyncSender<()>,
    },
    /// The handlers of a received QoS 1/2 message returned: acknowledge it.
    Ack(AckTicket),
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
    stage: Stage,
    /// Send order, so that a resumed session retransmits in the original order.
    sequence: u64,
}

struct PendingSubscribe {
    filter: String,
    reply: Option<SyncSender<Result<u8>>>,
}

enum Served {
    Lost(Error),
    UserDisconnect(SyncSender<()>),
    ClientGone,
}

enum Interrupted {
    UserDisconnect(SyncSender<()>),
    ClientGone,
}

pub struct Engine {
    options: Arc<Options>,
    shared: Arc<Shared>,
    client_id: String,
    will: Option<Will>,
    tls: Option<TlsConnector>,
    ids: PacketIds,
    outbox: VecDeque<Queued>,
    /// Topic + payload bytes in `outbox` (the drop-oldest policy's byte bound).
    outbox_bytes: u64,
    inflight: BTreeMap<u16, Inflight>,
    subscribes: HashMap<u16, PendingSubscribe>,
    unsubscribes: HashMap<u16, Option<SyncSender<Result<()>>>>,
    /// Replies for subscribes made while reconnecting: answered when the restore's SUBACK comes.
    deferred_subscribe_replies: HashMap<String, Vec<SyncSender<Result<u8>>>>,
    /// Unsubscribes made while reconnecting, sent if the broker kept the session.
    deferred_unsubscribes: Vec<String>,
    incoming_qos2: HashSet<u16>,
    sequence: u64,
    broker_index: usize,
    random: u64,
    /// The user's disconnect in progress: its deadline for in-flight messages, and the reply.
    disconnecting: Option<(Instant, SyncSender<()>)>,
    /// Counts connections, to tell an acknowledgement owed on this one from a stale one.
    connection_number: u64,
}

impl Engine {
    pub fn new(options: Arc<Options>, shared: Arc<Shared>, client_id: String) -> Engine {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ (Arc::as_ptr(&shared) as u64);
        Engine {
            options,
            shared,
            client_id,
            will: None,
            tls: None,
            ids: PacketIds::default(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            inflight: BTreeMap::new(),
            subscribes: HashMap::new(),
            unsubscribes: HashMap::new(),
            deferred_subscribe_replies: HashMap::new(),
            deferred_unsubscribes: Vec::new(),
            incoming_qos2: HashSet::new(),
            sequence: 0,
            broker_index: 0,
            random: seed | 1,
            disconnecting: None,
            connection_number: 0,
        }
    }

    /// The task body: idle until asked to connect, then serve the session until the user
    /// disconnects (back to idle) or the handle is dropped (the task ends).
    pub async fn run(mut self, mut commands: UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            match command {
                Command::Connect {
                    deadline,
                    will,
                    reply,
                } => {
                    self.will = will;
                    match self.first_connect(deadline).await {
                        Err(e) => {
                            self.shared.set_state(State::Idle);
                            // Publishes queued before the first connect stay queued for the
                            // next attempt when the options allow queueing before connect.
                            if !self.options.queue_before_connect {
                                self.fail_everything(&e);
                            }
                            let _ = reply.try_send(Err(e));
                        }
                        Ok((connection, info)) => {
                            let _ = reply.try_send(Ok(info));
                            if self.session(connection, &mut commands).await {
                                return;
                            }
                        }
                    }
                }
                other => self.handle_offline(other),
            }
        }
    }

    async fn first_connect(&mut self, deadline: Instant) -> Result<(Connection, ConnectInfo)> {
        self.tls = match &self.options.tls {
            Some(tls) => Some(crate::core::tls::connector(tls)?),
            None => None,
        };
        let mut last_error = None;
        for index in 0..self.options.brokers.len() {
            match self.handshake_with(index, deadline).await {
                Ok(connected) => return Ok(connected),
                Err(e) => {
                    log!(Level::Warn, "connect failed: {e}");
                    last_error = Some(e);
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::InvalidArgument("no broker configured".into())))
    }

    async fn handshake_with(
        &mut self,
        index: usize,
        deadline: Instant,
    ) -> Result<(Connection, ConnectInfo)> {
        let broker = self.options.brokers[index].clone();
        let handshake = Handshake {
            options: &self.options,
            client_id: &self.client_id,
            will: self.will.as_ref(),
            tls: self.tls.as_ref(),
        };
        let mut connection = handshake.run(&broker, deadline, &self.shared).await?;
        self.connection_number += 1;
        self.broker_index = index;
        let info = ConnectInfo {
            session_present: connection.session_present,
            broker,
        };
        self.resume(&mut connection, info.session_present);
        self.shared.set_state(State::Connected);
        log!(
            Level::Info,
            "connected to {}:{} (session present: {})",
            info.broker.host,
            info.broker.port,
            info.session_present
        );
        self.shared.emit(Event::Connection(ConnectionEvent {
            state: ConnectionState::Connected,
            reason: None,
            session_present: info.session_present,
            broker: Some(info.broker.clone()),
        }));
        Ok((connection, info))
    }

    /// Serves connections until the user disconnects (returns false) or the handle is gone
    /// (returns true).
    async fn session(
        &mut self,
        mut connection: Connection,
        commands: &mut UnboundedReceiver<Command>,
    ) -> bool {
        loop {
            let end = self.serve(&mut connection, commands).await;
            match end {
                Served::ClientGone => return true,
                Served::UserDisconnect(reply) => {
                    connection.close_gracefully().await;
                    self.finish_user_disconnect(reply);
                    return false;
                }
                Served::Lost(reason) => {
                    log!(Level::Warn, "connection lost: {reason}");
                    connection.abort();
                    // Lost while the user was disconnecting: that disconnect is now complete.
                    if let Some((_, reply)) = self.disconnecting.take() {
                        self.finish_user_disconnect(reply);
                        return false;
                    }
                    self.shared.emit(Event::Connection(ConnectionEvent {
                        state: ConnectionState::ConnectionLost,
                        reason: Some(reason.clone()),
                        session_present: false,
                        broker: Some(connection.broker.clone()),
                    }));
                    if !self.options.auto_reconnect {
                        self.shared.set_state(State::Idle);
                        self.fail_everything(&reason);
                        return false;
                    }
                    self.shared.set_state(State::Reconnecting);
                    match self.reconnect(commands).await {
                        Ok(next) => {
                            bump(&self.shared.counters.reconnects, 1);
                            connection = next;
                        }
                        Err(Interrupted::ClientGone) => return true,
                        Err(Interrupted::UserDisconnect(reply)) => {
                            self.finish_user_disconnect(reply);
                            return false;
                        }
                    }
                }
            }
        }
    }

    fn finish_user_disconnect(&mut self, reply: SyncSender<()>) {
        self.shared.set_state(State::Idle);
        self.fail_everything(&Error::Disconnected(
            "the client disconnected before the broker acknowledged the message".into(),
        ));
        log!(Level::Info, "disconnected");
        self.shared.emit(Event::Connection(ConnectionEvent {
            state: ConnectionState::Disconnected,
            reason: None,
            session_present: false,
            broker: None,
        }));
        let _ = reply.try_send(());
    }

    /// Backoff, then one round over the brokers from the current one; repeat until connected.
    async fn reconnect(
        &mut self,
        commands: &mut UnboundedReceiver<Command>,
    ) -> std::result::Result<Connection, Interrupted> {
        let mut attempt = 0u32;
        loop {
            let wake = Instant::now() + self.backoff(attempt);
            attempt = attempt.saturating_add(1);
            loop {
                tokio::select! {
                    _ = sleep_until(wake) => break,
                    command = commands.recv() => match command {
                        None => return Err(Interrupted::ClientGone),
                        Some(Command::Disconnect { reply, .. }) => {
                            return Err(Interrupted::UserDisconnect(reply))
                        }
                        Some(other) => self.handle_offline(other),
                    },
                }
            }
            let count = self.options.brokers.len();
            let start = self.broker_index;
            for k in 0..count {
                let index = (start + k) % count;
                let deadline = Instant::now() + self.options.connect_timeout;
                match self.handshake_with(index, deadline).await {
                    Ok((connection, _)) => return Ok(connection),
                    Err(e) => {
                        let b = &self.options.brokers[index];
                        log!(
                            Level::Warn,
                            "reconnect to {}:{} failed: {e}",
                            b.host,
                            b.port
                        )
                    }
                }
            }
        }
    }

    /// Exponential backoff with jitter: uniformly in [d/2, d], d = min(max, min * 2^attempt).
    fn backoff(&mut self, attempt: u32) -> Duration {
        let min = self.options.reconnect_min;
        let max = self.options.reconnect_max;
        let full = min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(max)
            .min(max);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let half = full / 2;
        let jitter_ns = (self.random % (half.as_nanos().max(1) as u64)) as u32;
        half + Duration::from_nanos(jitter_ns as u64)
    }

    /// After CONNACK: put session state in line with what the broker kept, and queue the
    /// retransmissions and the subscription restore.
    fn resume(&mut self, connection: &mut Connection, session_present: bool) {
        let mut out = connection.output();
        if !session_present {
            self.incoming_qos2.clear();
            // Publishes the broker never completed go back to the head of the outbox, in
            // their original order, to be sent again as new messages.

            let inflight = std::mem::take(&mut self.inflight);
            let mut ordered: Vec<Inflight> = inflight.into_values().collect();
            ordered.sort_by_key(|i| i.sequence);
            // Even a QoS 2 message past PUBREC is sent again: a broker that lost our session
            // may have lost the message with it (a restart without persistence), and a
            // possible duplicate is better than a possible loss.
            for entry in ordered.into_iter().rev() {
                self.requeue_front(Queued {
                    token: entry.token,
                    message: entry.message,
                });
            }
            for (_, pending) in self.subscribes.drain() {
                if let Some(reply) = pending.reply {
                    self.deferred_subscribe_replies
                        .entry(pending.filter)
                        .or_default()
                        .push(reply);
                }
            }
            for (_, reply) in self.unsubscribes.drain() {
                if let Some(reply) = reply {
                    let _ = reply.try_send(Ok(()));
                }
            }
            self.deferred_unsubscribes.clear();
            self.ids = PacketIds::default();
        } else {
            let mut ordered: Vec<(&u16, &Inflight)> = self.inflight.iter().collect();
            ordered.sort_by_key(|(_, i)| i.sequence);
            for (pkid, entry) in ordered {
                let sent = match entry.stage {
                    Stage::AwaitAck => out.publish(&entry.message, *pkid, true),
                    Stage::AwaitComp => out.pubrel(*pkid),
                };
                if let Err(e) = sent {
                    log!(Level::Error, "cannot retransmit packet {pkid}: {e}");
                }
            }
            let pending: Vec<(u16, String)> = self
                .subscribes
                .iter()
                .map(|(pkid, p)| (*pkid, p.filter.clone()))
                .collect();
            let table = self.shared.subscriptions();
            for (pkid, filter) in pending {
                let qos = table_qos(&table, &filter);
                let _ = out.subscribe(pkid, &filter, qos);
            }
            drop(table);
            for filter in std::mem::take(&mut self.deferred_unsubscribes) {
                if let Some(pkid) = self.ids.allocate() {
                    self.unsubscribes.insert(pkid, None);
                    let _ = out.unsubscribe(pkid, &filter);
                }
            }
        }
        let restore = self.shared.subscriptions().to_restore(session_present);
        let pending_filters: HashSet<String> =
            self.subscribes.values().map(|p| p.filter.clone()).collect();
        for (filter, qos) in restore {
            if pending_filters.contains(&filter) {
                continue;
            }
            let replies = self
                .deferred_subscribe_replies
                .remove(&filter)
                .unwrap_or_default();
            self.send_subscribe(&mut out, filter, qos, replies);
        }
        // Subscribes whose filter was removed meanwhile: nothing to restore, nothing to wait for.
        for (_, replies) in self.deferred_subscribe_replies.drain() {
            for reply in replies {
                let _ = reply.try_send(Err(Error::Disconnected(
                    "the subscription was removed before it could be sent".into(),
                )));
            }
        }
        connection.commit(out);
    }

    fn send_subscribe(
        &mut self,
        out: &mut crate::mqtt::connection::Output,
        filter: String,
        qos: u8,
        replies: Vec<SyncSender<Result<u8>>>,
    ) {
        let Some(pkid) = self.ids.allocate() else {
            for reply in replies {
                let _ = reply.try_send(Err(Error::QueueFull(
                    "all 65,535 packet identifiers are in use".into(),
                )));
            }
            return;
        };
        if let Err(e) = out.subscribe(pkid, &filter, qos) {
            self.ids.release(pkid);
            for reply in replies {
                let _ = reply.try_send(Err(e.clone()));
            }
            return;
        }
        // Several waiters for one filter: the first gets the SUBACK's answer through the
        // pending entry, the others share it via the deferred map keyed by filter.
        let mut replies = replies.into_iter();
        let first = replies.next();
        let rest: Vec<_> = replies.collect();
        if !rest.is_empty() {
            self.deferred_subscribe_replies.insert(filter.clone(), rest);
        }
        self.subscribes.insert(
            pkid,
            PendingSubscribe {
                filter,
                reply: first,
            },
        );
    }

    async fn serve(
        &mut self,
        connection: &mut Connection,
        commands: &mut UnboundedReceiver<Command>,
    ) -> Served {
        // Packets that arrived in the same segment as CONNACK are already buffered.
        if let Err(e) = self.handle_buffered(connection) {
            return Served::Lost(e);
        }
        loop {
            self.pump_outbox(connection);
            if let Some((deadline, _)) = &self.disconnecting {
                let drained = self.inflight.is_empty() && self.outbox.is_empty();
                if drained || Instant::now() >= *deadline {
                    connection.send_disconnect();
                    if let Some((_, reply)) = self.disconnecting.take() {
                        return Served::UserDisconnect(reply);
                    }
                }
            }
            connection.flush();
            let keepalive_at = connection.next_keepalive_check();
            let disconnect_at = self
                .disconnecting
                .as_ref()
                .map(|(deadline, _)| *deadline)
                .unwrap_or(keepalive_at);
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return Served::ClientGone };
                    self.handle_command(command, connection);
                    // Drain what is already waiting so that it leaves in one write.
                    for _ in 0..1024 {
                        match commands.try_recv() {
                            Ok(command) => self.handle_command(command, connection),
                            Err(_) => break,
                        }
                    }
                }
                read = connection.read() => {
                    if let Err(e) = read.and_then(|()| self.handle_buffered(connection)) {
                        return Served::Lost(e);
                    }
                }
                _ = sleep_until(keepalive_at) => {
                    if let Err(e) = connection.keepalive() {
                        return Served::Lost(e);
                    }
                }
                _ = sleep_until(disconnect_at), if self.disconnecting.is_some() => {}
            }
        }
    }

    fn handle_command(&mut self, command: Command, connection: &mut Connection) {
        match command {
            Command::Publish(queued) => self.enqueue(queued),
            Command::Subscribe { filter, qos, reply } => {
                let mut out = connection.output();
                self.send_subscribe(&mut out, filter, qos, vec![reply]);
                connection.commit(out);
            }
            Command::Unsubscribe { filter, reply } => {
                let Some(pkid) = self.ids.allocate() else {
                    let _ = reply.try_send(Err(Error::QueueFull(
                        "all 65,535 packet identifiers are in use".into(),
                    )));
                    return;
                };
                let mut out = connection.output();
                match out.unsubscribe(pkid, &filter) {
                    Ok(()) => {
                        self.unsubscribes.insert(pkid, Some(reply));
                    }
                    Err(e) => {
                        self.ids.release(pkid);
                        let _ = reply.try_send(Err(e));
                    }
                }
                connection.commit(out);
            }
            Command::Disconnect { timeout, reply } => {
                self.disconnecting = Some((Instant::now() + timeout, reply));
            }
            Command::Connect { reply, .. } => {
                let _ = reply.try_send(Err(Error::InvalidState("already connected".into())));
            }
            Command::Ack(ticket) => {
                // An acknowledgement owed on an earlier connection is void: a broker that kept
                // the session sends the message again (QoS 2 duplicates are then answered from
                // `incoming_qos2` without a second delivery).
                if ticket.connection == self.connection_number {
                    let mut out = connection.output();
                    let sent = match ticket.qos {
                        1 => out.puback(ticket.pkid),
                        _ => out.pubrec(ticket.pkid),
                    };
                    if let Err(e) = sent {
                        log!(
                            Level::Error,
                            "cannot acknowledge packet {}: {e}",
                            ticket.pkid
                        );
                    }
                    connection.commit(out);
                }
            }
        }
    }

    /// Commands that arrive while there is no connection (idle or reconnecting).
    fn handle_offline(&mut self, command: Command) {
        let state = self.shared.state();
        match command {
            Command::Publish(queued) => {
                if state == State::Idle && !self.options.queue_before_connect {
                    self.refuse(
                        queued,
                        Error::NotConnected("the client is not connected".into()),
                    );
                } else {
                    self.enqueue(queued);
                }
            }
            Command::Subscribe { filter, reply, .. } => {
                if state == State::Idle {
                    self.shared.subscriptions().remove(&filter);
                    let _ = reply.try_send(Err(Error::NotConnected(
                        "the client is not connected".into(),
                    )));
                } else {
                    // Sent with the subscription restore once reconnected.
                    self.deferred_subscribe_replies
                        .entry(filter)
                        .or_default()
                        .push(reply);
                }
            }
            Command::Unsubscribe { filter, reply } => {
                if state != State::Idle {
                    self.deferred_unsubscribes.push(filter);
                }
                let _ = reply.try_send(Ok(()));
            }
            Command::Disconnect { reply, .. } => {
                let _ = reply.try_send(());
            }
            Command::Connect { reply, .. } => {
                let _ = reply.try_send(Err(Error::InvalidState(
                    "the client is already connecting".into(),
                )));
            }
            // Owed on a connection that is gone: see `handle_command`.
            Command::Ack(_) => {}
        }
    }

    /// Appends to the outbox. The handle already counted the message in `queued` (it reserved
    /// the place); with the drop-oldest policy this is where the queue is trimmed.
    fn enqueue(&mut self, queued: Queued) {
        self.outbox_bytes += queued.weight();
        self.outbox.push_back(queued);
        if self.options.queue_full_policy == QueueFullPolicy::DropOldest {
            while self.outbox.len() > 1
                && (self.outbox.len() > self.options.queue_max_messages
                    || self.outbox_bytes > self.options.queue_max_bytes as u64)
            {
                let Some(oldest) = self.pop_outbox() else {
                    break;
                };
                self.shared.complete(
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
        let counters = &self.shared.counters;
        counters.queued.fetch_sub(1, Ordering::AcqRel);
        counters
            .queued_bytes
            .fetch_sub(queued.weight(), Ordering::AcqRel);
        self.shared.complete(queued.token, Err(reason));
    }

    fn pop_outbox(&mut self) -> Option<Queued> {
        let queued = self.outbox.pop_front()?;
        self.outbox_bytes -= queued.weight();
        let counters = &self.shared.counters;
        counters.queued.fetch_sub(1, Ordering::AcqRel);
        counters
            .queued_bytes
            .fetch_sub(queued.weight(), Ordering::AcqRel);
        Some(queued)
    }

    fn requeue_front(&mut self, queued: Queued) {
        let counters = &self.shared.counters;
        counters.queued.fetch_add(1, Ordering::AcqRel);
        counters
            .queued_bytes
            .fetch_add(queued.weight(), Ordering::AcqRel);
        self.outbox_bytes += queued.weight();
        self.outbox.push_front(queued);
    }

    /// Moves publishes from the outbox onto the wire, in order, within the inflight window.
    fn pump_outbox(&mut self, connection: &mut Connection) {
        if self.outbox.is_empty() {
            return;
        }
        let window = connection.window(self.options.inflight_window) as usize;
        let mut out = connection.output();
        while let Some(front) = self.outbox.front() {
            if front.message.qos > 0 && self.inflight.len() >= window {
                break;
            }
            let Some(queued) = self.pop_outbox() else {
                break;
            };
            let size = out.publish_size(&queued.message);
            if size > connection.max_outgoing_packet() {
                self.shared.complete(
                    queued.token,
                    Err(Error::PayloadTooLarge(format!(
                        "PUBLISH of {size} bytes exceeds the broker's maximum packet size of {}",
                        connection.max_outgoing_packet()
                    ))),
                );
                continue;
            }
            if queued.message.qos == 0 {
                match out.publish(&queued.message, 0, false) {
                    Ok(()) => out.written_tokens.push(queued.token),
                    Err(e) => self.shared.complete(queued.token, Err(e)),
                }
                continue;
            }
            let Some(pkid) = self.ids.allocate() else {
                self.requeue_front(queued);
                break;
            };
            if let Err(e) = out.publish(&queued.message, pkid, false) {
                self.ids.release(pkid);
                self.shared.complete(queued.token, Err(e));
                continue;
            }
            self.sequence += 1;
            self.inflight.insert(
                pkid,
                Inflight {
                    token: queued.token,
                    message: queued.message,
                    stage: Stage::AwaitAck,
                    sequence: self.sequence,
                },
            );
        }
        connection.commit(out);
    }

    /// Handles every whole packet in the read buffer.
    fn handle_buffered(&mut self, connection: &mut Connection) -> Result<()> {
        while let Some(packet) = connection.decode()? {
            self.handle_incoming(packet, connection)?;
        }
        Ok(())
    }

    fn handle_incoming(&mut self, packet: Incoming, connection: &mut Connection) -> Result<()> {
        let mut out = connection.output();
        let result = self.apply(packet, connection, &mut out);
        connection.commit(out);
        result
    }

    fn apply(
        &mut self,
        packet: Incoming,
        connection: &mut Connection,
        out: &mut crate::mqtt::connection::Output,
    ) -> Result<()> {
        match packet {
            Incoming::Publish(publish, alias) => {
                let publish = connection.resolve_alias(publish, alias)?;
                self.receive(publish, out)?;
            }
            Incoming::PubAck(pkid, failure) => {
                if self.inflight.get(&pkid).is_some_and(|i| i.message.qos == 1) {
                    self.finish_publish(pkid, failure);
                } else {
                    log!(Level::Debug, "ignoring unexpected PUBACK {pkid}");
                }
            }
            Incoming::PubRec(pkid, failure) => match self.inflight.get_mut(&pkid) {
                Some(entry) if entry.message.qos == 2 => {
                    if failure.is_some() {
                        self.finish_publish(pkid, failure);
                    } else {
                        entry.stage = Stage::AwaitComp;
                        out.pubrel(pkid)?;
                    }
                }
                _ => log!(Level::Debug, "ignoring unexpected PUBREC {pkid}"),
            },
            Incoming::PubComp(pkid) => {
                if self
                    .inflight
                    .get(&pkid)
                    .is_some_and(|i| i.stage == Stage::AwaitComp)
                {
                    self.finish_publish(pkid, None);
                } else {
                    log!(Level::Debug, "ignoring unexpected PUBCOMP {pkid}");
                }
            }
            Incoming::PubRel(pkid) => {
                // Answered even for an unknown id, so that the broker can finish its side.
                self.incoming_qos2.remove(&pkid);
                out.pubcomp(pkid)?;
            }
            Incoming::SubAck(pkid, codes) => match self.subscribes.remove(&pkid) {
                Some(pending) => {
                    self.ids.release(pkid);
                    let outcome = match codes.into_iter().next() {
                        Some(Ok(granted)) => {
                            self.shared.subscriptions().set_confirmed(&pending.filter);
                            Ok(granted)
                        }
                        Some(Err(reason)) => {
                            self.shared.subscriptions().remove(&pending.filter);
                            log!(
                                Level::Warn,
                                "subscription to '{}' refused: {reason}",
                                pending.filter
                            );
                            Err(Error::SubscribeRefused(format!(
                                "'{}': {reason}",
                                pending.filter
                            )))
                        }
                        None => Err(Error::Protocol("SUBACK without a return code".into())),
                    };
                    let others = self
                        .deferred_subscribe_replies
                        .remove(&pending.filter)
                        .unwrap_or_default();
                    for reply in pending.reply.into_iter().chain(others) {
                        let _ = reply.try_send(outcome.clone());
                    }
                }
                None => log!(Level::Debug, "ignoring unexpected SUBACK {pkid}"),
            },
            Incoming::UnsubAck(pkid) => match self.unsubscribes.remove(&pkid) {
                Some(reply) => {
                    self.ids.release(pkid);
                    if let Some(reply) = reply {
                        let _ = reply.try_send(Ok(()));
                    }
                }
                None => log!(Level::Debug, "ignoring unexpected UNSUBACK {pkid}"),
            },
            Incoming::PingResp => connection.ping_answered(),
            Incoming::Disconnect(reason) => return Err(Error::ConnectionLost(reason)),
            Incoming::ConnAck(_) => {
                return Err(Error::Protocol("broker sent a second CONNACK".into()))
            }
            Incoming::Unexpected(name) => {
                return Err(Error::Protocol(format!(
                    "broker sent a {name} packet, which only clients may send"
                )))
            }
        }
        Ok(())
    }

    fn receive(
        &mut self,
        publish: InPublish,
        out: &mut crate::mqtt::connection::Output,
    ) -> Result<()> {
        let ack = AckTicket {
            connection: self.connection_number,
            pkid: publish.pkid,
            qos: publish.qos,
        };
        let ack = match publish.qos {
            0 => None,
            1 => Some(ack),
            _ => {
                // Held until PUBREL: a retransmission (DUP set) of the same id is acknowledged
                // at once and not delivered again. The same id without DUP is a new message: a
                // broker restored from a stale persistence file reuses ids it had already used
                // (seen with mosquitto after SIGKILL), and treating those as duplicates would
                // lose them.
                let first_time = self.incoming_qos2.insert(publish.pkid);
                if !first_time && publish.dup {
                    out.pubrec(publish.pkid)?;
                    return Ok(());
                }
                Some(ack)
            }
        };
        bump(&self.shared.counters.received, 1);
        self.shared.emit(Event::Message(
            Message {
                topic: publish.topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
                dup: publish.dup,
                packet_id: publish.pkid,
                properties: publish.properties,
            },
            ack,
        ));
        Ok(())
    }

    fn finish_publish(&mut self, pkid: u16, failure: Option<String>) {
        if let Some(entry) = self.inflight.remove(&pkid) {
            self.ids.release(pkid);
            let result = match failure {
                None => Ok(()),
                Some(reason) => Err(Error::PublishRefused(format!(
                    "'{}': {reason}",
                    entry.message.topic
                ))),
            };
            self.shared.complete(entry.token, result);
        }
    }

    /// Reports every queued and in-flight publish as failed (the session is over).
    fn fail_everything(&mut self, reason: &Error) {
        while let Some(queued) = self.pop_outbox() {
            self.shared.complete(queued.token, Err(reason.clone()));
        }
        for (_, entry) in std::mem::take(&mut self.inflight) {
            self.shared.complete(entry.token, Err(reason.clone()));
        }
        for (_, pending) in self.subscribes.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.try_send(Err(reason.clone()));
            }
        }
        for (_, replies) in self.deferred_subscribe_replies.drain() {
            for reply in replies {
                let _ = reply.try_send(Err(reason.clone()));
            }
        }
        for (_, reply) in self
            .unsubscribes
            .drain()
            .filter_map(|(k, r)| r.map(|r| (k, r)))
        {
            let _ = reply.try_send(Err(reason.clone()));
        }
        self.deferred_unsubscribes.clear();
        self.incoming_qos2.clear();
        self.ids = PacketIds::default();
    }
}

fn table_qos(table: &crate::mqtt::subscriptions::SubscriptionTable, filter: &str) -> u8 {
    table.qos_of(filter).unwrap_or(0)
}
