//! The routing table of the dispatcher: each filter with its handler and the subscription
//! identifier the handle assigned it. A received message that carries subscription
//! identifiers (MQTT 5.0) goes to exactly the handlers of those subscriptions; one without
//! (MQTT 3.1.1, or a broker without identifiers) to every handler whose filter matches its
//! topic. A shared subscription (`$share/<group>/<filter>`) matches by the filter after its
//! group name.

use crate::mqtt::subscribe::MAX_SUBSCRIPTION_ID;
use crate::mqtt::validate::{routing_filter, topic_matches};
use crate::mqtt::Message;
use std::sync::Arc;

pub type MessageHandler = Arc<dyn Fn(&Message) + Send + Sync>;

#[derive(Clone)]
pub struct Subscription {
    pub filter: String,
    pub handler: MessageHandler,
    /// Unique among the table's entries; kept when the filter is subscribed again.
    pub id: u32,
    /// Where the filter topics are matched against starts (after a `$share/<group>/`).
    route_start: usize,
    /// The routing filter has no wildcard: a topic matches by equality.
    exact: bool,
}

impl Subscription {
    fn new(filter: &str, handler: MessageHandler, id: u32) -> Subscription {
        let route = routing_filter(filter);
        Subscription {
            filter: filter.to_string(),
            handler,
            id,
            route_start: filter.len() - route.len(),
            exact: !route.contains(['+', '#']),
        }
    }

    fn matches(&self, topic: &str) -> bool {
        let route = &self.filter[self.route_start..];
        if self.exact {
            route == topic
        } else {
            topic_matches(route, topic)
        }
    }
}

#[derive(Default)]
pub struct SubscriptionTable {
    /// Shared with the dispatcher's snapshot (`snapshot`); a change copies it when the
    /// dispatcher still holds the previous one.
    entries: Arc<Vec<Subscription>>,
    /// The last identifier handed out; identifiers are not reused while the process lives
    /// (until 268,435,455 wrap around), so a late message for a removed subscription finds no
    /// other subscription under its identifier.
    last_id: u32,
}

impl SubscriptionTable {
    /// Adds a subscription; one with the same filter is replaced, as the broker replaces it,
    /// and keeps its identifier. Returns whether it replaced one, and the identifier.
    pub fn insert(&mut self, filter: &str, handler: MessageHandler) -> (bool, u32) {
        let entries = Arc::make_mut(&mut self.entries);
        if let Some(existing) = entries.iter_mut().find(|e| e.filter == filter) {
            existing.handler = handler;
            return (true, existing.id);
        }
        let id = self.next_id();
        Arc::make_mut(&mut self.entries).push(Subscription::new(filter, handler, id));
        (false, id)
    }

    fn next_id(&mut self) -> u32 {
        loop {
            self.last_id = if self.last_id >= MAX_SUBSCRIPTION_ID {
                1
            } else {
                self.last_id + 1
            };
            let candidate = self.last_id;
            if !self.entries.iter().any(|e| e.id == candidate) {
                return candidate;
            }
        }
    }

    pub fn remove(&mut self, filter: &str) -> bool {
        if !self.entries.iter().any(|e| e.filter == filter) {
            return false;
        }
        Arc::make_mut(&mut self.entries).retain(|e| e.filter != filter);
        true
    }

    /// The table as it is now, for routing without the lock (one reference count).
    pub fn snapshot(&self) -> RouteSnapshot {
        RouteSnapshot(self.entries.clone())
    }

    #[cfg(test)]
    pub fn handlers_for(&self, message: &Message) -> Vec<MessageHandler> {
        let mut handlers = Vec::new();
        self.snapshot()
            .for_each_handler(message, |h| handlers.push(h.clone()));
        handlers
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A copy of the routing table the dispatcher keeps between changes.
#[derive(Clone, Default)]
pub struct RouteSnapshot(Arc<Vec<Subscription>>);

impl RouteSnapshot {
    /// Calls `each` with every handler a received message goes to, and returns how many. With
    /// subscription identifiers: those of the subscriptions named (whose filter also matches
    /// the topic: an identifier from a session of an earlier process may name another filter
    /// now); when none of them is ours, or on a message without identifiers, every
    /// subscription whose filter matches. Allocates nothing.
    pub fn for_each_handler(
        &self,
        message: &Message,
        mut each: impl FnMut(&MessageHandler),
    ) -> usize {
        let mut count = 0;
        if !message.subscription_ids.is_empty() {
            for e in self.0.iter() {
                if message.subscription_ids.contains(&e.id) && e.matches(&message.topic) {
                    each(&e.handler);
                    count += 1;
                }
            }
            if count != 0 {
                return count;
            }
        }
        for e in self.0.iter().filter(|e| e.matches(&message.topic)) {
            each(&e.handler);
            count += 1;
        }
        count
    }

    /// Whether any handler would take the message.
    pub fn routes(&self, message: &Message) -> bool {
        self.for_each_handler(message, |_| {}) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn noop() -> MessageHandler {
        Arc::new(|_| {})
    }

    fn message(topic: &str, ids: &[u32]) -> Message {
        Message {
            topic: topic.into(),
            payload: bytes::Bytes::new(),
            qos: 0,
            retain: false,
            dup: false,
            packet_id: 0,
            properties: None,
            subscription_ids: ids.to_vec(),
        }
    }

    #[test]
    fn overlapping_filters_all_receive_and_same_filter_replaces_keeping_its_id() {
        let mut t = SubscriptionTable::default();
        let (_, a) = t.insert("a/#", noop());
        let (_, b) = t.insert("a/+", noop());
        t.insert("b", noop());
        assert_ne!(a, b);
        assert_eq!(t.handlers_for(&message("a/x", &[])).len(), 2);
        assert_eq!(t.insert("a/+", noop()), (true, b));
        assert_eq!(t.len(), 3);
        assert!(t.remove("a/#"));
        assert!(!t.remove("a/#"));
        assert_eq!(t.handlers_for(&message("a/x", &[])).len(), 1);
        // A new subscription does not get the identifier of a removed one.
        let (_, c) = t.insert("a/#", noop());
        assert!(c != a && c != b);
    }

    #[test]
    fn identifiers_route_each_copy_to_its_own_subscription() {
        let mut t = SubscriptionTable::default();
        let hits = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let handler = |i: usize| -> MessageHandler {
            let hits = hits.clone();
            Arc::new(move |_| {
                hits[i].fetch_add(1, Ordering::SeqCst);
            })
        };
        let (_, wide) = t.insert("a/#", handler(0));
        let (_, narrow) = t.insert("a/+/c", handler(1));
        // The broker sends one copy per matching subscription, each with its identifier.
        for ids in [[wide], [narrow]] {
            for h in t.handlers_for(&message("a/b/c", &ids)) {
                h(&message("a/b/c", &ids));
            }
        }
        // Or one copy naming both.
        for h in t.handlers_for(&message("a/b/c", &[wide, narrow])) {
            h(&message("a/b/c", &[]));
        }
        assert_eq!(hits[0].load(Ordering::SeqCst), 2);
        assert_eq!(hits[1].load(Ordering::SeqCst), 2);
        // An identifier that is not ours (an earlier process's session): topic matching.
        assert_eq!(t.handlers_for(&message("a/b/c", &[999])).len(), 2);
        // One of ours naming a filter that does not match the topic: not routed by it.
        assert_eq!(t.handlers_for(&message("a/x", &[narrow])).len(), 1);
    }

    #[test]
    fn shared_subscriptions_route_by_their_inner_filter() {
        let mut t = SubscriptionTable::default();
        t.insert("$share/g/s/#", noop());
        assert_eq!(t.handlers_for(&message("s/1", &[])).len(), 1);
        assert!(t.handlers_for(&message("g/s/1", &[])).is_empty());
    }
}
