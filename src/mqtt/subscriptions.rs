//! The subscription table: each filter with its QoS and its handler. The dispatcher routes a
//! received message to every matching handler; the engine restores the filters after a reconnect.

use crate::mqtt::validate::topic_matches;
use crate::mqtt::Message;
use std::sync::Arc;

pub type MessageHandler = Arc<dyn Fn(&Message) + Send + Sync>;

pub struct Subscription {
    pub filter: String,
    pub qos: u8,
    pub handler: MessageHandler,
    /// The broker acknowledged it in the current session.
    pub confirmed: bool,
}

#[derive(Default)]
pub struct SubscriptionTable {
    entries: Vec<Subscription>,
}

impl SubscriptionTable {
    /// Adds a subscription; one with the same filter is replaced, as the broker replaces it.
    /// Returns true when it replaced one.
    pub fn insert(&mut self, filter: &str, qos: u8, handler: MessageHandler) -> bool {
        let entry = Subscription {
            filter: filter.to_string(),
            qos,
            handler,
            confirmed: false,
        };
        match self.entries.iter_mut().find(|e| e.filter == filter) {
            Some(existing) => {
                *existing = entry;
                true
            }
            None => {
                self.entries.push(entry);
                false
            }
        }
    }

    pub fn remove(&mut self, filter: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.filter != filter);
        self.entries.len() != before
    }

    pub fn qos_of(&self, filter: &str) -> Option<u8> {
        self.entries
            .iter()
            .find(|e| e.filter == filter)
            .map(|e| e.qos)
    }

    pub fn handlers_for(&self, topic: &str) -> Vec<MessageHandler> {
        self.entries
            .iter()
            .filter(|e| topic_matches(&e.filter, topic))
            .map(|e| e.handler.clone())
            .collect()
    }

    pub fn set_confirmed(&mut self, filter: &str) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.filter == filter) {
            entry.confirmed = true;
        }
    }

    /// Filters to send after a (re)connect: all of them when the broker kept no session, only
    /// the ones it never acknowledged when it did.
    pub fn to_restore(&mut self, session_present: bool) -> Vec<(String, u8)> {
        if !session_present {
            for entry in &mut self.entries {
                entry.confirmed = false;
            }
        }
        self.entries
            .iter()
            .filter(|e| !e.confirmed)
            .map(|e| (e.filter.clone(), e.qos))
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> MessageHandler {
        Arc::new(|_| {})
    }

    #[test]
    fn overlapping_filters_all_receive_and_same_filter_replaces() {
        let mut t = SubscriptionTable::default();
        t.insert("a/#", 1, noop());
        t.insert("a/+", 0, noop());
        t.insert("b", 0, noop());
        assert_eq!(t.handlers_for("a/x").len(), 2);
        t.insert("a/+", 2, noop());
        assert_eq!(t.len(), 3);
        assert!(t.remove("a/#"));
        assert!(!t.remove("a/#"));
        assert_eq!(t.handlers_for("a/x").len(), 1);
    }

    #[test]
    fn restore_depends_on_session_present() {
        let mut t = SubscriptionTable::default();
        t.insert("a", 1, noop());
        t.insert("b", 2, noop());
        t.set_confirmed("a");
        assert_eq!(t.to_restore(true), vec![("b".to_string(), 2)]);
        assert_eq!(t.to_restore(false).len(), 2);
    }
}
