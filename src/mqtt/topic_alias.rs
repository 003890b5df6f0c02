//! Outbound topic aliases (MQTT 5.0): within the Topic Alias Maximum the broker announced, a
//! repeated topic is sent once with an alias and then as the alias alone; when every alias is
//! taken, the least recently used one is given to the new topic. Aliases belong to one
//! connection: the table starts empty with each CONNACK (`reset`).
//!
//! The session asks `plan` while it encodes a PUBLISH into the write buffer and `commit`s the
//! plan once the packet is encoded, so that the PUBLISH that establishes an alias is always
//! ahead of every PUBLISH that uses it in the byte stream of the same connection.

use std::collections::{BTreeMap, HashMap};

/// Topics this short gain nothing from an alias (the alias property takes 3 bytes).
const MIN_ALIASED_TOPIC: usize = 4;

/// How a PUBLISH carries its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasUse {
    /// The full topic, no alias.
    None,
    /// The full topic and the alias it establishes (or re-maps).
    Establish(u16),
    /// The alias alone, with an empty topic.
    Reuse(u16),
}

impl AliasUse {
    /// The alias property, if any.
    pub fn alias(self) -> Option<u16> {
        match self {
            AliasUse::None => None,
            AliasUse::Establish(a) | AliasUse::Reuse(a) => Some(a),
        }
    }

    /// Whether the topic is sent in the packet.
    pub fn sends_topic(self) -> bool {
        !matches!(self, AliasUse::Reuse(_))
    }
}

#[derive(Debug, Default)]
pub struct OutboundAliases {
    /// 0: aliases are off on this connection (not allowed by the broker, or by the options).
    maximum: u16,
    /// Topic -> (alias, last use).
    by_topic: HashMap<String, (u16, u64)>,
    /// Last use -> alias, oldest first: the replacement order.
    by_use: BTreeMap<u64, u16>,
    /// Alias - 1 -> the topic it stands for now.
    topics: Vec<String>,
    clock: u64,
}

impl OutboundAliases {
    /// A new connection: no alias is known to the broker; at most `maximum` may be used.
    pub fn reset(&mut self, maximum: u16) {
        *self = OutboundAliases {
            maximum,
            ..OutboundAliases::default()
        };
    }

    /// How `topic` would be sent now. Changes nothing until `commit`.
    pub fn plan(&self, topic: &str) -> AliasUse {
        if self.maximum == 0 || topic.len() < MIN_ALIASED_TOPIC {
            return AliasUse::None;
        }
        if let Some((alias, _)) = self.by_topic.get(topic) {
            return AliasUse::Reuse(*alias);
        }
        if self.topics.len() < self.maximum as usize {
            return AliasUse::Establish(self.topics.len() as u16 + 1);
        }
        match self.by_use.first_key_value() {
            Some((_, alias)) => AliasUse::Establish(*alias),
            None => AliasUse::None,
        }
    }

    /// The packet planned for `topic` is encoded: the table follows what the broker now knows.
    pub fn commit(&mut self, topic: &str, plan: AliasUse) {
        self.clock += 1;
        let now = self.clock;
        match plan {
            AliasUse::None => {}
            AliasUse::Reuse(alias) => {
                if let Some((_, last)) = self.by_topic.get_mut(topic) {
                    self.by_use.remove(last);
                    *last = now;
                    self.by_use.insert(now, alias);
                }
            }
            AliasUse::Establish(alias) => {
                let index = alias as usize - 1;
                if index < self.topics.len() {
                    let old = std::mem::take(&mut self.topics[index]);
                    if let Some((_, last)) = self.by_topic.remove(&old) {
                        self.by_use.remove(&last);
                    }
                    self.topics[index] = topic.to_string();
                } else {
                    self.topics.push(topic.to_string());
                }
                self.by_topic.insert(topic.to_string(), (alias, now));
                self.by_use.insert(now, alias);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(table: &mut OutboundAliases, topic: &str) -> AliasUse {
        let plan = table.plan(topic);
        table.commit(topic, plan);
        plan
    }

    #[test]
    fn a_repeated_topic_is_established_once_then_reused() {
        let mut t = OutboundAliases::default();
        t.reset(2);
        assert_eq!(send(&mut t, "sensor/1"), AliasUse::Establish(1));
        assert_eq!(send(&mut t, "sensor/2"), AliasUse::Establish(2));
        assert_eq!(send(&mut t, "sensor/1"), AliasUse::Reuse(1));
        assert_eq!(send(&mut t, "sensor/2"), AliasUse::Reuse(2));
    }

    #[test]
    fn the_least_recently_used_alias_is_replaced() {
        let mut t = OutboundAliases::default();
        t.reset(2);
        send(&mut t, "topic/a");
        send(&mut t, "topic/b");
        send(&mut t, "topic/a"); // b is now the least recently used
        assert_eq!(send(&mut t, "topic/c"), AliasUse::Establish(2));
        assert_eq!(send(&mut t, "topic/a"), AliasUse::Reuse(1));
        assert_eq!(send(&mut t, "topic/c"), AliasUse::Reuse(2));
        assert_eq!(
            send(&mut t, "topic/b"),
            AliasUse::Establish(1),
            "a was older than c"
        );
    }

    #[test]
    fn off_short_topics_and_reset() {
        let mut t = OutboundAliases::default();
        assert_eq!(send(&mut t, "sensor/1"), AliasUse::None, "maximum 0: off");
        t.reset(5);
        assert_eq!(send(&mut t, "abc"), AliasUse::None, "too short to gain");
        assert_eq!(send(&mut t, "sensor/1"), AliasUse::Establish(1));
        t.reset(5);
        assert_eq!(
            send(&mut t, "sensor/1"),
            AliasUse::Establish(1),
            "new connection"
        );
    }

    #[test]
    fn a_plan_not_committed_changes_nothing() {
        let mut t = OutboundAliases::default();
        t.reset(1);
        assert_eq!(t.plan("sensor/1"), AliasUse::Establish(1));
        assert_eq!(t.plan("sensor/1"), AliasUse::Establish(1));
        t.commit("sensor/1", AliasUse::None);
        assert_eq!(t.plan("sensor/1"), AliasUse::Establish(1));
    }
}
