//! Helpers for the scripted-socket tests: a plain `TcpListener` on 127.0.0.1 that reads the
//! client's packets frame by frame and writes exact bytes back. It is not a broker: it only
//! does what each test's script says, including things no real broker would do.
//!
//! Every read has a deadline and every script runs on a thread joined with a deadline, so a
//! test fails instead of hanging when the client does not do what the script expects.

#![allow(dead_code)]

use eq1::mqtt::{Client, ConnectionEvent, ConnectionState, Options};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one expected packet may take to arrive before the script gives up.
pub const PACKET_WAIT: Duration = Duration::from_secs(5);
/// How long a test waits for anything the client does (token, event, subscribe).
pub const CLIENT_WAIT: Duration = Duration::from_secs(5);

// Packet types (the high nibble of the first byte).
pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

pub fn type_name(kind: u8) -> &'static str {
    match kind {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        _ => "RESERVED",
    }
}

/// One whole packet as the client framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: u8,
    pub body: Vec<u8>,
}

/// The fields of a PUBLISH the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub pkid: u16,
    pub qos: u8,
    pub dup: bool,
    pub retain: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn kind(&self) -> u8 {
        self.header >> 4
    }

    pub fn name(&self) -> &'static str {
        type_name(self.kind())
    }

    /// The packet identifier that leads the variable header of acks, SUBSCRIBE, UNSUBSCRIBE.
    pub fn leading_pkid(&self) -> u16 {
        assert!(
            self.body.len() >= 2,
            "{} is too short for a packet id: {:02x?}",
            self.name(),
            self.body
        );
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    pub fn publish(&self, v5: bool) -> Publish {
        assert_eq!(self.kind(), PUBLISH, "expected a PUBLISH, got {self:02x?}");
        let qos = (self.header >> 1) & 0x03;
        let body = &self.body;
        let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
        let mut at = 2 + topic_len;
        let topic = String::from_utf8(body[2..at].to_vec()).expect("PUBLISH topic is UTF-8");
        let pkid = if qos > 0 {
            let id = u16::from_be_bytes([body[at], body[at + 1]]);
            at += 2;
            id
        } else {
            0
        };
        if v5 {
            let (props, used) = varint(&body[at..]).expect("PUBLISH property length");
            at += used + props;
        }
        Publish {
            topic,
            pkid,
            qos,
            dup: self.header & 0x08 != 0,
            retain: self.header & 0x01 != 0,
            payload: body[at..].to_vec(),
        }
    }
}

/// Decodes a variable byte integer: (value, bytes used).
pub fn varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().take(4).enumerate() {
        value += ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

pub fn encode_varint(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

/// Takes one whole frame off the front of `buf`, if it holds one.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 2 {
        return None;
    }
    let tail = &buf[1..];
    let (remaining, used) = match varint(tail) {
        Some(v) => v,
        None if tail.len() >= 4 => panic!("the client sent a malformed remaining length"),
        None => return None,
    };
    let total = 1 + used + remaining;
    if buf.len() < total {
        return None;
    }
    let frame = Frame {
        header: buf[0],
        body: buf[1 + used..total].to_vec(),
    };
    buf.drain(..total);
    Some(frame)
}

// ---- Bytes the script sends -------------------------------------------------------------

pub fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    encode_varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

pub fn connack_v4(session_present: bool, code: u8) -> Vec<u8> {
    vec![0x20, 0x02, session_present as u8, code]
}

pub fn connack_v5(session_present: bool, code: u8) -> Vec<u8> {
    vec![0x20, 0x03, session_present as u8, code, 0x00]
}

/// PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70) in their two-byte form.
pub fn ack(header: u8, pkid: u16) -> Vec<u8> {
    let id = pkid.to_be_bytes();
    vec![header, 0x02, id[0], id[1]]
}

pub fn puback(pkid: u16) -> Vec<u8> {
    ack(0x40, pkid)
}

pub fn pubrec(pkid: u16) -> Vec<u8> {
    ack(0x50, pkid)
}

pub fn pubrel(pkid: u16) -> Vec<u8> {
    ack(0x62, pkid)
}

pub fn pubcomp(pkid: u16) -> Vec<u8> {
    ack(0x70, pkid)
}

pub fn suback_v4(pkid: u16, code: u8) -> Vec<u8> {
    let id = pkid.to_be_bytes();
    vec![0x90, 0x03, id[0], id[1], code]
}

pub fn suback_v5(pkid: u16, reason: u8) -> Vec<u8> {
    let id = pkid.to_be_bytes();
    vec![0x90, 0x04, id[0], id[1], 0x00, reason]
}

/// A PUBLISH; `properties` is `None` for v3.1.1 and the raw property bytes for v5.
pub fn publish(
    topic: &str,
    pkid: u16,
    qos: u8,
    dup: bool,
    properties: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let header = 0x30 | (qos << 1) | if dup { 0x08 } else { 0 };
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if let Some(properties) = properties {
        encode_varint(properties.len(), &mut body);
        body.extend_from_slice(properties);
    }
    body.extend_from_slice(payload);
    packet(header, &body)
}

// ---- The scripted peer ------------------------------------------------------------------

/// Why a read ended without a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    Timeout,
    Closed,
}

/// One accepted connection from the client.
pub struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    pub v5: bool,
}

pub fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener on 127.0.0.1:0");
    let port = listener.local_addr().expect("listener address").port();
    (listener, port)
}

impl Peer {
    /// Accepts the next connection, failing the script if none comes within `within`.
    pub fn accept(listener: &TcpListener, v5: bool, within: Duration) -> Peer {
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let deadline = Instant::now() + within;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream
                        .set_nonblocking(false)
                        .expect("make the socket blocking");
                    stream.set_nodelay(true).expect("TCP_NODELAY");
                    return Peer {
                        stream,
                        buf: Vec::new(),
                        v5,
                    };
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "the client did not connect within {within:?}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept failed: {e}"),
            }
        }
    }

    /// The next frame, or why there is none within `within`.
    pub fn try_read(&mut self, within: Duration) -> Result<Frame, ReadEnd> {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(frame) = take_frame(&mut self.buf) {
                return Ok(frame);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadEnd::Timeout);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(wait))
                .expect("set the read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ReadEnd::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadEnd::Closed),
            }
        }
    }

    /// The next frame; fails the script if none arrives within `PACKET_WAIT`.
    pub fn read(&mut self, waiting_for: &str) -> Frame {
        match self.try_read(PACKET_WAIT) {
            Ok(frame) => frame,
            Err(end) => panic!("waiting for {waiting_for}: {end:?}"),
        }
    }

    /// The next frame, which must be of type `kind`.
    pub fn expect(&mut self, kind: u8) -> Frame {
        let frame = self.read(type_name(kind));
        assert_eq!(
            frame.kind(),
            kind,
            "expected {}, the client sent {}: {frame:02x?}",
            type_name(kind),
            frame.name()
        );
        frame
    }

    /// Asserts that the client sends nothing for `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration, why: &str) {
        match self.try_read(quiet) {
            Err(ReadEnd::Timeout) => {}
            Err(ReadEnd::Closed) => panic!("{why}: the client closed the connection"),
            Ok(frame) => panic!("{why}: the client sent {} {frame:02x?}", frame.name()),
        }
    }

    pub fn expect_publish(&mut self) -> Publish {
        let v5 = self.v5;
        self.expect(PUBLISH).publish(v5)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the client");
        self.stream.flush().expect("flush to the client");
    }

    /// Reads CONNECT and accepts it with the given session-present flag.
    pub fn handshake(&mut self, session_present: bool) -> Frame {
        let connect = self.expect(CONNECT);
        let connack = if self.v5 {
            connack_v5(session_present, 0)
        } else {
            connack_v4(session_present, 0)
        };
        self.send(&connack);
        connect
    }

    /// Discards what the client sends until it closes the connection or `within` passes.
    /// Returns true when the client closed it.
    pub fn drain_until_closed(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.try_read(deadline - now) {
                Ok(_) => {}
                Err(ReadEnd::Closed) => return true,
                Err(ReadEnd::Timeout) => return false,
            }
        }
    }
}

// ---- Running a script -------------------------------------------------------------------

/// A script running on its own thread.
pub struct Script<T> {
    done: Receiver<()>,
    handle: JoinHandle<T>,
}

pub fn run<T, F>(script: F) -> Script<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, done) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("scripted-broker".into())
        .spawn(move || {
            let out = script();
            let _ = tx.send(());
            out
        })
        .expect("start the script thread");
    Script { done, handle }
}

impl<T> Script<T> {
    /// Waits up to `within` for the script to end; re-raises its panic if it failed.
    pub fn finish(self, within: Duration) -> T {
        match self.done.recv_timeout(within) {
            // Disconnected: the script panicked, join returns its panic.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => match self.handle.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(RecvTimeoutError::Timeout) => panic!("the script did not finish within {within:?}"),
        }
    }
}

// ---- The client side --------------------------------------------------------------------

/// Options for a client of the scripted socket: no automatic reconnect unless a test asks.
pub fn options(port: u16, version: i32) -> Options {
    let mut options = Options::default();
    options
        .set_broker("127.0.0.1", port as i32)
        .expect("broker address");
    options.set_protocol_version(match version {
        4 => eq1::mqtt::ProtocolVersion::V311,
        _ => eq1::mqtt::ProtocolVersion::V5,
    });
    options
        .set_reconnect(false, 50, 200)
        .expect("reconnect settings");
    options.set_connect_timeout(5_000).expect("connect timeout");
    options
}

/// Connection events with the time the callback saw them.
pub type Events = Receiver<(Instant, ConnectionEvent)>;

pub fn watch_connection(client: &Client) -> Events {
    let (tx, rx) = mpsc::channel();
    client.set_connection_handler(Some(Arc::new(move |event: &ConnectionEvent| {
        let _ = tx.send((Instant::now(), event.clone()));
    })));
    rx
}

/// Waits for the next event in `state`, skipping others; fails after `within`.
pub fn wait_for(
    events: &Events,
    state: ConnectionState,
    within: Duration,
) -> (Instant, ConnectionEvent) {
    let deadline = Instant::now() + within;
    loop {
        let now = Instant::now();
        assert!(now < deadline, "no {state:?} event within {within:?}");
        match events.recv_timeout(deadline - now) {
            Ok((at, event)) if event.state == state => return (at, event),
            Ok(_) => {}
            Err(e) => panic!("no {state:?} event within {within:?}: {e}"),
        }
    }
}

// ---- Synchronising the script with the test ---------------------------------------------

/// The test's side of a gate: opening it lets the script go on.
pub struct Opener(mpsc::Sender<()>);

/// The script's side of a gate.
pub struct Gate(Receiver<()>);

pub fn gate() -> (Opener, Gate) {
    let (tx, rx) = mpsc::channel();
    (Opener(tx), Gate(rx))
}

impl Opener {
    pub fn open(&self) {
        // The script may already have failed and gone; its panic is reported by `finish`.
        let _ = self.0.send(());
    }
}

impl Gate {
    /// Waits for the test to open the gate; fails the script after `CLIENT_WAIT`.
    pub fn wait(&self, what: &str) {
        if let Err(e) = self.0.recv_timeout(CLIENT_WAIT) {
            panic!("waiting for the test ({what}): {e}");
        }
    }

    /// Keeps the script (and its socket) alive until the test is done with its checks, the
    /// test has gone (opener dropped), or `CLIENT_WAIT` passed.
    pub fn hold(&self) {
        self.hold_for(CLIENT_WAIT);
    }

    /// `hold`, for a test that needs the socket longer than `CLIENT_WAIT`.
    pub fn hold_for(&self, within: Duration) {
        let _ = self.0.recv_timeout(within);
    }
}
