//! The Modbus client handle: one connection, TCP or RTU over a serial line, opened on first use
//! and again after it is lost, shared by calls from any number of threads.
//!
//! Modbus TCP pipelines requests by transaction id (`pipeline`): up to `max_in_flight` requests
//! are on the connection at once, each response completes the request with its transaction id,
//! callers beyond the limit wait for a turn within their timeout. A request that times out
//! leaves the connection up: its late response is recognized by its id and discarded.
//! The default is 1 (serialized): many devices cannot pipeline (PLCs that hold one transaction,
//! pymodbus 3.8's server), and a pipelined request to them waits for its timeout. Pipelining
//! is the caller's opt-in for servers known to take it.
//!
//! RTU is serialized through one async mutex: the line carries one request at a time and a
//! response names no request, only its unit id and function code (tokio-modbus's RTU context
//! checks both). A request that times out there drops the connection, so that its late
//! response can never be read as the answer to the next request; the next call opens the line
//! again.

use crate::core::connection_events::{ConnectionEventHandler, ConnectionEvents, EventSender};
use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::runtime;
use crate::core::transport::{self, Endpoint, IoStream, TransportOptions};
use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use crate::modbus::mbap::{self, Answer};
use crate::modbus::pipeline::Connection;

/// Serial line parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

/// RTU over a serial line instead of TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    pub device: String,
    pub baud: u32,
    /// 5..=8.
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
}

/// How a client reaches its server and its defaults for each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub host: String,
    pub port: u16,
    /// The unit (slave) id used when a call names none; 255 is "the device itself" on TCP.
    pub unit_id: u8,
    /// Per attempt: connecting (when needed) plus the request and its response.
    pub timeout: Duration,
    /// Further attempts after a timeout, a lost connection or a bad frame (not after a Modbus
    /// exception, which is the server's answer).
    pub retries: u32,
    /// Modbus TCP: requests on the connection at once (1..=`MAX_IN_FLIGHT`); 1 serializes.
    /// RTU always has one request on the line.
    pub max_in_flight: u16,
    pub serial: Option<SerialSettings>,
}

/// The largest `Options::max_in_flight`.
pub const MAX_IN_FLIGHT: u16 = 256;

impl Default for Options {
    fn default() -> Self {
        Options {
            host: "127.0.0.1".into(),
            port: 502,
            unit_id: 1,
            timeout: Duration::from_secs(1),
            retries: 1,
            max_in_flight: 1,
            serial: None,
        }
    }
}

/// Overrides of the client's defaults for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    pub unit: Option<u8>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
}

/// Counters since the client was created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Calls made (each counted once, however many attempts it took).
    pub requests: u64,
    /// Calls that ended in an error (exceptions, timeouts, lost connections, bad frames).
    pub failures: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts whose response did not decode (bad CRC, bad framing, mismatched header).
    pub bad_frames: u64,
    /// Modbus exception responses received.
    pub exceptions: u64,
    /// Attempts repeated after a failure.
    pub retries: u64,
    /// Connections opened (the first and every reconnection).
    pub connects: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Modbus TCP: responses that arrived after their request had timed out, recognized by
    /// their transaction id and discarded.
    pub late_responses: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    bad_frames: AtomicU64,
    exceptions: AtomicU64,
    retries: AtomicU64,
    connects: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    pub(crate) late_responses: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    options: Options,
    counters: Arc<Counters>,
    /// Between connect and disconnect: calls (re)connect when the connection is gone.
    wanted: AtomicBool,
    link: Link,
    events: EventSender,
}

enum Link {
    Tcp(Tcp),
    /// The serial line's tokio-modbus context; the mutex keeps one request on the line.
    Rtu(tokio::sync::Mutex<Option<Context>>),
}

struct Tcp {
    connection: std::sync::Mutex<Option<Arc<Connection>>>,
    /// Held while connecting, connecting on demand or disconnecting: one connection at a time.
    opening: tokio::sync::Mutex<()>,
    /// `max_in_flight` permits: one per request on the connection.
    turns: tokio::sync::Semaphore,
    max_in_flight: u16,
}

/// A Modbus client. Thread-safe: TCP pipelines the calls of several threads, RTU serializes
/// them (module notes).
pub struct Client {
    shared: Arc<Shared>,
    /// The dispatcher of connection events; the I/O side reports through `Shared::events`.
    events: ConnectionEvents,
}

impl Client {
    pub fn new(options: Options) -> Result<Client> {
        if options.serial.is_none() && options.host.is_empty() {
            return Err(Error::InvalidArgument("the Modbus host is empty".into()));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&options.max_in_flight) {
            return Err(Error::InvalidArgument(format!(
                "max in flight {} is outside 1..{MAX_IN_FLIGHT}",
                options.max_in_flight
            )));
        }
        runtime::get()?;
        let link = match options.serial {
            Some(_) => Link::Rtu(tokio::sync::Mutex::new(None)),
            None => Link::Tcp(Tcp {
                connection: std::sync::Mutex::new(None),
                opening: tokio::sync::Mutex::new(()),
                turns: tokio::sync::Semaphore::new(usize::from(options.max_in_flight)),
                max_in_flight: options.max_in_flight,
            }),
        };
        let events = ConnectionEvents::new("modbus");
        Ok(Client {
            shared: Arc::new(Shared {
                options,
                counters: Arc::default(),
                wanted: AtomicBool::new(false),
                link,
                events: events.sender().clone(),
            }),
            events,
        })
    }

    /// Connection events (connected, lost with the error, reconnected by a later call,
    /// disconnected) go to `handler` on the client's dispatcher thread.
    pub fn set_connection_handler(&self, handler: Option<ConnectionEventHandler>) -> Result<()> {
        self.events.set_handler(handler)
    }

    pub fn events(&self) -> &ConnectionEvents {
        &self.events
    }

    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Opens the connection now (within the default timeout); later calls reconnect by
    /// themselves until `disconnect`.
    pub fn connect(&self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        run(async move {
            let deadline = Instant::now() + shared.options.timeout;
            match &shared.link {
                Link::Tcp(tcp) => {
                    let _opening = tcp.opening.lock().await;
                    shared.wanted.store(true, Ordering::Release);
                    if tcp.current().is_none() {
                        shared.open_tcp(tcp, deadline).await?;
                        shared.events.connected();
                    }
                }
                Link::Rtu(line) => {
                    let mut context = line.lock().await;
                    shared.wanted.store(true, Ordering::Release);
                    if context.is_none() {
                        *context = Some(shared.open_rtu().await?);
                        shared.events.connected();
                    }
                }
            }
            Ok(())
        })
    }

    /// Closes the connection; calls return `NotConnected` until the next `connect`.
    pub fn disconnect(&self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        run(async move {
            // The peer may already be gone: closing is best effort.
            let deadline = Instant::now() + shared.options.timeout;
            let closed = match &shared.link {
                Link::Tcp(tcp) => {
                    let _opening = tcp.opening.lock().await;
                    let wanted = shared.wanted.swap(false, Ordering::AcqRel);
                    match tcp.take() {
                        Some(connection) => {
                            // Retired first: the server's answer to our FIN is no loss.
                            connection.retire(not_connected());
                            connection.shutdown(deadline).await;
                            true
                        }
                        None => wanted,
                    }
                }
                Link::Rtu(line) => {
                    let mut context = line.lock().await;
                    let wanted = shared.wanted.swap(false, Ordering::AcqRel);
                    match context.take() {
                        Some(mut context) => {
                            let _ = tokio::time::timeout_at(deadline, context.disconnect()).await;
                            true
                        }
                        None => wanted,
                    }
                }
            };
            if closed {
                log!(Level::Info, "modbus: disconnected from {}", shared.name());
                shared.events.disconnected();
            }
            Ok(())
        })
    }

    pub fn is_connected(&self) -> bool {
        self.shared.wanted.load(Ordering::Acquire)
            && match &self.shared.link {
                Link::Tcp(tcp) => tcp.current().is_some(),
                // Busy (a request on the line) counts as connected.
                Link::Rtu(line) => line.try_lock().map_or(true, |context| context.is_some()),
            }
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            requests: get(&c.requests),
            failures: get(&c.failures),
            timeouts: get(&c.timeouts),
            bad_frames: get(&c.bad_frames),
            exceptions: get(&c.exceptions),
            retries: get(&c.retries),
            connects: get(&c.connects),
            bytes_out: get(&c.bytes_out),
            bytes_in: get(&c.bytes_in),
            late_responses: get(&c.late_responses),
        }
    }

    /// Sends one request (already checked against the protocol's limits) and returns its
    /// response.
    pub fn call(&self, request: Request<'static>, call: CallOptions) -> Result<Response> {
        let shared = Arc::clone(&self.shared);
        run(async move { shared.execute(request, call).await })
    }

    pub fn read_coils(&self, address: u16, quantity: u16, call: CallOptions) -> Result<Vec<bool>> {
        match self.call(Request::ReadCoils(address, quantity), call)? {
            Response::ReadCoils(mut bits) => Ok(truncated(&mut bits, quantity)),
            other => Err(mismatch(other)),
        }
    }

    pub fn read_discrete_inputs(
        &self,
        address: u16,
        quantity: u16,
        call: CallOptions,
    ) -> Result<Vec<bool>> {
        match self.call(Request::ReadDiscreteInputs(address, quantity), call)? {
            Response::ReadDiscreteInputs(mut bits) => Ok(truncated(&mut bits, quantity)),
            other => Err(mismatch(other)),
        }
    }

    pub fn read_holding_registers(
        &self,
        address: u16,
        quantity: u16,
        call: CallOptions,
    ) -> Result<Vec<u16>> {
        match self.call(Request::ReadHoldingRegisters(address, quantity), call)? {
            Response::ReadHoldingRegisters(words) => exact(words, quantity),
            other => Err(mismatch(other)),
        }
    }

    pub fn read_input_registers(
        &self,
        address: u16,
        quantity: u16,
        call: CallOptions,
    ) -> Result<Vec<u16>> {
        match self.call(Request::ReadInputRegisters(address, quantity), call)? {
            Response::ReadInputRegisters(words) => exact(words, quantity),
            other => Err(mismatch(other)),
        }
    }

    pub fn write_single_coil(&self, address: u16, value: bool, call: CallOptions) -> Result<()> {
        self.call(Request::WriteSingleCoil(address, value), call)
            .map(drop)
    }

    pub fn write_single_register(&self, address: u16, value: u16, call: CallOptions) -> Result<()> {
        self.call(Request::WriteSingleRegister(address, value), call)
            .map(drop)
    }

    pub fn write_multiple_coils(
        &self,
        address: u16,
        values: Vec<bool>,
        call: CallOptions,
    ) -> Result<()> {
        self.call(
            Request::WriteMultipleCoils(address, Cow::Owned(values)),
            call,
        )
        .map(drop)
    }

    pub fn write_multiple_registers(
        &self,
        address: u16,
        values: Vec<u16>,
        call: CallOptions,
    ) -> Result<()> {
        self.call(
            Request::WriteMultipleRegisters(address, Cow::Owned(values)),
            call,
        )
        .map(drop)
    }

    /// Function code 0x17: the server writes first, then reads.
    pub fn read_write_multiple_registers(
        &self,
        read_address: u16,
        read_quantity: u16,
        write_address: u16,
        values: Vec<u16>,
        call: CallOptions,
    ) -> Result<Vec<u16>> {
        let request = Request::ReadWriteMultipleRegisters(
            read_address,
            read_quantity,
            write_address,
            Cow::Owned(values),
        );
        match self.call(request, call)? {
            Response::ReadWriteMultipleRegisters(words) => exact(words, read_quantity),
            other => Err(mismatch(other)),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.wanted.store(false, Ordering::Release);
        if let Link::Tcp(tcp) = &self.shared.link {
            // Stops the reader task, which would otherwise keep the socket open.
            if let Some(connection) = tcp.take() {
                connection.retire(not_connected());
            }
        }
    }
}

impl Tcp {
    /// The open connection, if there is one.
    fn current(&self) -> Option<Arc<Connection>> {
        self.slot().as_ref().filter(|c| c.is_open()).cloned()
    }

    fn take(&self) -> Option<Arc<Connection>> {
        self.slot().take()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Connection>>> {
        // Nothing panics while holding it; a poisoned slot still holds a valid value.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn not_connected() -> Error {
    Error::NotConnected("the Modbus client is not connected (eq1_modbus_client_connect)".into())
}

impl Shared {
    fn name(&self) -> String {
        match &self.options.serial {
            Some(serial) => format!("{} ({} baud)", serial.device, serial.baud),
            None => format!("{}:{}", self.options.host, self.options.port),
        }
    }

    async fn open_tcp(self: &Arc<Self>, tcp: &Tcp, deadline: Instant) -> Result<Arc<Connection>> {
        let endpoint = Endpoint::tcp(&self.options.host, self.options.port, false);
        let stream =
            transport::open(&endpoint, None, &TransportOptions::default(), deadline).await?;
        let connection = Connection::start(
            Box::new(self.counted(stream)),
            self.name(),
            Arc::clone(&self.counters),
            self.events.clone(),
        );
        *tcp.slot() = Some(Arc::clone(&connection));
        self.opened();
        Ok(connection)
    }

    async fn open_rtu(self: &Arc<Self>) -> Result<Context> {
        let Some(serial) = &self.options.serial else {
            return Err(Error::Internal(
                "an RTU link without serial settings".into(),
            ));
        };
        let stream = open_serial(serial)?;
        let slave = Slave(self.options.unit_id);
        let context =
            tokio_modbus::client::rtu::attach_slave(self.counted(Box::new(stream)), slave);
        self.opened();
        Ok(context)
    }

    fn opened(&self) {
        bump(&self.counters.connects);
        log!(Level::Info, "modbus: connected to {}", self.name());
    }

    fn check_wanted(&self) -> Result<()> {
        if self.wanted.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(not_connected())
        }
    }

    /// The open TCP connection, or a new one when the last was lost.
    async fn tcp_connection(
        self: &Arc<Self>,
        tcp: &Tcp,
        deadline: Instant,
    ) -> Result<Arc<Connection>> {
        if let Some(connection) = tcp.current() {
            return Ok(connection);
        }
        let Ok(_opening) = tokio::time::timeout_at(deadline, tcp.opening.lock()).await else {
            return Err(Error::Timeout(format!(
                "connecting to {}: another call's connection attempt did not finish in time",
                self.name()
            )));
        };
        // A disconnect may have come first.
        self.check_wanted()?;
        match tcp.current() {
            Some(connection) => Ok(connection),
            None => {
                let connection = self.open_tcp(tcp, deadline).await?;
                self.events.reopened();
                Ok(connection)
            }
        }
    }

    fn counted(self: &Arc<Self>, inner: Box<dyn IoStream>) -> Counted {
        Counted {
            inner,
            counters: Arc::clone(&self.counters),
        }
    }

    async fn execute(
        self: &Arc<Self>,
        request: Request<'static>,
        call: CallOptions,
    ) -> Result<Response> {
        bump(&self.counters.requests);
        let result = self.attempts(request, call).await;
        if result.is_err() {
            bump(&self.counters.failures);
        }
        result
    }

    async fn attempts(
        self: &Arc<Self>,
        request: Request<'static>,
        call: CallOptions,
    ) -> Result<Response> {
        let unit = call.unit.unwrap_or(self.options.unit_id);
        let timeout = call.timeout.unwrap_or(self.options.timeout);
        let retries = call.retries.unwrap_or(self.options.retries);
        let mut attempt = 0;
        loop {
            self.check_wanted()?;
            let error = match self.attempt(&request, unit, timeout).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let retriable = matches!(
                error,
                Error::Timeout(_)
                    | Error::ModbusBadFrame(_)
                    | Error::ConnectionLost(_)
                    | Error::ConnectionRefused(_)
                    | Error::Network(_)
                    | Error::DnsFailed(_)
            );
            if !retriable || attempt >= retries {
                return Err(error);
            }
            attempt += 1;
            bump(&self.counters.retries);
            log!(
                Level::Warn,
                "modbus: {} (attempt {attempt} of {}), retrying",
                error.message(),
                retries + 1
            );
        }
    }

    async fn attempt(
        self: &Arc<Self>,
        request: &Request<'static>,
        unit: u8,
        timeout: Duration,
    ) -> Result<Response> {
        let deadline = Instant::now() + timeout;
        let answer = match &self.link {
            Link::Tcp(tcp) => self.attempt_tcp(tcp, request, unit, deadline).await,
            Link::Rtu(line) => self.attempt_rtu(line, request, unit, timeout).await,
        };
        match answer {
            Ok(Ok(response)) => {
                // A well-framed answer of the wrong size is the server's mistake, not the
                // line's: reported, not retried, and the connection stays.
                if let Err(error) = check_size(request, &response) {
                    bump(&self.counters.bad_frames);
                    return Err(error);
                }
                Ok(response)
            }
            Ok(Err(exception)) => {
                bump(&self.counters.exceptions);
                Err(exception_error(exception, request, unit))
            }
            Err(error) => Err(error),
        }
    }

    async fn attempt_tcp(
        self: &Arc<Self>,
        tcp: &Tcp,
        request: &Request<'static>,
        unit: u8,
        deadline: Instant,
    ) -> Result<Answer> {
        let pdu = mbap::request_pdu(request)?;
        let Ok(turn) = tokio::time::timeout_at(deadline, tcp.turns.acquire()).await else {
            bump(&self.counters.timeouts);
            return Err(Error::Timeout(format!(
                "{} to {}: no turn before the deadline ({} request(s) in flight already)",
                describe(request),
                self.name(),
                tcp.max_in_flight
            )));
        };
        let _turn =
            turn.map_err(|_| Error::Internal("the Modbus request turns were closed".into()))?;
        let connection = self.tcp_connection(tcp, deadline).await?;
        connection
            .request(unit, &pdu, deadline)
            .await
            .map_err(|error| {
                match error {
                    Error::Timeout(_) => bump(&self.counters.timeouts),
                    Error::ModbusBadFrame(_) => bump(&self.counters.bad_frames),
                    _ => {}
                }
                about(error, &format!("{} to {}", describe(request), self.name()))
            })
    }

    async fn attempt_rtu(
        self: &Arc<Self>,
        line: &tokio::sync::Mutex<Option<Context>>,
        request: &Request<'static>,
        unit: u8,
        timeout: Duration,
    ) -> Result<Answer> {
        let deadline = Instant::now() + timeout;
        let mut connection = line.lock().await;
        if connection.is_none() {
            *connection = Some(self.open_rtu().await?);
            self.events.reopened();
        }
        let Some(context) = connection.as_mut() else {
            return Err(Error::Internal(
                "no Modbus connection after opening one".into(),
            ));
        };
        context.set_slave(Slave(unit));
        let bytes_in_before = self.counters.bytes_in.load(Ordering::Relaxed);
        let outcome = tokio::time::timeout_at(deadline, context.call(request.clone())).await;
        let error = match outcome {
            Ok(Ok(answer)) => return Ok(answer),
            Err(_) => {
                bump(&self.counters.timeouts);
                let received = self.counters.bytes_in.load(Ordering::Relaxed) - bytes_in_before;
                if received > 0 {
                    // Bytes came back but never made a response: RTU's decoder skips a frame
                    // whose CRC is wrong, byte by byte, and waits for a good one.
                    bump(&self.counters.bad_frames);
                    Error::ModbusBadFrame(format!(
                        "{} from {}: {received} byte(s) received did not decode as a response \
                         (bad CRC or framing) within {} ms",
                        describe(request),
                        self.name(),
                        timeout.as_millis()
                    ))
                } else {
                    Error::Timeout(format!(
                        "{} to {}: no response within {} ms",
                        describe(request),
                        self.name(),
                        timeout.as_millis()
                    ))
                }
            }
            Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                bump(&self.counters.bad_frames);
                Error::ModbusBadFrame(format!(
                    "{} from {}: the response does not match the request: {e}",
                    describe(request),
                    self.name()
                ))
            }
            Ok(Err(tokio_modbus::Error::Transport(e))) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    bump(&self.counters.bad_frames);
                    Error::ModbusBadFrame(format!(
                        "{} from {}: malformed response: {e}",
                        describe(request),
                        self.name()
                    ))
                } else {
                    Error::ConnectionLost(format!(
                        "{} to {}: connection lost: {e}",
                        describe(request),
                        self.name()
                    ))
                }
            }
        };
        // Whatever is left on the line (a late or partial response) must not be read as the
        // next request's answer: start over on a new one.
        *connection = None;
        self.events.lost(&error);
        Err(error)
    }
}

/// The same error, its detail message prefixed with what was being done.
fn about(error: Error, what: &str) -> Error {
    match error {
        Error::Timeout(m) => Error::Timeout(format!("{what}: {m}")),
        Error::ConnectionLost(m) => Error::ConnectionLost(format!("{what}: connection lost: {m}")),
        Error::ModbusBadFrame(m) => Error::ModbusBadFrame(format!("{what}: {m}")),
        other => other,
    }
}

/// Runs `work` on the library's runtime and waits for it on the calling thread.
fn run<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let runtime = runtime::get()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        // The caller waits on `rx` until this is sent; it cannot be gone.
        let _ = tx.send(work.await);
    });
    rx.recv()
        .map_err(|_| Error::Internal("the Modbus task ended without an answer".into()))?
}

fn open_serial(serial: &SerialSettings) -> Result<tokio_serial::SerialStream> {
    use tokio_serial::{DataBits, StopBits};
    let data_bits = match serial.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop_bits = if serial.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let parity = match serial.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let builder = tokio_serial::new(serial.device.as_str(), serial.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity)
        .flow_control(tokio_serial::FlowControl::None);
    tokio_serial::SerialStream::open(&builder).map_err(|e| match e.kind {
        tokio_serial::ErrorKind::NoDevice => Error::ConnectionRefused(format!(
            "serial device {} is not there: {}",
            serial.device, e.description
        )),
        _ => Error::Network(format!(
            "cannot open serial device {}: {}",
            serial.device, e.description
        )),
    })
}

fn exception_error(exception: ExceptionCode, request: &Request<'_>, unit: u8) -> Error {
    let code = u8::from(exception);
    let what = format!(
        "{} (unit {unit}): the server answered exception 0x{code:02X}",
        describe(request)
    );
    match exception {
        ExceptionCode::IllegalFunction => {
            Error::ModbusIllegalFunction(format!("{what} illegal function"))
        }
        ExceptionCode::IllegalDataAddress => {
            Error::ModbusIllegalDataAddress(format!("{what} illegal data address"))
        }
        ExceptionCode::IllegalDataValue => {
            Error::ModbusIllegalDataValue(format!("{what} illegal data value"))
        }
        ExceptionCode::ServerDeviceFailure => {
            Error::ModbusServerDeviceFailure(format!("{what} server device failure"))
        }
        ExceptionCode::Acknowledge => Error::ModbusAcknowledge(format!("{what} acknowledge")),
        ExceptionCode::ServerDeviceBusy => {
            Error::ModbusServerBusy(format!("{what} server device busy"))
        }
        ExceptionCode::GatewayPathUnavailable => {
            Error::ModbusGatewayPathUnavailable(format!("{what} gateway path unavailable"))
        }
        ExceptionCode::GatewayTargetDevice => Error::ModbusGatewayTargetFailed(format!(
            "{what} gateway target device failed to respond"
        )),
        // 0x08 memory parity error and codes outside the specification: a failure of the
        // device, named by its number in the detail.
        ExceptionCode::MemoryParityError | ExceptionCode::Custom(_) => {
            Error::ModbusServerDeviceFailure(format!("{what} (memory parity error or unknown)"))
        }
    }
}

fn describe(request: &Request<'_>) -> String {
    match request {
        Request::ReadCoils(a, q) => format!("read coils {a}+{q}"),
        Request::ReadDiscreteInputs(a, q) => format!("read discrete inputs {a}+{q}"),
        Request::ReadHoldingRegisters(a, q) => format!("read holding registers {a}+{q}"),
        Request::ReadInputRegisters(a, q) => format!("read input registers {a}+{q}"),
        Request::WriteSingleCoil(a, _) => format!("write single coil {a}"),
        Request::WriteSingleRegister(a, _) => format!("write single register {a}"),
        Request::WriteMultipleCoils(a, v) => format!("write multiple coils {a}+{}", v.len()),
        Request::WriteMultipleRegisters(a, v) => {
            format!("write multiple registers {a}+{}", v.len())
        }
        Request::ReadWriteMultipleRegisters(ra, rq, wa, v) => format!(
            "read/write multiple registers (read {ra}+{rq}, write {wa}+{})",
            v.len()
        ),
        other => format!("{other:?}"),
    }
}

/// Reads must return what they asked for: registers exactly, bits at least (coils come packed
/// in bytes, the last byte's high bits are padding).
fn check_size(request: &Request<'_>, response: &Response) -> Result<()> {
    let (asked, got, unit) = match (request, response) {
        (Request::ReadCoils(_, q), Response::ReadCoils(bits))
        | (Request::ReadDiscreteInputs(_, q), Response::ReadDiscreteInputs(bits)) => {
            (usize::from(*q), bits.len(), "bit")
        }
        (Request::ReadHoldingRegisters(_, q), Response::ReadHoldingRegisters(words))
        | (Request::ReadInputRegisters(_, q), Response::ReadInputRegisters(words))
        | (
            Request::ReadWriteMultipleRegisters(_, q, _, _),
            Response::ReadWriteMultipleRegisters(words),
        ) => (usize::from(*q), words.len(), "register"),
        _ => return Ok(()),
    };
    let fits = if unit == "bit" {
        got >= asked && got <= asked.div_ceil(8) * 8
    } else {
        got == asked
    };
    if fits {
        Ok(())
    } else {
        Err(Error::ModbusBadFrame(format!(
            "{}: the server returned {got} {unit}(s) for a request of {asked}",
            describe(request)
        )))
    }
}

fn truncated(bits: &mut Vec<bool>, quantity: u16) -> Vec<bool> {
    // Coils come packed in bytes: the last byte's high bits are padding.
    bits.truncate(usize::from(quantity));
    std::mem::take(bits)
}

fn exact(words: Vec<u16>, quantity: u16) -> Result<Vec<u16>> {
    if words.len() != usize::from(quantity) {
        return Err(Error::ModbusBadFrame(format!(
            "the server returned {} register(s) for a request of {quantity}",
            words.len()
        )));
    }
    Ok(words)
}

fn mismatch(response: Response) -> Error {
    Error::ModbusBadFrame(format!(
        "the response does not answer the request: {response:?}"
    ))
}

/// The connection's byte stream, counting what passes for the stats (and for telling a bad
/// frame from silence).
struct Counted {
    inner: Box<dyn IoStream>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counted")
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.counters
            .bytes_in
            .fetch_add(read as u64, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &poll {
            self.counters
                .bytes_out
                .fetch_add(*written as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
