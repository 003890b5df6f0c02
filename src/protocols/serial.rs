//! Serial lines (RS-232/485 adapters, pseudo-terminals): raw bytes in both directions with a
//! read timeout. On the `serialport` crate: blocking, no runtime needed, and it sets every
//! line parameter (baud, data bits, parity, stop bits, flow control) through termios for us.

use crate::core::connection_events::{ConnectionEventHandler, ConnectionEvents};
use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::protocol::{BaseProtocol, ReqResProtocol};
use crate::protocols::registry::{Protocol, ProtocolOptions};
use serialport::{DataBits, FlowControl, Parity, SerialPort, StopBits};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialParity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialFlowControl {
    None,
    Software,
    Hardware,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialOptions {
    pub path: String,
    pub baud_rate: u32,
    /// 5..8
    pub data_bits: u8,
    pub parity: SerialParity,
    /// 1 or 2
    pub stop_bits: u8,
    pub flow_control: SerialFlowControl,
    /// How long a receive without its own timeout waits (the design's `receive(buffer_size)`).
    pub read_timeout: Duration,
}

impl SerialOptions {
    pub fn new(path: &str, baud_rate: u32) -> SerialOptions {
        SerialOptions {
            path: path.to_owned(),
            baud_rate,
            data_bits: 8,
            parity: SerialParity::None,
            stop_bits: 1,
            flow_control: SerialFlowControl::None,
            read_timeout: Duration::from_secs(1),
        }
    }

    pub fn check(&self) -> Result<()> {
        if self.path.is_empty() {
            return Err(Error::InvalidArgument(
                "the serial device path is empty".into(),
            ));
        }
        if self.baud_rate == 0 {
            return Err(Error::InvalidArgument("the baud rate is 0".into()));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(Error::InvalidArgument(format!(
                "data bits {} is not 5, 6, 7 or 8",
                self.data_bits
            )));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(Error::InvalidArgument(format!(
                "stop bits {} is not 1 or 2",
                self.stop_bits
            )));
        }
        Ok(())
    }
}

/// Counters since the port was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SerialStats {
    pub requests: u64,
    pub failures: u64,
    pub timeouts: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

pub struct SerialClient {
    options: SerialOptions,
    port: Mutex<Option<Box<dyn SerialPort>>>,
    exchange: Mutex<()>,
    counters: Counters,
    events: ConnectionEvents,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serial_error(path: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::SerialError(format!("serial device {path}: {what}: {e}"))
}

impl SerialClient {
    pub fn new(options: SerialOptions) -> Result<SerialClient> {
        options.check()?;
        Ok(SerialClient {
            options,
            port: Mutex::new(None),
            exchange: Mutex::new(()),
            counters: Counters::default(),
            events: ConnectionEvents::new("serial"),
        })
    }

    /// Connection events (opened, lost on a read or write error, closed) go to `handler` on
    /// the client's dispatcher thread.
    pub fn set_connection_handler(&self, handler: Option<ConnectionEventHandler>) -> Result<()> {
        self.events.set_handler(handler)
    }

    pub fn events(&self) -> &ConnectionEvents {
        &self.events
    }

    pub fn options(&self) -> &SerialOptions {
        &self.options
    }

    pub fn stats(&self) -> SerialStats {
        let c = &self.counters;
        SerialStats {
            requests: c.requests.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Opens and configures the device (the timeout is not used: opening does not wait).
    pub fn connect(&self) -> Result<()> {
        let o = &self.options;
        let data_bits = match o.data_bits {
            5 => DataBits::Five,
            6 => DataBits::Six,
            7 => DataBits::Seven,
            _ => DataBits::Eight,
        };
        let parity = match o.parity {
            SerialParity::None => Parity::None,
            SerialParity::Odd => Parity::Odd,
            SerialParity::Even => Parity::Even,
        };
        let stop_bits = if o.stop_bits == 2 {
            StopBits::Two
        } else {
            StopBits::One
        };
        let flow_control = match o.flow_control {
            SerialFlowControl::None => FlowControl::None,
            SerialFlowControl::Software => FlowControl::Software,
            SerialFlowControl::Hardware => FlowControl::Hardware,
        };
        let port = serialport::new(&o.path, o.baud_rate)
            .data_bits(data_bits)
            .parity(parity)
            .stop_bits(stop_bits)
            .flow_control(flow_control)
            .timeout(o.read_timeout)
            .open()
            .map_err(|e| serial_error(&o.path, "cannot open", e))?;
        *lock(&self.port) = Some(port);
        self.events.sender().connected();
        log!(
            Level::Info,
            "serial: opened {} at {} baud",
            o.path,
            o.baud_rate
        );
        Ok(())
    }

    pub fn disconnect(&self) {
        if lock(&self.port).take().is_some() {
            self.events.sender().disconnected();
        }
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.port).is_some()
    }

    /// Runs `body` on the open port. A read or write error (not a timeout) closes the port: the
    /// device is gone or broken (an adapter unplugged, the other end of a pty closed), and
    /// the connection callback hears it as lost; `connect` opens it again.
    fn with_port<T>(&self, body: impl FnOnce(&mut dyn SerialPort) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.port);
        let port = guard.as_mut().ok_or_else(|| {
            Error::NotConnected(format!("serial device {} is not open", self.options.path))
        })?;
        let result = body(port.as_mut());
        if let Err(error @ Error::SerialError(_)) = &result {
            guard.take();
            drop(guard);
            log!(
                Level::Warn,
                "serial: closed after an error: {}",
                error.message()
            );
            self.events.sender().lost(error);
        }
        result
    }

    pub fn send(&self, data: &[u8]) -> Result<()> {
        let path = &self.options.path;
        self.with_port(|port| {
            port.write_all(data)
                .and_then(|()| port.flush())
                .map_err(|e| serial_error(path, "write failed", e))
        })?;
        self.counters
            .bytes_sent
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// What has arrived, up to `max_len` bytes: waits up to `timeout` for the first byte.
    pub fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        if max_len == 0 {
            return Err(Error::InvalidArgument("receive of at most 0 bytes".into()));
        }
        let path = &self.options.path;
        let max_len = max_len.min(1024 * 1024);
        let data = self.with_port(|port| {
            port.set_timeout(timeout.max(Duration::from_millis(1)))
                .map_err(|e| serial_error(path, "cannot set the timeout", e))?;
            let mut buffer = vec![0u8; max_len];
            loop {
                match port.read(&mut buffer) {
                    Ok(0) => {
                        return Err(Error::Timeout(format!(
                            "nothing received from {path} within {timeout:?}"
                        )))
                    }
                    Ok(n) => {
                        buffer.truncate(n);
                        return Ok(buffer);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::TimedOut => {
                        return Err(Error::Timeout(format!(
                            "nothing received from {path} within {timeout:?}"
                        )))
                    }
                    Err(e) => return Err(serial_error(path, "read failed", e)),
                }
            }
        })?;
        self.counters
            .bytes_received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }

    /// Sends `data` and returns what answers it first (up to `max_len` bytes).
    pub fn request(&self, data: &[u8], max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let _exchange = lock(&self.exchange);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = self
            .send(data)
            .and_then(|()| self.receive(max_len, timeout));
        if let Err(e) = &result {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            if matches!(e, Error::Timeout(_)) {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }
}

impl BaseProtocol for SerialClient {
    fn connect(&self, _timeout: Duration) -> Result<()> {
        SerialClient::connect(self)
    }
    fn disconnect(&self, _timeout: Duration) -> Result<()> {
        SerialClient::disconnect(self);
        Ok(())
    }
    fn is_connected(&self) -> bool {
        SerialClient::is_connected(self)
    }
}

impl ReqResProtocol for SerialClient {
    fn send(&self, data: &[u8]) -> Result<()> {
        SerialClient::send(self, data)
    }
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        SerialClient::receive(self, max_len, timeout)
    }
}

struct SerialProtocol(SerialClient);

impl Protocol for SerialProtocol {
    fn kind(&self) -> &str {
        "serial"
    }
    fn connect(&self, _timeout: Duration) -> Result<()> {
        self.0.connect()
    }
    fn disconnect(&self, _timeout: Duration) -> Result<()> {
        self.0.disconnect();
        Ok(())
    }
    fn is_connected(&self) -> bool {
        self.0.is_connected()
    }
    fn send(&self, data: &[u8], _timeout: Duration) -> Result<()> {
        self.0.send(data)
    }
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        self.0.receive(max_len, timeout)
    }
    fn request(&self, data: &[u8], max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        self.0.request(data, max_len, timeout)
    }
}

/// Parity from its name: `none`, `odd`, `even` (or `N`, `O`, `E`).
pub fn parity_from_name(name: &str) -> Result<SerialParity> {
    match name.to_ascii_lowercase().as_str() {
        "none" | "n" => Ok(SerialParity::None),
        "odd" | "o" => Ok(SerialParity::Odd),
        "even" | "e" => Ok(SerialParity::Even),
        other => Err(Error::InvalidArgument(format!(
            "parity '{other}' is not none, odd or even"
        ))),
    }
}

/// Flow control from its name: `none`, `software` (XON/XOFF), `hardware` (RTS/CTS).
pub fn flow_control_from_name(name: &str) -> Result<SerialFlowControl> {
    match name.to_ascii_lowercase().as_str() {
        "none" => Ok(SerialFlowControl::None),
        "software" | "xonxoff" => Ok(SerialFlowControl::Software),
        "hardware" | "rtscts" => Ok(SerialFlowControl::Hardware),
        other => Err(Error::InvalidArgument(format!(
            "flow control '{other}' is not none, software or hardware"
        ))),
    }
}

/// Options (the names "modbus-rtu" uses for the same settings): `device` (required), `baud`
/// (default 9600), `data_bits` (8), `parity` (none, odd, even or N, O, E), `stop_bits` (1),
/// `flow_control` (none, software, hardware), `read_timeout_ms` (1000).
pub fn open_from_options(options: &ProtocolOptions) -> Result<Box<dyn Protocol>> {
    const KIND: &str = "serial";
    options.only(
        KIND,
        &[
            "device",
            "baud",
            "data_bits",
            "parity",
            "stop_bits",
            "flow_control",
            "read_timeout_ms",
        ],
    )?;
    let mut serial = SerialOptions::new(
        options.required(KIND, "device")?,
        options.parse(KIND, "baud")?.unwrap_or(9600),
    );
    if let Some(bits) = options.parse(KIND, "data_bits")? {
        serial.data_bits = bits;
    }
    if let Some(parity) = options.get("parity") {
        serial.parity = parity_from_name(parity)?;
    }
    if let Some(bits) = options.parse(KIND, "stop_bits")? {
        serial.stop_bits = bits;
    }
    if let Some(flow) = options.get("flow_control") {
        serial.flow_control = flow_control_from_name(flow)?;
    }
    if let Some(t) = options.millis(KIND, "read_timeout_ms")? {
        serial.read_timeout = t;
    }
    Ok(Box::new(SerialProtocol(SerialClient::new(serial)?)))
}
