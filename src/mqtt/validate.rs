//! Checks applied before anything is queued: topic names, topic filters, QoS, client ids, and
//! the topic-matching rule used to route a received message to its subscriptions.

use crate::core::error::{Error, Result};
use crate::mqtt::Qos;

/// Longest UTF-8 string MQTT can encode (two-byte length prefix).
pub(crate) const MAX_STRING_LEN: usize = 65_535;

pub fn topic_name(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::InvalidTopic("topic name is empty".into()));
    }
    check_string("topic name", topic).map_err(Error::InvalidTopic)?;
    if let Some(c) = topic.chars().find(|c| *c == '+' || *c == '#') {
        return Err(Error::InvalidTopic(format!(
            "topic name '{}' contains the wildcard '{c}'; wildcards are allowed only in subscription filters",
            shorten(topic)
        )));
    }
    Ok(())
}

/// A topic filter, also a shared one (`$share/<group>/<filter>`: the group name is not empty
/// and has no `/`, `+` or `#`; the filter after it follows the usual rules).
pub fn topic_filter(filter: &str) -> Result<()> {
    if filter.is_empty() {
        return Err(Error::InvalidFilter("topic filter is empty".into()));
    }
    check_string("topic filter", filter).map_err(Error::InvalidFilter)?;
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let Some((group, inner)) = rest.split_once('/') else {
            return Err(Error::InvalidFilter(format!(
                "shared subscription '{}' has no topic filter after the group name ($share/<group>/<filter>)",
                shorten(filter)
            )));
        };
        if group.is_empty() {
            return Err(Error::InvalidFilter(format!(
                "shared subscription '{}' has an empty group name",
                shorten(filter)
            )));
        }
        if group.contains(['+', '#']) {
            return Err(Error::InvalidFilter(format!(
                "shared subscription '{}': the group name may not contain '+' or '#'",
                shorten(filter)
            )));
        }
        if inner.is_empty() {
            return Err(Error::InvalidFilter(format!(
                "shared subscription '{}' has an empty topic filter",
                shorten(filter)
            )));
        }
        return plain_filter(inner);
    }
    plain_filter(filter)
}

const SHARE_PREFIX: &str = "$share/";

/// Whether `filter` is a shared subscription (`$share/<group>/<filter>`).
pub fn is_shared(filter: &str) -> bool {
    filter.starts_with(SHARE_PREFIX)
}

/// The filter that received topics are matched against: for a shared subscription the part
/// after the group name, otherwise the filter itself.
pub fn routing_filter(filter: &str) -> &str {
    filter
        .strip_prefix(SHARE_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, inner)| inner)
}

fn plain_filter(filter: &str) -> Result<()> {
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != last) {
            return Err(Error::InvalidFilter(format!(
                "topic filter '{}': '#' must be a whole level and the last one",
                shorten(filter)
            )));
        }
        if level.contains('+') && *level != "+" {
            return Err(Error::InvalidFilter(format!(
                "topic filter '{}': '+' must occupy a whole level",
                shorten(filter)
            )));
        }
    }
    Ok(())
}

pub fn qos(qos: i32) -> Result<Qos> {
    match qos {
        0 => Ok(Qos::AtMostOnce),
        1 => Ok(Qos::AtLeastOnce),
        2 => Ok(Qos::ExactlyOnce),
        _ => Err(Error::InvalidQos(format!(
            "QoS {qos} is out of range; use 0, 1 or 2"
        ))),
    }
}

pub fn client_id(id: &str) -> Result<()> {
    check_string("client id", id).map_err(Error::InvalidClientId)
}

/// MQTT 3.1 client ids: 1 to 23 bytes (3.1.1 lifted the limit).
pub fn mqtt31_client_id(id: &str) -> Result<()> {
    client_id(id)?;
    let max = crate::mqtt::options::MQTT31_MAX_CLIENT_ID;
    if id.is_empty() || id.len() > max {
        return Err(Error::InvalidClientId(format!(
            "client id '{}' is {} bytes; MQTT 3.1 allows 1 to {max}",
            shorten(id),
            id.len()
        )));
    }
    Ok(())
}

/// An MQTT 5.0 authentication method name: a non-empty UTF-8 string of the spec's rules.
pub fn auth_method(method: &str) -> Result<()> {
    if method.is_empty() {
        return Err(Error::InvalidArgument(
            "authentication method is empty".into(),
        ));
    }
    check_string("authentication method", method).map_err(Error::InvalidArgument)
}

/// Strings the MQTT spec forbids in any UTF-8 field: too long, NUL, or control characters it
/// calls out (U+0001..U+001F and U+007F..U+009F are discouraged; NUL is forbidden).
fn check_string(what: &str, s: &str) -> std::result::Result<(), String> {
    if s.len() > MAX_STRING_LEN {
        return Err(format!(
            "{what} is {} bytes long; MQTT allows at most {MAX_STRING_LEN}",
            s.len()
        ));
    }
    if s.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    Ok(())
}

/// Does `topic` match `filter` (MQTT 4.7)? Topics starting with '$' never match a filter that
/// starts with a wildcard.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    // Bytes, not chars: '/' never occurs inside a UTF-8 sequence, and a str pattern search
    // costs several times this on every received message.
    let mut filter_levels = filter.as_bytes().split(|&b| b == b'/');
    let mut topic_levels = topic.as_bytes().split(|&b| b == b'/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn shorten(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_reject_wildcards_empty_and_nul() {
        assert!(topic_name("a/b").is_ok());
        assert!(topic_name("é/ü").is_ok());
        assert!(matches!(topic_name(""), Err(Error::InvalidTopic(_))));
        assert!(matches!(topic_name("a/+"), Err(Error::InvalidTopic(_))));
        assert!(matches!(topic_name("a/#"), Err(Error::InvalidTopic(_))));
        assert!(matches!(topic_name("a\0b"), Err(Error::InvalidTopic(_))));
        assert!(topic_name(&"x".repeat(MAX_STRING_LEN)).is_ok());
        assert!(topic_name(&"x".repeat(MAX_STRING_LEN + 1)).is_err());
    }

    #[test]
    fn filters_follow_wildcard_rules() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "$SYS/#"] {
            assert!(topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a+", "#/a", "a#", "a/b#", "+a/b"] {
            assert!(
                matches!(topic_filter(bad), Err(Error::InvalidFilter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn shared_subscriptions_need_a_group_and_a_valid_filter() {
        for ok in [
            "$share/g/a",
            "$share/g/#",
            "$share/group-1/a/+/b",
            "$share/g//",
        ] {
            assert!(topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/g+/a",
            "$share/#/a",
            "$share/g/a/#/b",
            "$share/g/a+",
        ] {
            assert!(
                matches!(topic_filter(bad), Err(Error::InvalidFilter(_))),
                "{bad}"
            );
        }
        assert_eq!(routing_filter("$share/g/a/+"), "a/+");
        assert_eq!(routing_filter("a/+"), "a/+");
        assert!(is_shared("$share/g/a") && !is_shared("$sharex/g/a"));
        assert!(topic_matches(routing_filter("$share/g/s/#"), "s/1"));
    }

    #[test]
    fn qos_range_is_checked() {
        assert_eq!(qos(0), Ok(Qos::AtMostOnce));
        assert_eq!(qos(2), Ok(Qos::ExactlyOnce));
        assert!(matches!(qos(3), Err(Error::InvalidQos(_))));
        assert!(matches!(qos(-1), Err(Error::InvalidQos(_))));
    }

    #[test]
    fn matching_follows_mqtt_4_7() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(topic_matches("a/+", "a/b"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "x/y"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(!topic_matches("+/x", "$SYS/x"));
        assert!(topic_matches("$SYS/#", "$SYS/x"));
        assert!(!topic_matches("a/b", "a/c"));
        assert!(topic_matches("+/+", "/x"));
        assert!(!topic_matches("a", "a/b"));
    }

    #[test]
    fn long_multibyte_topics_are_shortened_without_panicking() {
        let topic = "é".repeat(100) + "+";
        assert!(topic_name(&topic).is_err());
    }
}
