//! One live connection to a broker: the CONNECT/CONNACK handshake, the read side the engine
//! polls, and a writer task that sends every ready packet in one buffer with one write.
//! Also keep-alive timing, broker limits (v5) and inbound topic aliases of this connection.

use crate::core::error::{Error, Result};
use crate::core::tls;
use crate::core::tokens::Token;
use crate::core::transport::{self, Stream};
use crate::mqtt::options::{Endpoint, Options, Will};
use crate::mqtt::shared::{bump, Shared};
use crate::mqtt::wire::{Codec, InPublish, Incoming, OutPublish};
use bytes::BytesMut;
use rumqttc::tokio_rustls::TlsConnector;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

const READ_CHUNK: usize = 64 * 1024;
/// Upper bound for one coalesced write, so one write never holds megabytes hostage.
const MAX_WRITE: usize = 4 * 1024 * 1024;

/// Packets encoded during one step of the engine, flushed together.
pub struct Output {
    codec: Codec,
    buf: BytesMut,
    /// QoS 0 publishes in `buf`: complete once written.
    pub written_tokens: Vec<Token>,
}

impl Output {
    pub fn publish_size(&self, message: &OutPublish) -> usize {
        self.codec.publish_size(
            message.topic.len(),
            message.payload.len(),
            message.qos,
            message.properties.as_deref(),
        )
    }
    pub fn publish(&mut self, message: &OutPublish, pkid: u16, dup: bool) -> Result<()> {
        self.codec.publish(message, pkid, dup, &mut self.buf)
    }
    pub fn puback(&mut self, pkid: u16) -> Result<()> {
        self.codec.puback(pkid, &mut self.buf)
    }
    pub fn pubrec(&mut self, pkid: u16) -> Result<()> {
        self.codec.pubrec(pkid, &mut self.buf)
    }
    pub fn pubrel(&mut self, pkid: u16) -> Result<()> {
        self.codec.pubrel(pkid, &mut self.buf)
    }
    pub fn pubcomp(&mut self, pkid: u16) -> Result<()> {
        self.codec.pubcomp(pkid, &mut self.buf)
    }
    pub fn subscribe(&mut self, pkid: u16, filter: &str, qos: u8) -> Result<()> {
        self.codec
            .subscribe(pkid, &[(filter.to_string(), qos)], &mut self.buf)
    }
    pub fn unsubscribe(&mut self, pkid: u16, filter: &str) -> Result<()> {
        self.codec.unsubscribe(pkid, filter, &mut self.buf)
    }
}

struct Chunk {
    bytes: BytesMut,
    written_tokens: Vec<Token>,
}

pub struct Connection {
    pub broker: Endpoint,
    pub session_present: bool,
    codec: Codec,
    shared: Arc<Shared>,
    reader: ReadHalf<Stream>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    written_tokens: Vec<Token>,
    writer: Option<mpsc::UnboundedSender<Chunk>>,
    writer_task: JoinHandle<()>,
    writer_error: oneshot::Receiver<Error>,
    writer_done: bool,
    keep_alive: Duration,
    last_sent: Instant,
    last_received: Instant,
    ping_sent: Option<Instant>,
    broker_max_packet: Option<u32>,
    own_max_packet: u32,
    receive_maximum: Option<u16>,
    aliases: HashMap<u16, String>,
}

/// Everything the handshake needs from the engine, borrowed.
pub struct Handshake<'a> {
    pub options: &'a Options,
    pub client_id: &'a str,
    pub will: Option<&'a Will>,
    pub tls: Option<&'a TlsConnector>,
}

impl Handshake<'_> {
    /// Connects, sends CONNECT and waits for CONNACK, all before `deadline`.
    pub async fn run(
        &self,
        broker: &Endpoint,
        deadline: Instant,
        shared: &Arc<Shared>,
    ) -> Result<Connection> {
        let tls = if broker.tls {
            Some(self.tls.ok_or_else(|| {
                Error::TlsConfig(format!(
                    "broker {}:{} needs TLS but no TLS options are set",
                    broker.host, broker.port
                ))
            })?)
        } else {
            None
        };
        let mut stream = transport::open(broker, tls, deadline).await?;
        let codec = Codec::new(self.options);
        let name = format!("{}:{}", broker.host, broker.port);
        let stream_error = |e: std::io::Error| {
            tls::classify_io(&e, &broker.host).unwrap_or_else(|| {
                Error::ConnectionLost(format!("connection to {name} failed: {e}"))
            })
        };
        let timed_out = || Error::Timeout(format!("timed out waiting for CONNACK from {name}"));

        let mut buf = BytesMut::new();
        codec.connect(self.options, self.client_id, self.will, &mut buf)?;
        timeout_at(deadline, stream.write_all(&buf))
            .await
            .map_err(|_| timed_out())?
            .map_err(stream_error)?;
        timeout_at(deadline, stream.flush())
            .await
            .map_err(|_| timed_out())?
            .map_err(stream_error)?;
        bump(&shared.counters.bytes_out, buf.len() as u64);

        let mut read_buf = BytesMut::with_capacity(READ_CHUNK);
        let ack = loop {
            match codec.decode(&mut read_buf)? {
                Some(Incoming::ConnAck(ack)) => break ack,
                Some(other) => {
                    return Err(Error::Protocol(format!(
                        "expected CONNACK from {name}, got {other:?}"
                    )))
                }
                None => {
                    let n = timeout_at(deadline, stream.read_buf(&mut read_buf))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(stream_error)?;
                    if n == 0 {
                        return Err(Error::ConnectionLost(format!(
                            "{name} closed the connection before sending CONNACK"
                        )));
                    }
                    bump(&shared.counters.bytes_in, n as u64);
                }
            }
        };
        if let Some(refusal) = ack.refusal {
            return Err(explain_refusal(refusal, self.options));
        }
        shared.broker_max_packet.store(
            ack.max_packet_size.unwrap_or(0) as u64,
            std::sync::atomic::Ordering::Release,
        );
        let keep_alive = match ack.server_keep_alive {
            Some(seconds) => Duration::from_secs(seconds as u64),
            None => self.options.keep_alive,
        };
        let (reader, writer_half) = tokio::io::split(stream);
        let (writer, chunks) = mpsc::unbounded_channel();
        let (error_tx, writer_error) = oneshot::channel();
        let writer_task = tokio::spawn(write_loop(
            writer_half,
            chunks,
            shared.clone(),
            error_tx,
            broker.host.clone(),
        ));
        let now = Instant::now();
        Ok(Connection {
            broker: broker.clone(),
            session_present: ack.session_present,
            codec,
            shared: shared.clone(),
            reader,
            read_buf,
            write_buf: BytesMut::with_capacity(READ_CHUNK),
            written_tokens: Vec::new(),
            writer: Some(writer),
            writer_task,
            writer_error,
            writer_done: false,
            keep_alive,
            last_sent: now,
            last_received: now,
            ping_sent: None,
            broker_max_packet: ack.max_packet_size,
            own_max_packet: self.options.max_packet_size,
            receive_maximum: ack.receive_maximum,
            aliases: HashMap::new(),
        })
    }
}

/// The broker says only "not authorized" / "bad user name or password"; add what we sent, so
/// that the message names the likely cause.
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

impl Connection {
    pub fn output(&mut self) -> Output {
        Output {
            codec: self.codec,
            buf: std::mem::take(&mut self.write_buf),
            written_tokens: std::mem::take(&mut self.written_tokens),
        }
    }

    pub fn commit(&mut self, output: Output) {
        self.write_buf = output.buf;
        self.written_tokens = output.written_tokens;
    }

    /// Hands everything encoded so far to the writer task as one chunk.
    pub fn flush(&mut self) {
        if self.write_buf.is_empty() {
            return;
        }
        let chunk = Chunk {
            bytes: self.write_buf.split(),
            written_tokens: std::mem::take(&mut self.written_tokens),
        };
        if let Some(writer) = &self.writer {
            // A closed writer has reported its error through `writer_failed`.
            let _ = writer.send(chunk);
        }
        self.last_sent = Instant::now();
    }

    /// Reads what the broker sent; also returns the writer's error if writing failed first.
    pub async fn read(&mut self) -> Result<()> {
        self.read_buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            read = self.reader.read_buf(&mut self.read_buf) => read,
            failure = &mut self.writer_error, if !self.writer_done => match failure {
                Ok(error) => return Err(error),
                // The writer ended without an error (we closed it): keep reading.
                Err(_) => {
                    self.writer_done = true;
                    return Ok(());
                }
            },
        };
        match read {
            Ok(0) => Err(Error::ConnectionLost(format!(
                "broker {}:{} closed the connection",
                self.broker.host, self.broker.port
            ))),
            Ok(n) => {
                bump(&self.shared.counters.bytes_in, n as u64);
                self.last_received = Instant::now();
                Ok(())
            }
            Err(e) => Err(tls::classify_io(&e, &self.broker.host).unwrap_or_else(|| {
                Error::ConnectionLost(format!(
                    "connection to {}:{} lost: {e}",
                    self.broker.host, self.broker.port
                ))
            })),
        }
    }

    pub fn decode(&mut self) -> Result<Option<Incoming>> {
        self.codec.decode(&mut self.read_buf)
    }

    /// When the keep-alive logic next needs to look; far away when keep-alive is off.
    pub fn next_keepalive_check(&self) -> Instant {
        if self.keep_alive.is_zero() {
            return Instant::now() + Duration::from_secs(86_400);
        }
        match self.ping_sent {
            Some(sent) => sent + self.keep_alive / 2,
            None => self.last_sent.min(self.last_received) + self.keep_alive,
        }
    }

    /// Sends PINGREQ after a keep-alive period of silence in either direction; declares the
    /// connection dead when the PINGRESP is half a period late (1.5 x keep-alive in all).
    pub fn keepalive(&mut self) -> Result<()> {
        if self.keep_alive.is_zero() {
            return Ok(());
        }
        let now = Instant::now();
        match self.ping_sent {
            Some(sent) if now >= sent + self.keep_alive / 2 => Err(Error::ConnectionLost(format!(
                "broker {}:{} stopped answering (no PINGRESP within {} ms)",
                self.broker.host,
                self.broker.port,
                (self.keep_alive / 2).as_millis()
            ))),
            Some(_) => Ok(()),
            None => {
                if now >= self.last_sent.min(self.last_received) + self.keep_alive {
                    self.codec.pingreq(&mut self.write_buf);
                    self.ping_sent = Some(now);
                    self.flush();
                }
                Ok(())
            }
        }
    }

    pub fn ping_answered(&mut self) {
        self.ping_sent = None;
    }

    pub fn window(&self, configured: u16) -> u16 {
        match self.receive_maximum {
            Some(broker) => configured.min(broker.max(1)),
            None => configured,
        }
    }

    pub fn max_outgoing_packet(&self) -> usize {
        let broker = self.broker_max_packet.unwrap_or(u32::MAX);
        broker.min(self.own_max_packet) as usize
    }

    /// v5 topic aliases: remember alias -> topic, and fill in the topic of alias-only publishes.
    pub fn resolve_alias(
        &mut self,
        mut publish: InPublish,
        alias: Option<u16>,
    ) -> Result<InPublish> {
        let Some(alias) = alias else {
            return Ok(publish);
        };
        if publish.topic.is_empty() {
            publish.topic = self.aliases.get(&alias).cloned().ok_or_else(|| {
                Error::Protocol(format!("broker used unknown topic alias {alias}"))
            })?;
        } else {
            self.aliases.insert(alias, publish.topic.clone());
        }
        Ok(publish)
    }

    pub fn send_disconnect(&mut self) {
        self.codec.disconnect(&mut self.write_buf);
        self.flush();
    }

    /// Lets the writer send what it holds (DISCONNECT last), then closes.
    pub async fn close_gracefully(&mut self) {
        self.flush();
        self.writer = None;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.writer_task).await;
    }

    pub fn abort(&mut self) {
        self.writer = None;
        self.writer_task.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.writer_task.abort();
    }
}

/// Fails the QoS 0 tokens of chunks that never reached the socket, however the writer ends.
struct Unwritten {
    chunks: mpsc::UnboundedReceiver<Chunk>,
    tokens: Vec<Token>,
    shared: Arc<Shared>,
}

impl Drop for Unwritten {
    fn drop(&mut self) {
        self.chunks.close();
        while let Ok(chunk) = self.chunks.try_recv() {
            self.tokens.extend(chunk.written_tokens);
        }
        for token in self.tokens.drain(..) {
            self.shared.complete(
                token,
                Err(Error::ConnectionLost(
                    "connection lost before the QoS 0 message was written".into(),
                )),
            );
        }
    }
}

async fn write_loop(
    mut writer: WriteHalf<Stream>,
    chunks: mpsc::UnboundedReceiver<Chunk>,
    shared: Arc<Shared>,
    failed: oneshot::Sender<Error>,
    host: String,
) {
    let mut pending = Unwritten {
        chunks,
        tokens: Vec::new(),
        shared: shared.clone(),
    };
    while let Some(first) = pending.chunks.recv().await {
        let mut bytes = first.bytes;
        pending.tokens.extend(first.written_tokens);
        while bytes.len() < MAX_WRITE {
            match pending.chunks.try_recv() {
                Ok(more) => {
                    bytes.extend_from_slice(&more.bytes);
                    pending.tokens.extend(more.written_tokens);
                }
                Err(_) => break,
            }
        }
        let written = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        }
        .await;
        if let Err(e) = written {
            let error = tls::classify_io(&e, &host)
                .unwrap_or_else(|| Error::ConnectionLost(format!("write to {host} failed: {e}")));
            let _ = failed.send(error);
            return;
        }
        bump(&shared.counters.bytes_out, bytes.len() as u64);
        let tokens = std::mem::take(&mut pending.tokens);
        shared.complete_all_ok(&tokens);
    }
    let _ = writer.shutdown().await;
}
