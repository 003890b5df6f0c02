//! The driver: one tokio task per client that owns the socket, the timers and reconnection
//! (backoff, failover), and nothing else. Every MQTT decision is the session's
//! (`session.rs`); the driver feeds it commands, packets and the time, writes what it
//! encodes, and hands its events to tokens, waiters and the dispatcher.

use crate::core::backoff::Backoff;
use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::tls;
use crate::core::transport::{self, Endpoint, Stream};
use crate::mqtt::options::{Options, Will};
use crate::mqtt::outbuf::{self, OutBuf};
use crate::mqtt::session::{AckTicket, AuthAnswer, Event, Outcome, Queued, Session, Transmit};
use crate::mqtt::shared::{
    bump, ConnAckInfo, ConnectionEvent, ConnectionState, Dispatch, Shared, State,
};
use crate::mqtt::subscribe::{FilterRequest, SubscribeReport, UnsubscribeReport};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio::time::{sleep_until, timeout_at, Instant};

const READ_CHUNK: usize = 64 * 1024;
/// How long a DISCONNECT (or a violation's DISCONNECT) may take to leave before we give up.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the connect call learns.
pub struct ConnectInfo {
    pub session_present: bool,
    pub broker: Endpoint,
}

/// A request from the handle.
pub enum Command {
    Connect {
        deadline: Instant,
        will: Option<Will>,
        reply: SyncSender<Result<ConnectInfo>>,
    },
    Publish(Queued),
    Subscribe {
        filters: Vec<FilterRequest>,
        user_properties: Vec<(String, String)>,
        reply: SyncSender<Result<SubscribeReport>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        user_properties: Vec<(String, String)>,
        reply: SyncSender<Result<UnsubscribeReport>>,
    },
    Disconnect {
        timeout: Duration,
        request: crate::mqtt::session::DisconnectRequest,
        reply: SyncSender<Result<()>>,
    },
    /// The handlers of a received QoS 1/2 message returned: acknowledge it.
    Ack(AckTicket),
    /// MQTT 5.0 re-authentication with the configured method and this initial data.
    Reauthenticate {
        data: Option<bytes::Bytes>,
        timeout: Duration,
        reply: SyncSender<Result<()>>,
    },
}

/// Who waits for a session reply, and in which shape.
pub enum Waiter {
    Subscribe(SyncSender<Result<SubscribeReport>>),
    Unsubscribe(SyncSender<Result<UnsubscribeReport>>),
    Disconnect(SyncSender<Result<()>>),
    Reauthenticate(SyncSender<Result<()>>),
}

impl Waiter {
    fn answer(self, outcome: Outcome) {
        // A waiter that timed out has gone: nobody to tell (try_send fails, ignored).
        match (self, outcome) {
            (Waiter::Subscribe(reply), Outcome::Subscribed(report)) => {
                let _ = reply.try_send(Ok(report));
            }
            (Waiter::Subscribe(reply), other) => {
                let _ = reply.try_send(Err(failure_of(other)));
            }
            (Waiter::Unsubscribe(reply), Outcome::Unsubscribed(report)) => {
                let _ = reply.try_send(Ok(report));
            }
            (Waiter::Unsubscribe(reply), other) => {
                let _ = reply.try_send(Err(failure_of(other)));
            }
            (Waiter::Disconnect(reply), Outcome::Failed(e))
            | (Waiter::Reauthenticate(reply), Outcome::Failed(e)) => {
                let _ = reply.try_send(Err(e));
            }
            (Waiter::Disconnect(reply), _) | (Waiter::Reauthenticate(reply), _) => {
                let _ = reply.try_send(Ok(()));
            }
        }
    }
}

fn failure_of(outcome: Outcome) -> Error {
    match outcome {
        Outcome::Failed(e) => e,
        _ => Error::Internal("a waiter was answered with an unrelated outcome".into()),
    }
}

/// One open connection: the two halves of the stream, what was read, what is being written.
struct Socket {
    endpoint: Endpoint,
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    read_buf: BytesMut,
    /// The transmit being written (what is left of it) and how many bytes of it went out.
    writing: Option<(Transmit, usize)>,
}

/// What woke the serving loop.
enum Wake {
    Command(Option<Command>),
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<Option<(Transmit, usize)>>),
    Deadline,
    Room,
    AuthAnswer(Option<(u64, AuthAnswer)>),
}

enum Served {
    Lost(Error),
    UserDisconnect,
    ClientGone,
}

pub struct Driver {
    options: Arc<Options>,
    shared: Arc<Shared>,
    session: Session<Waiter>,
    tls: Option<tls::Connector>,
    backoff: Backoff,
    broker_index: usize,
    /// The authentication callback's answers, from the dispatcher.
    auth_answers: Receiver<(u64, AuthAnswer)>,
    /// Keeps that channel open after the dispatcher has gone, so that waiting on it never
    /// returns at once (the driver would spin).
    _auth_answers_open: crate::mqtt::dispatcher::AuthAnswers,
    /// Where a server DISCONNECT 0x9C / 0x9D sent us: the next connection attempt goes there.
    redirect_next: Option<Endpoint>,
}

impl Driver {
    pub fn new(
        options: Arc<Options>,
        shared: Arc<Shared>,
        client_id: String,
        (auth_answers, open): (
            Receiver<(u64, AuthAnswer)>,
            crate::mqtt::dispatcher::AuthAnswers,
        ),
        persistence: Option<(
            Arc<crate::mqtt::persistence::Persistence>,
            &crate::mqtt::persistence::Restored,
        )>,
    ) -> Driver {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ (Arc::as_ptr(&shared) as u64);
        let mut session = Session::new(options.clone(), client_id, std::time::Instant::now());
        if let Some((persistence, restored)) = persistence {
            let (messages, bytes) =
                session.restore(persistence, restored, std::time::Instant::now());
            // Restored outbox messages hold their places like accepted ones.
            shared.counters.queued.fetch_add(messages, Ordering::AcqRel);
            shared
                .counters
                .queued_bytes
                .fetch_add(bytes, Ordering::AcqRel);
        }
        Driver {
            backoff: Backoff::new(options.reconnect_min, options.reconnect_max, seed),
            session,
            options,
            shared,
            tls: None,
            broker_index: 0,
            auth_answers,
            _auth_answers_open: open,
            redirect_next: None,
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
                    self.session.begin(will);
                    match self.first_connect(deadline).await {
                        Err(e) => {
                            self.shared.set_state(State::Idle);
                            // Publishes queued before the first connect stay queued for the
                            // next attempt when the options allow queueing before connect.
                            self.session.end(&e, self.options.queue_before_connect);
                            self.deliver_events();
                            let _ = reply.try_send(Err(e));
                        }
                        Ok((socket, info)) => {
                            let _ = reply.try_send(Ok(info));
                            if self.serve_session(socket, &mut commands).await {
                                return;
                            }
                        }
                    }
                }
                other => {
                    self.command(other);
                    self.deliver_events();
                }
            }
        }
    }

    async fn first_connect(&mut self, deadline: Instant) -> Result<(Socket, ConnectInfo)> {
        self.tls = match &self.options.tls {
            Some(tls) => Some(tls::connector(tls)?),
            None => None,
        };
        let mut last_error = None;
        for index in 0..self.options.brokers.len() {
            match self.connect_to(index, deadline).await {
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

    /// One broker: the handshake, retried once as MQTT 3.1.1 when the broker refuses 5.0 and
    /// the options allow the fallback.
    async fn connect_to(
        &mut self,
        index: usize,
        deadline: Instant,
    ) -> Result<(Socket, ConnectInfo)> {
        let mut endpoint = match self.redirect_next.take() {
            Some(moved) => moved,
            None => self.options.brokers[index].clone(),
        };
        let mut hops = 0;
        loop {
            let result = match self.handshake(index, endpoint.clone(), deadline).await {
                Err(Error::UnsupportedProtocolVersion(m)) if self.session.fall_back_to_v311() => {
                    log!(Level::Warn, "{m}");
                    self.handshake(index, endpoint.clone(), deadline).await
                }
                other => other,
            };
            let reference = self.session.take_redirect();
            match result {
                Err(Error::ServerMoved(m)) if self.options.follow_redirects => {
                    let next = reference
                        .as_deref()
                        .and_then(|r| redirect_target(r, &endpoint));
                    match next {
                        Some(next) if hops < MAX_REDIRECTS => {
                            log!(
                                Level::Info,
                                "{m}: connecting to {}:{}",
                                next.host,
                                next.port
                            );
                            endpoint = next;
                            hops += 1;
                        }
                        Some(_) => {
                            return Err(Error::ServerMoved(format!(
                                "{m} (gave up after {MAX_REDIRECTS} redirects)"
                            )))
                        }
                        None => return Err(Error::ServerMoved(m)),
                    }
                }
                other => return other,
            }
        }
    }

    async fn handshake(
        &mut self,
        index: usize,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> Result<(Socket, ConnectInfo)> {
        let result = self.open_session(&endpoint, deadline).await;
        match result {
            Ok(socket) => {
                self.broker_index = index;
                let session_present = self.session.session_present();
                self.shared.set_state(State::Connected);
                self.publish_limits();
                *self
                    .shared
                    .response_information
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    self.session.response_information().map(str::to_string);
                log!(
                    Level::Info,
                    "connected to {endpoint} (session present: {session_present})"
                );
                if self.options.tls.as_ref().is_some_and(|t| t.insecure) && endpoint.tls {
                    log!(
                        Level::Warn,
                        "TLS to {}:{} is not verified (insecure mode): anyone on the path can read and change this connection",
                        endpoint.host,
                        endpoint.port
                    );
                }
                let connack = self
                    .session
                    .last_connack()
                    .map(|ack| Arc::new(ConnAckInfo::from_connack(ack)))
                    .unwrap_or_default();
                self.shared
                    .set_connack(connack.clone(), self.session.client_id());
                self.shared.emit(Dispatch::Connection(ConnectionEvent {
                    state: ConnectionState::Connected,
                    reason: None,
                    session_present,
                    broker: Some(endpoint.clone()),
                    connack: Some(connack),
                    server_disconnect: None,
                }));
                self.deliver_events();
                Ok((
                    socket,
                    ConnectInfo {
                        session_present,
                        broker: endpoint,
                    },
                ))
            }
            Err(e) => {
                self.session.connection_closed(&e);
                self.deliver_events();
                Err(e)
            }
        }
    }

    /// TCP (+TLS), CONNECT, CONNACK, all before `deadline`.
    async fn open_session(&mut self, endpoint: &Endpoint, deadline: Instant) -> Result<Socket> {
        let tls = if endpoint.tls {
            Some(self.tls.as_ref().ok_or_else(|| {
                Error::TlsConfig(format!(
                    "broker {}:{} needs TLS but no TLS options are set",
                    endpoint.host, endpoint.port
                ))
            })?)
        } else {
            None
        };
        let stream = transport::open(endpoint, tls, &self.options.network, deadline).await?;
        self.handshake_on(stream, endpoint, deadline)
            .await
            .map_err(|e| explain_refusal(e, &self.options))
    }

    async fn handshake_on(
        &mut self,
        stream: Stream,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<Socket> {
        let (reader, writer) = tokio::io::split(stream);
        let mut socket = Socket {
            endpoint: endpoint.clone(),
            reader,
            writer,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            writing: None,
        };
        let name = format!("{}:{}", endpoint.host, endpoint.port);
        let timed_out = || Error::Timeout(format!("timed out waiting for CONNACK from {name}"));
        self.session.connection_opened(std::time::Instant::now())?;
        while let Some(transmit) = self.session.transmit(std::time::Instant::now()) {
            timeout_at(deadline, write_all(&mut socket, transmit, &self.shared))
                .await
                .map_err(|_| timed_out())??;
        }
        // Until CONNACK (and, with enhanced authentication, until the exchange is through:
        // the broker's AUTH challenges go to the callback on the dispatcher thread, its
        // answers come back here), all within the connect deadline.
        loop {
            let codec = self.session.codec();
            let decoded = codec.decode(&mut socket.read_buf);
            let step = match decoded {
                Ok(Some(packet)) => self
                    .session
                    .handle_packet(packet, std::time::Instant::now()),
                Ok(None) => {
                    make_room(&mut socket.read_buf);
                    let Socket {
                        reader, read_buf, ..
                    } = &mut socket;
                    let woke = timeout_at(deadline, async {
                        tokio::select! {
                            read = reader.read_buf(read_buf) => Wake::Read(read),
                            answer = self.auth_answers.recv() => Wake::AuthAnswer(answer),
                        }
                    })
                    .await
                    .map_err(|_| timed_out())?;
                    match woke {
                        Wake::Read(read) => {
                            let n = read.map_err(|e| read_error(&e, &socket.endpoint))?;
                            if n == 0 {
                                return Err(Error::ConnectionLost(format!(
                                    "{name} closed the connection before sending CONNACK"
                                )));
                            }
                            bump(&self.shared.counters.bytes_in, n as u64);
                            Ok(())
                        }
                        Wake::AuthAnswer(Some((step, answer))) => {
                            self.session
                                .auth_answer(step, answer, std::time::Instant::now())
                        }
                        _ => Err(Error::Internal("the dispatcher has stopped".into())),
                    }
                }
                Err(bad) => Err(self.session.malformed(bad.reason, bad.error)),
            };
            self.deliver_events();
            if let Err(e) = step {
                // A DISCONNECT the session encoded (authentication refused) gets a short
                // chance to leave.
                if let Some(transmit) = self.session.transmit(std::time::Instant::now()) {
                    let _ = timeout_at(
                        Instant::now() + CLOSE_WRITE_TIMEOUT,
                        write_all(&mut socket, transmit, &self.shared),
                    )
                    .await;
                }
                return Err(e);
            }
            if self.session.is_connected() {
                return Ok(socket);
            }
            while let Some(transmit) = self.session.transmit(std::time::Instant::now()) {
                timeout_at(deadline, write_all(&mut socket, transmit, &self.shared))
                    .await
                    .map_err(|_| timed_out())??;
            }
        }
    }

    /// Serves connections until the user disconnects (returns false) or the handle is gone
    /// (returns true).
    async fn serve_session(
        &mut self,
        mut socket: Socket,
        commands: &mut UnboundedReceiver<Command>,
    ) -> bool {
        loop {
            match self.serve(&mut socket, commands).await {
                Served::ClientGone => return true,
                Served::UserDisconnect => {
                    self.finish_user_disconnect();
                    return false;
                }
                Served::Lost(reason) => {
                    log!(Level::Warn, "connection lost: {reason}");
                    let endpoint = socket.endpoint.clone();
                    self.abandon(socket, &reason);
                    // Lost while the user was disconnecting: that disconnect is now complete.
                    if self.session.is_disconnecting() {
                        self.session.finish_disconnect(Ok(()));
                        self.finish_user_disconnect();
                        return false;
                    }
                    self.session.connection_closed(&reason);
                    // The state first: a connection callback that asks sees it already.
                    self.shared.set_state(if self.options.auto_reconnect {
                        State::Reconnecting
                    } else {
                        State::Idle
                    });
                    let server_disconnect = self.session.take_server_disconnect();
                    if self.options.follow_redirects {
                        self.redirect_next = server_disconnect
                            .as_ref()
                            .filter(|d| d.reason_code == 0x9C || d.reason_code == 0x9D)
                            .and_then(|d| d.server_reference.as_deref())
                            .and_then(|r| redirect_target(r, &endpoint));
                    }
                    self.shared.emit(Dispatch::Connection(ConnectionEvent {
                        state: ConnectionState::ConnectionLost,
                        reason: Some(reason.clone()),
                        session_present: false,
                        broker: Some(endpoint),
                        connack: None,
                        server_disconnect: server_disconnect.map(Arc::new),
                    }));
                    if !self.options.auto_reconnect {
                        self.session.end(&reason, false);
                        self.deliver_events();
                        return false;
                    }
                    self.deliver_events();
                    match self.reconnect(commands).await {
                        Ok(next) => {
                            bump(&self.shared.counters.reconnects, 1);
                            socket = next;
                        }
                        Err(Served::ClientGone) => return true,
                        Err(_) => {
                            self.finish_user_disconnect();
                            return false;
                        }
                    }
                }
            }
        }
    }

    fn finish_user_disconnect(&mut self) {
        self.shared.set_state(State::Idle);
        log!(Level::Info, "disconnected");
        self.shared.emit(Dispatch::Connection(ConnectionEvent {
            state: ConnectionState::Disconnected,
            reason: None,
            session_present: false,
            broker: None,
            connack: None,
            server_disconnect: None,
        }));
        self.deliver_events();
    }

    /// A socket that is gone: what it was still writing never arrived.
    fn abandon(&mut self, mut socket: Socket, reason: &Error) {
        if let Some((transmit, _)) = socket.writing.take() {
            self.unwritten(transmit, reason);
        }
    }

    fn unwritten(&mut self, transmit: Transmit, reason: &Error) {
        self.release(transmit.released);
        for token in transmit.written_tokens {
            self.shared.complete(
                token,
                Err(Error::ConnectionLost(format!(
                    "connection lost before the QoS 0 message was written: {reason}"
                ))),
            );
        }
    }

    /// Backoff, then one round over the brokers from the current one; repeat until connected.
    /// Commands keep flowing into the session meanwhile.
    async fn reconnect(
        &mut self,
        commands: &mut UnboundedReceiver<Command>,
    ) -> std::result::Result<Socket, Served> {
        let mut attempt = 0u32;
        loop {
            let wake = Instant::now() + self.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            loop {
                let expiry = self.session.next_expiry().map(Instant::from_std);
                tokio::select! {
                    _ = sleep_until(wake) => break,
                    _ = sleep_until_opt(expiry) => {
                        self.session.expire_outbox(std::time::Instant::now());
                        self.deliver_events();
                    }
                    command = commands.recv() => {
                        let Some(command) = command else { return Err(Served::ClientGone) };
                        self.command(command);
                        self.deliver_events();
                        if self.session.is_idle() {
                            // The user disconnected while we were away.
                            return Err(Served::UserDisconnect);
                        }
                    }
                }
            }
            let count = self.options.brokers.len();
            let start = self.broker_index;
            for k in 0..count {
                let index = (start + k) % count;
                let deadline = Instant::now() + self.options.connect_timeout;
                match self.connect_to(index, deadline).await {
                    Ok((socket, _)) => return Ok(socket),
                    Err(e) => {
                        let b = &self.options.brokers[index];
                        log!(
                            Level::Warn,
                            "reconnect to {}:{} failed: {}",
                            b.host,
                            b.port,
                            e
                        )
                    }
                }
            }
        }
    }

    async fn serve(
        &mut self,
        socket: &mut Socket,
        commands: &mut UnboundedReceiver<Command>,
    ) -> Served {
        // Packets that arrived in the same segment as CONNACK are already buffered.
        if let Err(e) = self.handle_buffered(socket) {
            return self.close_on_violation(socket, e).await;
        }
        loop {
            self.deliver_events();
            if socket.writing.is_none() {
                socket.writing = self
                    .session
                    .transmit(std::time::Instant::now())
                    .map(|t| (t, 0));
            }
            // Encoding may have completed publishes (expired, or beyond the broker's limits):
            // their tokens hear it now, not at the next wake.
            self.deliver_events();
            if self.session.disconnect_due(std::time::Instant::now()) {
                let written = self.flush_and_close(socket).await;
                self.session.finish_disconnect(written);
                return Served::UserDisconnect;
            }
            // Not reading while the callbacks are behind, or while what we owe the broker
            // cannot be written: either way the broker holds the rest.
            let backlog_full = self.shared.backlog.is_full();
            let paused = backlog_full || self.session.output_is_full();
            // Only the application being behind suspends the PINGRESP deadline: a broker that
            // does not read what we owe it is as dead as one that does not answer.
            self.session
                .set_read_paused(backlog_full, std::time::Instant::now());
            let deadline = match (self.session.next_deadline(), self.session.next_expiry()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(Instant::from_std);
            let wake = {
                let Socket {
                    reader,
                    writer,
                    read_buf,
                    writing,
                    ..
                } = &mut *socket;
                tokio::select! {
                    command = commands.recv() => Wake::Command(command),
                    read = reader.read_buf(read_buf), if !paused => Wake::Read(read),
                    step = write_step(writer, writing), if writing.is_some() => Wake::Wrote(step),
                    _ = sleep_until_opt(deadline) => Wake::Deadline,
                    _ = self.shared.backlog.room(), if backlog_full => Wake::Room,
                    answer = self.auth_answers.recv() => Wake::AuthAnswer(answer),
                }
            };
            match wake {
                Wake::Command(None) => return Served::ClientGone,
                Wake::Command(Some(command)) => {
                    self.command(command);
                    // Drain what is already waiting so that it leaves in one write.
                    for _ in 0..1024 {
                        match commands.try_recv() {
                            Ok(command) => self.command(command),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Read(Ok(0)) => {
                    return Served::Lost(Error::ConnectionLost(format!(
                        "broker {}:{} closed the connection",
                        socket.endpoint.host, socket.endpoint.port
                    )))
                }
                Wake::Read(Ok(n)) => {
                    bump(&self.shared.counters.bytes_in, n as u64);
                    if let Err(e) = self.handle_buffered(socket) {
                        return self.close_on_violation(socket, e).await;
                    }
                }
                Wake::Read(Err(e)) => return Served::Lost(read_error(&e, &socket.endpoint)),
                Wake::Wrote(Err(e)) => return Served::Lost(write_error(&e, &socket.endpoint)),
                Wake::Wrote(Ok(Some(done))) => self.written(done),
                Wake::Wrote(Ok(None)) | Wake::Room | Wake::AuthAnswer(None) => {}
                Wake::AuthAnswer(Some((step, answer))) => {
                    if let Err(e) =
                        self.session
                            .auth_answer(step, answer, std::time::Instant::now())
                    {
                        self.deliver_events();
                        return self.close_on_violation(socket, e).await;
                    }
                }
                Wake::Deadline => {
                    self.session.expire_outbox(std::time::Instant::now());
                    if let Err(e) = self.session.handle_timeout(std::time::Instant::now()) {
                        return Served::Lost(e);
                    }
                }
            }
        }
    }

    /// Decodes and handles every whole packet read so far.
    fn handle_buffered(&mut self, socket: &mut Socket) -> Result<()> {
        loop {
            let codec = self.session.codec();
            match codec.decode(&mut socket.read_buf) {
                Ok(Some(packet)) => self
                    .session
                    .handle_packet(packet, std::time::Instant::now())?,
                Ok(None) => {
                    make_room(&mut socket.read_buf);
                    return Ok(());
                }
                Err(bad) => return Err(self.session.malformed(bad.reason, bad.error)),
            }
        }
    }

    /// The broker broke the protocol: the session encoded a DISCONNECT with the reason (v5);
    /// it gets a short time to leave before the connection closes.
    async fn close_on_violation(&mut self, socket: &mut Socket, error: Error) -> Served {
        let _ = self.flush_and_close(socket).await;
        Served::Lost(error)
    }

    /// Writes everything still pending (a DISCONNECT last), within a bounded time.
    async fn flush_and_close(&mut self, socket: &mut Socket) -> Result<()> {
        let shared = self.shared.clone();
        let deadline = Instant::now() + CLOSE_WRITE_TIMEOUT;
        // What is left of a transmit already partly written, then what is still unsent.
        let mut pending: Vec<Transmit> =
            socket.writing.take().map(|(t, _)| t).into_iter().collect();
        pending.extend(self.session.transmit(std::time::Instant::now()));
        let mut result = Ok(());
        for transmit in pending {
            if result.is_err() {
                self.unwritten(transmit, &Error::Disconnected("not written".into()));
                continue;
            }
            let released = transmit.released;
            let tokens = transmit.written_tokens.clone();
            match timeout_at(deadline, write_all(socket, transmit, &shared)).await {
                Ok(Ok(())) => {
                    self.release(released);
                    shared.complete_all_ok(&tokens);
                }
                Ok(Err(e)) => {
                    result = Err(e);
                }
                Err(_) => {
                    result = Err(Error::Timeout(format!(
                        "DISCONNECT could not be sent to {}:{} within {} ms (the broker is not reading)",
                        socket.endpoint.host,
                        socket.endpoint.port,
                        CLOSE_WRITE_TIMEOUT.as_millis()
                    )));
                }
            }
        }
        let _ = timeout_at(deadline, socket.writer.shutdown()).await;
        result
    }

    fn written(&mut self, (done, written): (Transmit, usize)) {
        bump(&self.shared.counters.bytes_out, written as u64);
        self.release(done.released);
        self.shared.complete_all_ok(&done.written_tokens);
    }

    fn release(&self, (messages, bytes): (u64, u64)) {
        let counters = &self.shared.counters;
        counters.queued.fetch_sub(messages, Ordering::AcqRel);
        counters.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Publish(queued) => self.session.publish(queued),
            Command::Subscribe {
                filters,
                user_properties,
                reply,
            } => self
                .session
                .subscribe_with(filters, user_properties, Waiter::Subscribe(reply)),
            Command::Unsubscribe {
                filters,
                user_properties,
                reply,
            } => {
                self.session
                    .unsubscribe_with(filters, user_properties, Waiter::Unsubscribe(reply))
            }
            Command::Disconnect {
                timeout,
                request,
                reply,
            } => {
                let deadline = std::time::Instant::now() + timeout;
                self.session
                    .disconnect_with(deadline, request, Waiter::Disconnect(reply));
            }
            Command::Connect { reply, .. } => {
                let _ = reply.try_send(Err(Error::InvalidState(
                    if self.session.is_connected() {
                        "the client is already connected"
                    } else {
                        "the client is already connecting"
                    }
                    .into(),
                )));
            }
            Command::Ack(ticket) => self.session.acknowledge(ticket),
            Command::Reauthenticate {
                data,
                timeout,
                reply,
            } => {
                let deadline = std::time::Instant::now() + timeout;
                self.session
                    .reauthenticate(data, deadline, Waiter::Reauthenticate(reply));
            }
        }
    }

    /// Hands the session's events on: tokens, waiters, the dispatcher.
    fn deliver_events(&mut self) {
        let (messages, bytes) = self.session.take_queue_delta();
        let counters = &self.shared.counters;
        if messages != 0 || bytes != 0 {
            counters.queued.fetch_add(messages as u64, Ordering::AcqRel);
            counters
                .queued_bytes
                .fetch_add(bytes as u64, Ordering::AcqRel);
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connected { .. } => {}
                Event::Message(message, ticket) => {
                    bump(&counters.received, 1);
                    self.shared
                        .backlog
                        .add(message.payload.len() + message.topic.len());
                    self.shared.emit(Dispatch::Message(message, ticket));
                }
                Event::Completed(token, result, detail) => {
                    self.shared.complete_with(token, result, detail)
                }
                Event::Reply(waiter, outcome) => waiter.answer(outcome),
                Event::AuthChallenge(challenge) => self.shared.emit(Dispatch::Auth(challenge)),
            }
        }
    }

    /// The handle checks publishes against the current broker's limits before queueing.
    fn publish_limits(&self) {
        self.shared
            .set_broker_limits(&self.session.limits(), self.session.max_outgoing_packet());
    }
}

/// The broker says only "not authorized" / "bad user name or password"; add what we sent, so
/// that the message names the likely cause.
/// How many CONNACK redirects one connection attempt follows.
const MAX_REDIRECTS: usize = 5;

/// The first entry of a Server Reference ("host[:port]", space-separated list); the port
/// and TLS of `current` when it names none.
fn redirect_target(reference: &str, current: &Endpoint) -> Option<Endpoint> {
    let first = reference.split_whitespace().next()?;
    let (host, port) = match first.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.starts_with('[') => (
            host.trim_start_matches('[').trim_end_matches(']'),
            port.parse().ok()?,
        ),
        _ => (first, current.port),
    };
    if host.is_empty() || port == 0 {
        return None;
    }
    Some(Endpoint {
        host: host.to_string(),
        port,
        ..current.clone()
    })
}

fn explain_refusal(refusal: Error, options: &Options) -> Error {
    let context = match &options.username {
        Some(user) => format!(
            " (user '{user}': the user name or password is wrong, or the user may not connect)"
        ),
        None => " (no user name was sent: the broker requires authentication)".to_string(),
    };
    match refusal {
        Error::NotAuthorized(m) => Error::NotAuthorized(m + &context),
        Error::BadCredentials(m) => Error::BadCredentials(m + &context),
        other => other,
    }
}

fn read_error(e: &std::io::Error, endpoint: &Endpoint) -> Error {
    tls::classify_io(e, &endpoint.host).unwrap_or_else(|| {
        Error::ConnectionLost(format!(
            "connection to {}:{} lost: {e}",
            endpoint.host, endpoint.port
        ))
    })
}

fn write_error(e: &std::io::Error, endpoint: &Endpoint) -> Error {
    tls::classify_io(e, &endpoint.host).unwrap_or_else(|| {
        Error::ConnectionLost(format!(
            "write to {}:{} failed: {e}",
            endpoint.host, endpoint.port
        ))
    })
}

/// One write (or the final flush) of the transmit in progress; `Some` once it is all out.
/// Each call awaits one cancel-safe operation, so `select!` may drop it at any point.
async fn write_step(
    writer: &mut WriteHalf<Stream>,
    writing: &mut Option<(Transmit, usize)>,
) -> std::io::Result<Option<(Transmit, usize)>> {
    let Some((transmit, written)) = writing else {
        return Ok(None);
    };
    if !transmit.bytes.is_empty() {
        *written += write_some(writer, &mut transmit.bytes).await?;
        return Ok(None);
    }
    writer.flush().await?;
    Ok(writing.take())
}

/// One vectored write of the next parts of `out`; drops what it wrote.
async fn write_some(writer: &mut WriteHalf<Stream>, out: &mut OutBuf) -> std::io::Result<usize> {
    let n = {
        let mut slices = [std::io::IoSlice::new(&[]); outbuf::MAX_SLICES];
        let filled = out.io_slices(&mut slices);
        writer.write_vectored(&slices[..filled]).await?
    };
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    out.advance(n);
    Ok(n)
}

async fn write_all(socket: &mut Socket, mut transmit: Transmit, shared: &Shared) -> Result<()> {
    let result = async {
        let mut written = 0;
        while !transmit.bytes.is_empty() {
            written += write_some(&mut socket.writer, &mut transmit.bytes).await?;
        }
        socket.writer.flush().await.map(|()| written)
    }
    .await;
    let written = result.map_err(|e| write_error(&e, &socket.endpoint))?;
    bump(&shared.counters.bytes_out, written as u64);
    Ok(())
}

/// Room for the next read, once what was read is decoded: a fresh chunk when the current one
/// is used up. Received payloads share the chunk they arrived in, so the chunk is released
/// when they are; `BytesMut::reserve` would instead count their space and double the buffer,
/// without bound, letting one read take megabytes past the inbound bound. Only the partial
/// packet left over is copied; one larger than a chunk grows by doubling.
fn make_room(read_buf: &mut BytesMut) {
    if read_buf.capacity() - read_buf.len() >= 1024 {
        return;
    }
    let mut fresh = BytesMut::with_capacity(READ_CHUNK.max(2 * read_buf.len()));
    fresh.extend_from_slice(read_buf);
    *read_buf = fresh;
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> Endpoint {
        Endpoint::tcp("a", 1883, true)
    }

    #[test]
    fn redirect_target_takes_the_first_reference_and_defaults_the_port() {
        let t = redirect_target("b:1884 c:1885", &current()).expect("target");
        assert_eq!((t.host.as_str(), t.port, t.tls), ("b", 1884, true));
        let t = redirect_target("b", &current()).expect("target");
        assert_eq!((t.host.as_str(), t.port), ("b", 1883));
        let t = redirect_target("[::1]:1999", &current()).expect("target");
        assert_eq!((t.host.as_str(), t.port), ("::1", 1999));
        assert!(redirect_target("", &current()).is_none());
        assert!(redirect_target("b:notaport", &current()).is_none());
        assert!(redirect_target("b:0", &current()).is_none());
    }
}
