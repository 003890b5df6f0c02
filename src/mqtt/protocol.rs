//! MQTT behind the protocol registry (`protocols::registry`): "mqtt" opened by name from
//! key/value options. Publish waits for the message's outcome; the messages of every
//! subscription made through the handle wait in one bounded queue for `receive`, in arrival
//! order (a full queue holds the dispatcher, so the broker is held back and nothing is lost).

use crate::core::error::{Error, Result};
use crate::mqtt::subscriptions::MessageHandler;
use crate::mqtt::{Client, Options, ProtocolVersion, Qos};
use crate::protocols::registry::{Protocol, ProtocolOptions};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const KIND: &str = "mqtt";
const OPTIONS: [&str; 13] = [
    "host",
    "port",
    "uri",
    "client_id",
    "username",
    "password",
    "keep_alive",
    "clean_session",
    "version",
    "tls",
    "tls_ca_file",
    "publish_timeout_ms",
    "receive_queue",
];

/// Received messages waiting for `receive`: at most `limit`; `closed` releases a waiting
/// dispatcher when the handle goes away.
struct Inbox {
    state: Mutex<InboxState>,
    changed: Condvar,
    limit: usize,
}

struct InboxState {
    messages: VecDeque<Vec<u8>>,
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// On the dispatcher thread: waits while the queue is full (back-pressure on the broker).
    fn push(&self, payload: &[u8]) {
        let mut state = self.lock();
        while state.messages.len() >= self.limit && !state.closed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if !state.closed {
            state.messages.push_back(payload.to_vec());
            self.changed.notify_all();
        }
    }

    fn pop(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(message) = state.messages.pop_front() {
                self.changed.notify_all();
                return Some(message);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

struct MqttProtocol {
    client: Client,
    inbox: Arc<Inbox>,
    publish_timeout: Duration,
}

/// "mqtt": `host` (or `uri`, e.g. `mqtts://host:8883`), `port` (1883), `client_id`,
/// `username`, `password`, `keep_alive` (seconds, 60), `clean_session` (true), `version`
/// (3.1.1 or 5), `tls` (false), `tls_ca_file`, `publish_timeout_ms` (how long publish waits
/// for the outcome, 5000), `receive_queue` (messages waiting for receive, 1000).
pub fn open_from_options(options: &ProtocolOptions) -> Result<Box<dyn Protocol>> {
    options.only(KIND, &OPTIONS)?;
    let mut mqtt = Options::default();
    if options.flag(KIND, "tls")?.unwrap_or(false) || options.get("tls_ca_file").is_some() {
        mqtt.enable_tls(options.get("tls_ca_file"))?;
    }
    match (options.get("uri"), options.get("host")) {
        (Some(uri), None) => mqtt.set_broker_uri(uri)?,
        (None, Some(host)) => {
            let port = options.parse::<u16>(KIND, "port")?.unwrap_or(1883);
            mqtt.set_broker(host, i32::from(port))?
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "protocol '{KIND}' needs the option 'host' or 'uri' (not both)"
            )))
        }
    }
    if let Some(id) = options.get("client_id") {
        mqtt.set_client_id(id)?;
    }
    if let Some(user) = options.get("username") {
        mqtt.set_credentials(user, options.get("password").map(str::as_bytes))?;
    }
    if let Some(seconds) = options.parse::<i32>(KIND, "keep_alive")? {
        mqtt.set_keep_alive(seconds)?;
    }
    if let Some(clean) = options.flag(KIND, "clean_session")? {
        mqtt.clean_session = clean;
    }
    match options.get("version") {
        None | Some("3.1.1") | Some("4") => mqtt.set_protocol_version(ProtocolVersion::V311),
        Some("5") | Some("5.0") => mqtt.set_protocol_version(ProtocolVersion::V5),
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "protocol '{KIND}': version '{other}' is not 3.1.1 or 5"
            )))
        }
    }
    let publish_timeout = options
        .millis(KIND, "publish_timeout_ms")?
        .unwrap_or(Duration::from_secs(5));
    let limit = options
        .parse::<usize>(KIND, "receive_queue")?
        .unwrap_or(1000);
    if limit == 0 {
        return Err(Error::InvalidArgument(format!(
            "protocol '{KIND}': receive_queue must be at least 1"
        )));
    }
    let inbox = Arc::new(Inbox {
        state: Mutex::new(InboxState {
            messages: VecDeque::new(),
            closed: false,
        }),
        changed: Condvar::new(),
        limit,
    });
    Ok(Box::new(MqttProtocol {
        client: Client::new(mqtt)?,
        inbox,
        publish_timeout,
    }))
}

fn qos(qos: u8) -> Result<Qos> {
    Qos::from_u8(qos).ok_or_else(|| Error::InvalidQos(format!("QoS {qos} is not 0, 1 or 2")))
}

impl Protocol for MqttProtocol {
    fn kind(&self) -> &str {
        KIND
    }

    fn connect(&self, timeout: Duration) -> Result<()> {
        self.client.connect(timeout).map(drop)
    }

    fn disconnect(&self, timeout: Duration) -> Result<()> {
        self.client.disconnect(timeout)
    }

    fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The payload of the next message of any subscription, waiting up to `timeout`; a
    /// payload above `max_len` is refused and stays queued.
    fn receive(&self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let payload = self
            .inbox
            .pop(timeout)
            .ok_or_else(|| Error::Timeout(format!("no MQTT message arrived within {timeout:?}")))?;
        if payload.len() > max_len {
            let len = payload.len();
            self.inbox.lock().messages.push_front(payload);
            return Err(Error::InvalidArgument(format!(
                "the next message of {len} bytes does not fit the buffer of {max_len}"
            )));
        }
        Ok(payload)
    }

    /// Publishes and waits up to `publish_timeout_ms` for the outcome (QoS 0: written,
    /// QoS 1: PUBACK, QoS 2: PUBCOMP).
    fn publish(&self, topic: &str, payload: &[u8], qos_value: u8, retain: bool) -> Result<()> {
        let token = self
            .client
            .publish(topic, payload, qos(qos_value)?, retain)?;
        self.client.wait(token, self.publish_timeout)
    }

    fn subscribe(&self, filter: &str, qos_value: u8, timeout: Duration) -> Result<()> {
        let inbox = Arc::clone(&self.inbox);
        let handler: MessageHandler = Arc::new(move |message| inbox.push(&message.payload));
        self.client
            .subscribe(filter, qos(qos_value)?, handler, timeout)
            .map(drop)
    }
}

impl Drop for MqttProtocol {
    fn drop(&mut self) {
        // A dispatcher waiting for room must return before the client joins it.
        self.inbox.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let mut options = ProtocolOptions::new();
        assert!(matches!(
            open_from_options(&options),
            Err(Error::InvalidArgument(_))
        ));
        options.set("host", "127.0.0.1");
        options.set("version", "6");
        assert!(open_from_options(&options).is_err());
        options.set("version", "5");
        options.set("receive_queue", "0");
        assert!(open_from_options(&options).is_err());
        options.set("receive_queue", "10");
        assert!(open_from_options(&options).is_ok());
        options.set("colour", "red");
        assert!(open_from_options(&options).is_err());
    }

    #[test]
    fn the_inbox_keeps_order_and_a_closed_one_releases_a_full_wait() {
        let inbox = Arc::new(Inbox {
            state: Mutex::new(InboxState {
                messages: VecDeque::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            limit: 2,
        });
        inbox.push(b"a");
        inbox.push(b"b");
        let pusher = {
            let inbox = Arc::clone(&inbox);
            std::thread::spawn(move || inbox.push(b"c"))
        };
        assert_eq!(
            inbox.pop(Duration::from_secs(5)).as_deref(),
            Some(&b"a"[..])
        );
        pusher.join().unwrap();
        assert_eq!(
            inbox.pop(Duration::from_secs(5)).as_deref(),
            Some(&b"b"[..])
        );
        assert_eq!(
            inbox.pop(Duration::from_secs(5)).as_deref(),
            Some(&b"c"[..])
        );
        assert_eq!(inbox.pop(Duration::from_millis(10)), None);
        inbox.push(b"d");
        inbox.push(b"e");
        let blocked = {
            let inbox = Arc::clone(&inbox);
            std::thread::spawn(move || inbox.push(b"f"))
        };
        inbox.close();
        blocked.join().unwrap();
    }
}
