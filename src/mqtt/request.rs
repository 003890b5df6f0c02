//! Request/response over MQTT 5.0: a request is a PUBLISH carrying a response topic and a fresh
//! correlation data; the reply is the message on that response topic with the same correlation
//! data. The response topic is subscribed once, on the first request (the normal subscription
//! restore keeps it across reconnects); it comes from the broker's Response Information when
//! given, else from the configured prefix and the client id. Pending requests are bounded and
//! forgotten when their timeout passes. A responder answers with `Client::respond`.

use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::runtime;
use crate::core::tokens::Token;
use crate::mqtt::client::Client;
use crate::mqtt::options::ProtocolVersion;
use crate::mqtt::shared::{Dispatch, Shared};
use crate::mqtt::subscriptions::MessageHandler;
use crate::mqtt::{validate, Message, PublishProperties, Qos};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Receives a request's reply, or why there is none (`Error::Timeout`, or `Error::Disconnected`
/// when the client is freed first). Called exactly once, on the client's dispatcher thread.
pub type ReplyHandler = Box<dyn FnOnce(Result<Message>) + Send>;

enum Pending {
    /// A thread blocked in `Client::request`.
    Waiting(SyncSender<Result<Message>>),
    Callback(ReplyHandler),
}

/// A client's requests waiting for replies, and its response topic once subscribed.
pub struct Requests {
    pending: Mutex<HashMap<Bytes, Pending>>,
    /// The subscribed response topic; held while subscribing so that it happens once.
    response_topic: Mutex<Option<String>>,
    /// Correlation data: this prefix (random per client) and a counter.
    prefix: u64,
    next: AtomicU64,
}

impl Default for Requests {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Requests {
            pending: Mutex::new(HashMap::new()),
            response_topic: Mutex::new(None),
            prefix: hasher.finish(),
            next: AtomicU64::new(1),
        }
    }
}

impl Requests {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, correlation: &[u8]) -> Option<Pending> {
        self.pending().remove(correlation)
    }

    /// Every request still waiting hears `reason` (the client is being freed). Callbacks run
    /// on the dispatcher thread, which runs them before it stops.
    pub(crate) fn fail_all(&self, shared: &Shared, reason: &Error) {
        let pending: Vec<Pending> = self.pending().drain().map(|(_, p)| p).collect();
        for entry in pending {
            finish(shared, entry, Err(reason.clone()), false);
        }
    }

    fn correlation(&self) -> Bytes {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut data = Vec::with_capacity(16);
        data.extend_from_slice(&self.prefix.to_be_bytes());
        data.extend_from_slice(&n.to_be_bytes());
        Bytes::from(data)
    }
}

/// Hands a request its outcome: a waiting thread through its channel, a callback directly
/// (`on_dispatcher`) or through the dispatcher.
fn finish(shared: &Shared, entry: Pending, outcome: Result<Message>, on_dispatcher: bool) {
    match entry {
        Pending::Waiting(reply) => {
            let _ = reply.try_send(outcome);
        }
        Pending::Callback(handler) if on_dispatcher => handler(outcome),
        Pending::Callback(handler) => {
            shared.emit(Dispatch::Call(Box::new(move || handler(outcome))))
        }
    }
}

/// The handler of the response topic: replies go to the request with their correlation data.
fn reply_router(requests: Weak<Requests>, shared: Weak<Shared>) -> MessageHandler {
    Arc::new(move |message: &Message| {
        let (Some(requests), Some(shared)) = (requests.upgrade(), shared.upgrade()) else {
            return;
        };
        let correlation = message
            .properties
            .as_deref()
            .and_then(|p| p.correlation_data.as_ref());
        match correlation.and_then(|c| requests.take(c)) {
            Some(entry) => finish(&shared, entry, Ok(message.clone()), true),
            None => log!(
                Level::Debug,
                "a message on the response topic '{}' matches no pending request (timed out, or not a reply): dropped",
                message.topic
            ),
        }
    })
}

/// Characters a client id may have that a topic name may not.
fn topic_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if matches!(c, '+' | '#' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

impl Client {
    /// Sends `payload` to `topic` as a request (QoS 1, with a response topic and a fresh
    /// correlation data) and waits up to `timeout` for the reply. Not from inside one of the
    /// client's callbacks: the reply could not be delivered while it waits (use
    /// `request_async` there).
    pub fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> Result<Message> {
        if self.in_callback() {
            return Err(Error::CalledFromCallback(
                "a blocking request from inside the client's own callback would wait for a reply that only this thread can deliver; use the asynchronous request".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        let (reply, answer) = mpsc::sync_channel(1);
        let correlation = self.send_request(topic, payload, timeout, Pending::Waiting(reply))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match answer.recv_timeout(remaining) {
            Ok(outcome) => outcome,
            Err(_) => {
                if self.requests.take(&correlation).is_none() {
                    // The reply (or the client's end) took the request just as the time ran
                    // out: it is being handed over now.
                    if let Ok(outcome) = answer.recv_timeout(Duration::from_secs(1)) {
                        return outcome;
                    }
                }
                Err(timed_out(topic, timeout))
            }
        }
    }

    /// `request` without waiting: `handler` receives the reply, or `Error::Timeout` once
    /// `timeout` passed, exactly once, on the client's dispatcher thread. When this returns an
    /// error the handler is not called. May be called from inside a callback.
    pub fn request_async(
        &self,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
        handler: ReplyHandler,
    ) -> Result<()> {
        let correlation = self.send_request(topic, payload, timeout, Pending::Callback(handler))?;
        let requests = Arc::downgrade(&self.requests);
        let shared = Arc::downgrade(self.shared());
        let topic = topic.to_string();
        runtime::get()?.spawn(async move {
            tokio::time::sleep(timeout).await;
            let (Some(requests), Some(shared)) = (requests.upgrade(), shared.upgrade()) else {
                return;
            };
            if let Some(entry) = requests.take(&correlation) {
                finish(&shared, entry, Err(timed_out(&topic, timeout)), false);
            }
        });
        Ok(())
    }

    /// Answers `request` (a received message): publishes `payload` to its response topic with
    /// its correlation data.
    pub fn respond(&self, request: &Message, payload: &[u8], qos: Qos) -> Result<Token> {
        let properties = request.properties.as_deref();
        self.respond_to(
            properties.and_then(|p| p.response_topic.as_deref()),
            properties.and_then(|p| p.correlation_data.as_deref()),
            payload,
            qos,
        )
    }

    /// `respond` from a request's response topic and correlation data.
    pub fn respond_to(
        &self,
        response_topic: Option<&str>,
        correlation: Option<&[u8]>,
        payload: &[u8],
        qos: Qos,
    ) -> Result<Token> {
        self.require_v5("responding to a request")?;
        let topic = response_topic.ok_or_else(|| {
            Error::NoResponseTopic(
                "the message has no response topic: it is not a request, there is nowhere to send the response".into(),
            )
        })?;
        let properties = PublishProperties {
            correlation_data: correlation.map(Bytes::copy_from_slice),
            ..PublishProperties::default()
        };
        self.publish_with_properties(topic, payload, qos, false, Some(properties))
    }

    fn require_v5(&self, what: &str) -> Result<()> {
        if self.options().version != ProtocolVersion::V5 {
            return Err(Error::Mqtt5Required(format!(
                "{what} needs MQTT 5.0 (response topic and correlation data); this client speaks MQTT 3.1.1"
            )));
        }
        Ok(())
    }

    /// Checks, subscribes the response topic if needed, registers the request and publishes
    /// it. Returns its correlation data.
    fn send_request(
        &self,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
        pending: Pending,
    ) -> Result<Bytes> {
        self.require_v5("a request")?;
        validate::topic_name(topic)?;
        if timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "a request needs a timeout above 0 ms".into(),
            ));
        }
        let response_topic = self.response_topic(timeout)?;
        let correlation = self.requests.correlation();
        {
            let mut table = self.requests.pending();
            let maximum = self.options().max_pending_requests;
            if table.len() >= maximum {
                return Err(Error::TooManyRequests(format!(
                    "{maximum} requests are already waiting for their replies; the request to '{topic}' was not sent"
                )));
            }
            table.insert(correlation.clone(), pending);
        }
        let properties = PublishProperties {
            response_topic: Some(response_topic),
            correlation_data: Some(correlation.clone()),
            ..PublishProperties::default()
        };
        if let Err(e) =
            self.publish_with_properties(topic, payload, Qos::AtLeastOnce, false, Some(properties))
        {
            self.requests.take(&correlation);
            return Err(e);
        }
        Ok(correlation)
    }

    /// The response topic, subscribed on first use.
    fn response_topic(&self, timeout: Duration) -> Result<String> {
        let mut subscribed = self
            .requests
            .response_topic
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(topic) = subscribed.as_ref() {
            return Ok(topic.clone());
        }
        let id = topic_safe(&self.client_id());
        let information = self
            .shared()
            .response_information
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let from_broker = information.filter(|i| !i.is_empty()).map(|info| {
            if info.ends_with('/') {
                format!("{info}{id}")
            } else {
                format!("{info}/{id}")
            }
        });
        let topic = match from_broker.filter(|t| validate::topic_name(t).is_ok()) {
            Some(topic) => topic,
            None => format!("{}{id}", self.options().response_topic_prefix),
        };
        validate::topic_name(&topic)?;
        let router = reply_router(
            Arc::downgrade(&self.requests),
            Arc::downgrade(self.shared()),
        );
        self.subscribe(&topic, Qos::AtLeastOnce, router, timeout)?;
        *subscribed = Some(topic.clone());
        Ok(topic)
    }
}

fn timed_out(topic: &str, timeout: Duration) -> Error {
    Error::Timeout(format!(
        "no reply to the request to '{topic}' within {} ms",
        timeout.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_data_is_fresh_for_every_request() {
        let requests = Requests::default();
        let a = requests.correlation();
        let b = requests.correlation();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_eq!(a[..8], b[..8], "one prefix per client");
    }

    #[test]
    fn client_ids_become_topic_safe() {
        assert_eq!(topic_safe("a+b#c"), "a_b_c");
        assert_eq!(topic_safe("eq1-0123"), "eq1-0123");
    }
}
