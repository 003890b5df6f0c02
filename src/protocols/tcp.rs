//! TCP request/response: a client that connects (plain or TLS, through the core's transport),
//! sends and receives messages in one of the framing modes, and optionally reconnects with the
//! core's backoff when the connection was lost. Blocking calls, run on the library's runtime.
//!
//! Receiving is bounded: at most the maximum frame size is buffered, whatever the peer sends.
//!
//! Reconnect semantics (with `auto_reconnect`): before writing, a connection the peer closed or
//! reset while it was idle is noticed (one read that does not wait) and reopened, so the call
//! goes out on a live connection. A `request` whose connection breaks while writing, or closes
//! before any byte of its answer arrived, is sent once more on a new connection: delivery is
//! at least once, a server that had processed the first copy before the cut sees it twice.
//! `send` and `receive` are never retried.

use crate::core::backoff::Backoff;
use crate::core::connection_events::{ConnectionEventHandler, ConnectionEvents};
use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::tls::{self, TlsOptions};
use crate::core::{runtime, transport};
use crate::protocol::{BaseProtocol, ReqResProtocol};
use crate::protocols::framing::Framing;
use crate::protocols::registry::{Protocol, ProtocolOptions};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::time::{timeout_at, Instant};

/// The default and the largest maximum frame size (16 MiB and 256 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
pub const LARGEST_MAX_FRAME: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    pub host: String,
    pub port: u16,
    /// TLS settings; `None` is plain TCP.
    pub tls: Option<TlsOptions>,
    pub connect_timeout: Duration,
    /// Reconnect (with backoff, within the call's timeout) when a call finds the connection lost.
    pub auto_reconnect: bool,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub framing: Framing,
    /// The largest message accepted in either direction (framed modes), and the most bytes one
    /// raw receive returns.
    pub max_frame: usize,
}

impl TcpOptions {
    pub fn new(host: &str, port: u16) -> TcpOptions {
        TcpOptions {
            host: host.to_owned(),
            port,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            auto_reconnect: false,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            framing: Framing::Raw,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// Everything a client needs: an endpoint and consistent limits.
    pub fn check(&self) -> Result<()> {
        if self.host.is_empty() {
            return Err(Error::InvalidArgument("the TCP host is empty".into()));
        }
        if self.port == 0 {
            return Err(Error::InvalidArgument("the TCP port is 0".into()));
        }
        self.check_limits()
    }

    /// The limits and delays alone (options may be set before the endpoint is).
    pub fn check_limits(&self) -> Result<()> {
        if self.max_frame == 0 || self.max_frame > LARGEST_MAX_FRAME {
            return Err(Error::InvalidArgument(format!(
                "maximum frame size {} is outside 1..{LARGEST_MAX_FRAME}",
                self.max_frame
            )));
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err(Error::InvalidArgument(
                "reconnect delays must satisfy 0 < min <= max".into(),
            ));
        }
        Ok(())
    }
}

/// Counters since the client was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// `request` calls, and those of them that failed (timeouts included) or timed out.
    pub requests: u64,
    pub failures: u64,
    pub timeouts: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Connections opened after the first one.
    pub reconnects: u64,
    /// Requests sent a second time, on a new connection, because the first one broke before
    /// any byte of the answer arrived.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    connects: AtomicU64,
    retries: AtomicU64,
}

type Stream = transport::Stream;

struct Reader {
    half: ReadHalf<Stream>,
    buffer: Vec<u8>,
    /// A frame received but too large for the caller's buffer: returned by the next receive.
    pending: Option<Vec<u8>>,
}

pub struct TcpClient {
    options: TcpOptions,
    connector: Option<tls::Connector>,
    reader: Mutex<Option<Reader>>,
    writer: Mutex<Option<WriteHalf<Stream>>>,
    /// Held by `request` so that its send and its receive are one exchange.
    exchange: Mutex<()>,
    connected: AtomicBool,
    /// Set by `connect`, cleared by `disconnect`: whether a lost connection may be reopened.
    wanted: AtomicBool,
    counters: Counters,
    backoff: Mutex<Backoff>,
    events: ConnectionEvents,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn deadline_after(timeout: Duration) -> Instant {
    Instant::now() + timeout.min(Duration::from_secs(365 * 24 * 3600))
}

impl TcpClient {
    pub fn new(options: TcpOptions) -> Result<TcpClient> {
        options.check()?;
        let connector = options.tls.as_ref().map(tls::connector).transpose()?;
        let seed = std::process::id() as u64 ^ (options.port as u64) << 32;
        Ok(TcpClient {
            backoff: Mutex::new(Backoff::new(
                options.reconnect_min,
                options.reconnect_max,
                seed,
            )),
            options,
            connector,
            reader: Mutex::new(None),
            writer: Mutex::new(None),
            exchange: Mutex::new(()),
            connected: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            counters: Counters::default(),
            events: ConnectionEvents::new("tcp"),
        })
    }

    /// Connection events (connected, lost, reconnected, disconnected) go to `handler` on the
    /// client's dispatcher thread.
    pub fn set_connection_handler(&self, handler: Option<ConnectionEventHandler>) -> Result<()> {
        self.events.set_handler(handler)
    }

    pub fn events(&self) -> &ConnectionEvents {
        &self.events
    }

    pub fn options(&self) -> &TcpOptions {
        &self.options
    }

    fn name(&self) -> String {
        format!("{}:{}", self.options.host, self.options.port)
    }

    pub fn stats(&self) -> TcpStats {
        let c = &self.counters;
        TcpStats {
            requests: c.requests.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            reconnects: c.connects.load(Ordering::Relaxed).saturating_sub(1),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Opens a new connection, replacing the current one.
    fn open(&self, deadline: Instant) -> Result<()> {
        let endpoint = transport::Endpoint::tcp(
            &self.options.host,
            self.options.port,
            self.options.tls.is_some(),
        );
        let connect_deadline = deadline.min(Instant::now() + self.options.connect_timeout);
        let stream = runtime::get()?.block_on(transport::open(
            &endpoint,
            self.connector.as_ref(),
            &transport::TransportOptions::default(),
            connect_deadline,
        ))?;
        let (read, write) = tokio::io::split(stream);
        let mut reader = lock(&self.reader);
        let mut writer = lock(&self.writer);
        *reader = Some(Reader {
            half: read,
            buffer: Vec::new(),
            pending: None,
        });
        *writer = Some(write);
        self.connected.store(true, Ordering::Release);
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        log!(Level::Info, "tcp: connected to {}", self.name());
        Ok(())
    }

    /// Marks the connection lost (its halves are dropped by the next `open` or `disconnect`).
    fn lose(&self, why: Error) {
        if self.connected.swap(false, Ordering::AcqRel) {
            log!(
                Level::Warn,
                "tcp: connection to {} lost: {}",
                self.name(),
                why.message()
            );
            self.events.sender().lost(&why);
        }
    }

    fn lost_error(&self, why: &str) -> Error {
        Error::ConnectionLost(format!("connection to {} lost: {why}", self.name()))
    }

    /// Whether a lost connection may be reopened by the call that finds it lost.
    fn may_reconnect(&self) -> bool {
        self.options.auto_reconnect && self.wanted.load(Ordering::Acquire)
    }

    /// Why the idle connection is known dead (the peer's FIN, RST or TLS close_notify is
    /// waiting on it), or `None` when it looks alive. Reads without waiting; bytes that arrived
    /// meanwhile are kept for the next receive. Skipped while another thread is receiving (that
    /// receive sees the loss itself).
    fn idle_connection_dead(&self) -> Option<String> {
        if !self.connected.load(Ordering::Acquire) {
            return None;
        }
        let mut guard = match self.reader.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let reader = guard.as_mut()?;
        let runtime = runtime::get().ok()?;
        let limit = self.options.framing.buffer_limit(self.options.max_frame);
        let mut chunk = [0u8; 4096];
        while reader.buffer.len() < limit {
            let room = (limit - reader.buffer.len()).min(chunk.len());
            let polled = runtime.block_on(std::future::poll_fn(|cx| {
                let mut buf = ReadBuf::new(&mut chunk[..room]);
                Poll::Ready(match Pin::new(&mut reader.half).poll_read(cx, &mut buf) {
                    Poll::Pending => None,
                    Poll::Ready(result) => Some(result.map(|()| buf.filled().len())),
                })
            }));
            match polled {
                None => return None,
                Some(Ok(0)) => return Some("closed by the peer while idle".into()),
                Some(Ok(n)) => {
                    self.counters
                        .bytes_received
                        .fetch_add(n as u64, Ordering::Relaxed);
                    reader.buffer.extend_from_slice(&chunk[..n]);
                }
                Some(Err(e)) => return Some(format!("{e} (while idle)")),
            }
        }
        None
    }

    /// Connected, or reconnected within `deadline` when allowed.
    fn ensure_connected(&self, deadline: Instant) -> Result<()> {
        if self.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.may_reconnect() {
            return Err(Error::NotConnected(format!(
                "not connected to {}",
                self.name()
            )));
        }
        let mut attempt = 0;
        loop {
            match self.open(deadline) {
                Ok(()) => {
                    self.events.sender().reopened();
                    return Ok(());
                }
                Err(e @ Error::Timeout(_)) => return Err(e),
                Err(e) => {
                    let delay = lock(&self.backoff).delay(attempt);
                    attempt = attempt.saturating_add(1);
                    if Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    log!(
                        Level::Info,
                        "tcp: reconnecting to {} in {delay:?}: {}",
                        self.name(),
                        e.message()
                    );
                    std::thread::sleep(delay);
                }
            }
        }
    }

    fn write_all(&self, data: &[u8], deadline: Instant) -> Result<()> {
        let frame = self.options.framing.encode(data, self.options.max_frame)?;
        if let Some(why) = self.idle_connection_dead() {
            self.lose(self.lost_error(&why));
            if !self.may_reconnect() {
                return Err(Error::ConnectionLost(format!(
                    "connection to {} lost: {why}",
                    self.name()
                )));
            }
        }
        self.ensure_connected(deadline)?;
        let mut writer = lock(&self.writer);
        let half = writer
            .as_mut()
            .ok_or_else(|| Error::NotConnected(format!("not connected to {}", self.name())))?;
        let result = runtime::get()?.block_on(async {
            timeout_at(deadline, async {
                half.write_all(&frame).await?;
                half.flush().await
            })
            .await
        });
        match result {
            Err(_) => {
                // Part of a frame may be out: the stream is no longer in step.
                let error = Error::Timeout(format!("timed out sending to {}", self.name()));
                self.lose(error.clone());
                Err(error)
            }
            Ok(Err(e)) => {
                let error = self.lost_error(&format!("{e} (while sending)"));
                self.lose(error.clone());
                Err(error)
            }
            Ok(Ok(())) => {
                self.counters
                    .bytes_sent
                    .fetch_add(frame.len() as u64, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Reads one message. `answered` becomes true once any byte of it is buffered (a request
    /// that breaks after that point is not sent again).
    fn read_message(
        &self,
        max_len: usize,
        deadline: Instant,
        answered: &mut bool,
    ) -> Result<Vec<u8>> {
        if max_len == 0 {
            return Err(Error::InvalidArgument("receive of at most 0 bytes".into()));
        }
        let mut guard = lock(&self.reader);
        if let Some(pending) = guard.as_mut().and_then(|r| r.pending.take()) {
            return self.hand_out(guard.as_mut(), pending, max_len);
        }
        if !self.connected.load(Ordering::Acquire) {
            drop(guard);
            self.ensure_connected(deadline)?;
            guard = lock(&self.reader);
        }
        let reader = guard
            .as_mut()
            .ok_or_else(|| Error::NotConnected(format!("not connected to {}", self.name())))?;
        *answered = !reader.buffer.is_empty();
        let framing = &self.options.framing;
        let max_frame = match framing {
            Framing::Raw => max_len.min(self.options.max_frame),
            _ => self.options.max_frame,
        };
        let limit = framing.buffer_limit(max_frame);
        let runtime = runtime::get()?;
        loop {
            match framing.decode(&mut reader.buffer, max_frame) {
                Ok(Some(message)) => return self.hand_out(Some(reader), message, max_len),
                Ok(None) => {}
                Err(e) => {
                    self.lose(e.clone());
                    return Err(e);
                }
            }
            let room = limit
                .saturating_sub(reader.buffer.len())
                .clamp(1, 64 * 1024);
            let mut chunk = vec![0u8; room];
            // The timer is made inside block_on: it needs the runtime's context.
            let read = runtime
                .block_on(async { timeout_at(deadline, reader.half.read(&mut chunk)).await });
            match read {
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "timed out receiving from {}",
                        self.name()
                    )))
                }
                Ok(Ok(0)) => {
                    let error =
                        Error::ConnectionLost(format!("connection closed by {}", self.name()));
                    self.lose(error.clone());
                    return Err(error);
                }
                Ok(Ok(n)) => {
                    self.counters
                        .bytes_received
                        .fetch_add(n as u64, Ordering::Relaxed);
                    reader.buffer.extend_from_slice(&chunk[..n]);
                    *answered = true;
                }
                Ok(Err(e)) => {
                    let error = self.lost_error(&format!("{e} (while receiving)"));
                    self.lose(error.clone());
                    return Err(error);
                }
            }
        }
    }

    /// Returns `message`, or keeps it for the next receive when the caller's buffer is smaller.
    fn hand_out(
        &self,
        reader: Option<&mut Reader>,
        message: Vec<u8>,
        max_len: usize,
    ) -> Result<Vec<u8>> {
        if message.len() <= max_len {
            return Ok(message);
        }
        let len = message.len();
        if let Some(reader) = reader {
            reader.pending = Some(message);
        }
        Err(Error::PayloadTooLarge(format!(
            "the next message has {len} bytes, more than the {max_len} asked for (it is kept for the next receive)"
        )))
    }

    /// Sends one message (framed per the options).
    pub fn send(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.write_all(data, deadline_after(timeout))
    }

    /// Receives one message (framed), or up to `max_len` bytes (raw).
    pub fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        self.read_message(max_len, deadline_after(timeout), &mut false)
    }

    /// Sends `data` and receives one message as its answer, within `timeout`. After a timed-out
    /// request the connection is closed: its late answer would be taken for the next one's.
    /// With automatic reconnect, a request whose connection broke while writing or before any
    /// byte of its answer arrived is sent once more on a new connection (at least once: the
    /// server may see it twice).
    pub fn request(&self, data: &[u8], max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let _exchange = lock(&self.exchange);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let deadline = deadline_after(timeout);
        let exchange = |answered: &mut bool| {
            self.write_all(data, deadline)
                .and_then(|()| self.read_message(max_len, deadline, answered))
        };
        let mut answered = false;
        let mut result = exchange(&mut answered);
        if let Err(Error::ConnectionLost(why)) = &result {
            if !answered && self.may_reconnect() {
                log!(
                    Level::Info,
                    "tcp: sending the request to {} again on a new connection: {why}",
                    self.name()
                );
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                result = exchange(&mut answered);
            }
        }
        if let Err(e) = &result {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            if matches!(e, Error::Timeout(_)) {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                self.lose(e.clone());
            }
        }
        result
    }

    pub fn connect(&self, timeout: Duration) -> Result<()> {
        self.wanted.store(true, Ordering::Release);
        self.open(deadline_after(timeout))?;
        self.events.sender().connected();
        Ok(())
    }

    pub fn disconnect(&self) -> Result<()> {
        let wanted = self.wanted.swap(false, Ordering::AcqRel);
        let was_connected = self.connected.swap(false, Ordering::AcqRel);
        if wanted || was_connected {
            self.events.sender().disconnected();
        }
        let reader = lock(&self.reader).take();
        let writer = lock(&self.writer).take();
        if let Some(mut writer) = writer {
            // A polite close; the peer may be gone already.
            let _ = runtime::get()?.block_on(async {
                tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await
            });
        }
        drop(reader);
        Ok(())
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        // The halves hold tokio I/O: drop them inside the runtime's context.
        if let Ok(runtime) = runtime::get() {
            let _guard = runtime.enter();
            lock(&self.reader).take();
            lock(&self.writer).take();
        }
    }
}

impl BaseProtocol for TcpClient {
    fn connect(&self, timeout: Duration) -> Result<()> {
        TcpClient::connect(self, timeout)
    }
    fn disconnect(&self, _timeout: Duration) -> Result<()> {
        TcpClient::disconnect(self)
    }
    fn is_connected(&self) -> bool {
        TcpClient::is_connected(self)
    }
}

impl ReqResProtocol for TcpClient {
    fn send(&self, data: &[u8]) -> Result<()> {
        TcpClient::send(self, data, self.options.connect_timeout)
    }
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        TcpClient::receive(self, max_len, timeout)
    }
}

/// The registry's `tcp` protocol.
struct TcpProtocol(TcpClient);

impl Protocol for TcpProtocol {
    fn kind(&self) -> &str {
        "tcp"
    }
    fn connect(&self, timeout: Duration) -> Result<()> {
        self.0.connect(timeout)
    }
    fn disconnect(&self, _timeout: Duration) -> Result<()> {
        self.0.disconnect()
    }
    fn is_connected(&self) -> bool {
        self.0.is_connected()
    }
    fn send(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.0.send(data, timeout)
    }
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        self.0.receive(max_len, timeout)
    }
    fn request(&self, data: &[u8], max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        self.0.request(data, max_len, timeout)
    }
}

/// Options: `host` (required), `port` (required), `framing` (raw, u16, u32, delimiter),
/// `delimiter` (text, `\n` and `\r` escapes understood), `max_frame`, `connect_timeout_ms`,
/// `auto_reconnect`, `tls`, `tls_ca_file`, `tls_cert_file`, `tls_key_file`,
/// `tls_verify_hostname`, `tls_insecure`.
pub fn open_from_options(options: &ProtocolOptions) -> Result<Box<dyn Protocol>> {
    const KIND: &str = "tcp";
    options.only(
        KIND,
        &[
            "host",
            "port",
            "framing",
            "delimiter",
            "max_frame",
            "connect_timeout_ms",
            "auto_reconnect",
            "tls",
            "tls_ca_file",
            "tls_cert_file",
            "tls_key_file",
            "tls_verify_hostname",
            "tls_insecure",
        ],
    )?;
    let host = options.required(KIND, "host")?;
    let port = options
        .parse::<u16>(KIND, "port")?
        .ok_or_else(|| Error::InvalidArgument("protocol 'tcp' needs the option 'port'".into()))?;
    let mut tcp = TcpOptions::new(host, port);
    let delimiter = options.get("delimiter").map(unescape);
    if let Some(name) = options.get("framing") {
        tcp.framing = Framing::from_name(name, delimiter.as_deref())?;
    }
    if let Some(max) = options.parse(KIND, "max_frame")? {
        tcp.max_frame = max;
    }
    if let Some(t) = options.millis(KIND, "connect_timeout_ms")? {
        tcp.connect_timeout = t;
    }
    tcp.auto_reconnect = options.flag(KIND, "auto_reconnect")?.unwrap_or(false);
    if options.flag(KIND, "tls")?.unwrap_or(false) {
        let mut t = TlsOptions {
            ca: options
                .get("tls_ca_file")
                .map(|path| tls::TrustSource::File(path.into())),
            ..TlsOptions::default()
        };
        if let (Some(cert), Some(key)) = (options.get("tls_cert_file"), options.get("tls_key_file"))
        {
            t.client_identity = Some(tls::ClientIdentity::Files(tls::ClientCertificate {
                cert_file: cert.into(),
                key_file: key.into(),
                key_password: None,
            }));
        }
        t.verify_hostname = options.flag(KIND, "tls_verify_hostname")?.unwrap_or(true);
        t.insecure = options.flag(KIND, "tls_insecure")?.unwrap_or(false);
        tcp.tls = Some(t);
    }
    Ok(Box::new(TcpProtocol(TcpClient::new(tcp)?)))
}

fn unescape(text: &str) -> Vec<u8> {
    text.replace("\\r", "\r")
        .replace("\\n", "\n")
        .replace("\\0", "\0")
        .into_bytes()
}
