//! The protocol registry: protocols are created by name from key/value options, so that an
//! application holds protocols of any kind behind one type (`Protocol`). Built-in protocols are
//! listed in `builtins()`; others (plugins, tests) add themselves with `register`.
//!
//! A protocol kind implements only what it supports: every operation of `Protocol` has a
//! default that fails with `Error::UnsupportedOperation`.

use crate::core::error::{Error, Result};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The options a protocol is opened with: text keys and values, as C (`eq1_protocol_options_set`)
/// and Python (`ProtocolManager.create(name, **options)`) hand them over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolOptions {
    values: BTreeMap<String, String>,
}

impl ProtocolOptions {
    pub fn new() -> ProtocolOptions {
        ProtocolOptions::default()
    }

    /// Sets (or replaces) `key`.
    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_owned(), value.to_owned());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, which the protocol `kind` needs.
    pub fn required(&self, kind: &str, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            Error::InvalidArgument(format!("protocol '{kind}' needs the option '{key}'"))
        })
    }

    /// `key` parsed as a `T`, or `None` when absent; a value that does not parse is refused.
    pub fn parse<T: FromStr>(&self, kind: &str, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                Error::InvalidArgument(format!(
                    "protocol '{kind}': option '{key}' has the invalid value '{text}'"
                ))
            }),
        }
    }

    /// `key` as a boolean (`true/false`, `1/0`, `yes/no`, `on/off`), or `None` when absent.
    pub fn flag(&self, kind: &str, key: &str) -> Result<Option<bool>> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(Error::InvalidArgument(format!(
                    "protocol '{kind}': option '{key}' must be true or false, not '{v}'"
                ))),
            },
        }
    }

    /// A millisecond option as a duration, or `None` when absent.
    pub fn millis(&self, kind: &str, key: &str) -> Result<Option<Duration>> {
        Ok(self.parse::<u64>(kind, key)?.map(Duration::from_millis))
    }

    /// Fails naming the first key not in `known`, so that a misspelt option is not ignored.
    pub fn only(&self, kind: &str, known: &[&str]) -> Result<()> {
        match self.values.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(Error::InvalidArgument(format!(
                "protocol '{kind}' has no option '{key}' (it knows: {})",
                known.join(", ")
            ))),
        }
    }
}

fn unsupported<T>(kind: &str, operation: &str) -> Result<T> {
    Err(Error::UnsupportedOperation(format!(
        "protocol '{kind}' does not support {operation}"
    )))
}

/// One protocol instance behind the one handle. Only `kind`, `connect`, `disconnect` and
/// `is_connected` are required; what a kind does not support fails with
/// `Error::UnsupportedOperation`. Methods take `&self`: instances are shared between threads.
pub trait Protocol: Send + Sync {
    /// The registered name it was opened by (`"tcp"`, `"modbus-tcp"`...).
    fn kind(&self) -> &str;
    fn connect(&self, timeout: Duration) -> Result<()>;
    fn disconnect(&self, timeout: Duration) -> Result<()>;
    fn is_connected(&self) -> bool;

    fn send(&self, _data: &[u8], _timeout: Duration) -> Result<()> {
        unsupported(self.kind(), "send")
    }
    fn receive(&self, _max_len: usize, _timeout: Duration) -> Result<Vec<u8>> {
        unsupported(self.kind(), "receive")
    }
    /// Sends `data` and receives its answer (one frame, one response PDU...).
    fn request(&self, _data: &[u8], _max_len: usize, _timeout: Duration) -> Result<Vec<u8>> {
        unsupported(self.kind(), "request")
    }
    fn publish(&self, _topic: &str, _payload: &[u8], _qos: u8, _retain: bool) -> Result<()> {
        unsupported(self.kind(), "publish")
    }
    fn subscribe(&self, _filter: &str, _qos: u8, _timeout: Duration) -> Result<()> {
        unsupported(self.kind(), "subscribe")
    }
}

/// Makes an instance from its options (checking them: a bad or unknown option fails here).
pub type Factory = Arc<dyn Fn(&ProtocolOptions) -> Result<Box<dyn Protocol>> + Send + Sync>;

/// The protocols built into the library: name and factory. Add a line here for a new one.
fn builtins() -> Vec<(&'static str, Factory)> {
    vec![
        ("mqtt", Arc::new(crate::mqtt::protocol::open_from_options)),
        ("tcp", Arc::new(crate::protocols::tcp::open_from_options)),
        (
            "serial",
            Arc::new(crate::protocols::serial::open_from_options),
        ),
        (
            "modbus-tcp",
            Arc::new(crate::modbus::protocol::open_tcp_from_options),
        ),
        (
            "modbus-rtu",
            Arc::new(crate::modbus::protocol::open_rtu_from_options),
        ),
    ]
}

fn registry() -> MutexGuard<'static, BTreeMap<String, Factory>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, Factory>>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            Mutex::new(
                builtins()
                    .into_iter()
                    .map(|(name, factory)| (name.to_owned(), factory))
                    .collect(),
            )
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "protocol name '{name}' must be 1..64 of [A-Za-z0-9._-]"
        )))
    }
}

/// Adds the protocol `name`; a name registered already is refused (`Error::ProtocolExists`),
/// so that a plugin cannot silently replace a built-in.
pub fn register(
    name: &str,
    factory: impl Fn(&ProtocolOptions) -> Result<Box<dyn Protocol>> + Send + Sync + 'static,
) -> Result<()> {
    check_name(name)?;
    let mut registry = registry();
    if registry.contains_key(name) {
        return Err(Error::ProtocolExists(format!(
            "a protocol named '{name}' is registered already"
        )));
    }
    registry.insert(name.to_owned(), Arc::new(factory));
    Ok(())
}

/// Whether `name` is registered.
pub fn is_registered(name: &str) -> bool {
    registry().contains_key(name)
}

/// The registered names, sorted.
pub fn names() -> Vec<String> {
    registry().keys().cloned().collect()
}

/// Creates an instance of the protocol `name` (not connected yet).
pub fn open(name: &str, options: &ProtocolOptions) -> Result<Box<dyn Protocol>> {
    // The factory runs without the registry's lock: it may take time or register others.
    let factory = registry().get(name).cloned();
    match factory {
        Some(factory) => factory(options),
        None => Err(Error::UnknownProtocol(format!(
            "no protocol named '{name}' is registered (registered: {})",
            names().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Null;
    impl Protocol for Null {
        fn kind(&self) -> &str {
            "null-test"
        }
        fn connect(&self, _: Duration) -> Result<()> {
            Ok(())
        }
        fn disconnect(&self, _: Duration) -> Result<()> {
            Ok(())
        }
        fn is_connected(&self) -> bool {
            true
        }
    }

    #[test]
    fn builtins_are_registered_and_a_name_cannot_be_taken_twice() {
        assert!(is_registered("mqtt") && is_registered("tcp") && is_registered("serial"));
        assert!(is_registered("modbus-tcp") && is_registered("modbus-rtu"));
        register("null-test", |_| Ok(Box::new(Null) as Box<dyn Protocol>)).unwrap();
        assert!(matches!(
            register("null-test", |_| Ok(Box::new(Null) as Box<dyn Protocol>)),
            Err(Error::ProtocolExists(_))
        ));
        assert!(matches!(
            register("bad name", |_| Ok(Box::new(Null) as Box<dyn Protocol>)),
            Err(Error::InvalidArgument(_))
        ));
        let null = open("null-test", &ProtocolOptions::new()).unwrap();
        assert!(matches!(
            null.publish("a", b"x", 0, false),
            Err(Error::UnsupportedOperation(_))
        ));
        assert!(matches!(
            open("nope", &ProtocolOptions::new()),
            Err(Error::UnknownProtocol(_))
        ));
    }

    #[test]
    fn options_parse_and_refuse_what_they_do_not_know() {
        let mut options = ProtocolOptions::new();
        options.set("port", "80x");
        options.set("tls", "yes");
        assert!(options.parse::<u16>("t", "port").is_err());
        assert_eq!(options.flag("t", "tls").unwrap(), Some(true));
        assert!(options.only("t", &["port"]).is_err());
        assert!(options.only("t", &["port", "tls"]).is_ok());
    }
}
