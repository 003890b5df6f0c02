//! Everything a client is configured with before it connects: brokers, identity, session,
//! limits, TLS, reconnect and offline-queue behaviour. Setters validate; nothing panics.

use crate::core::error::{Error, Result};
pub use crate::core::tls::{ClientCertificate, TlsOptions, TlsVersion};
pub use crate::core::transport::{Endpoint, Transport, TransportOptions};
use crate::core::transport::{EnvProxies, Proxy};
use crate::mqtt::validate;
use std::path::PathBuf;
use std::time::Duration;

/// MQTT protocol level on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    V311,
    V5,
}

/// What the offline queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFullPolicy {
    /// Refuse the new message with `QueueFull`.
    RejectNew,
    /// Drop the oldest queued message; its delivery reports `Dropped`.
    DropOldest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5.0 will properties (message expiry, payload format, content type, response
    /// topic, correlation data, user properties).
    pub properties: Option<std::sync::Arc<crate::mqtt::PublishProperties>>,
    /// MQTT 5.0 Will Delay Interval in seconds: the broker waits this long after the
    /// connection ended (and not at all if the session resumes meanwhile).
    pub delay: Option<u32>,
}

/// MQTT 5.0 CONNECT properties: sent only when the user set them (a broker applies the spec's
/// defaults to the rest, and a strict one rejects values it does not like).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct V5ConnectOptions {
    /// How many unacknowledged QoS 1/2 messages the broker may send us at once (absent: 65,535).
    pub receive_maximum: Option<u16>,
    /// Send our maximum packet size (set by `set_max_packet_size`).
    pub announce_max_packet_size: bool,
    /// How many topic aliases the broker may use towards us (0: none, not sent).
    pub topic_alias_maximum: u16,
    pub request_response_information: Option<bool>,
    pub request_problem_information: Option<bool>,
    pub user_properties: Vec<(String, String)>,
}

/// Response topics are `<prefix><client id>` unless the broker gives Response Information.
pub const DEFAULT_RESPONSE_TOPIC_PREFIX: &str = "eq1/response/";
/// Requests waiting for a reply at once, by default.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 10_000;
/// The enhanced-authentication method of CONNECT (MQTT 5.0) and its initial data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethod {
    pub method: String,
    pub data: Option<bytes::Bytes>,
}

/// MQTT 3.1 limits client identifiers to 23 bytes (3.1.1 lifted it).
pub(crate) const MQTT31_MAX_CLIENT_ID: usize = 23;

/// Largest packet MQTT can frame: 1 + 4 length bytes + 268,435,455.
pub(crate) const MQTT_MAX_PACKET_SIZE: u32 = 268_435_460;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub brokers: Vec<Endpoint>,
    /// `brokers` still holds the built-in default (localhost:1883), not a user's choice.
    brokers_are_default: bool,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub keep_alive: Duration,
    pub clean_session: bool,
    pub session_expiry: u32,
    pub version: ProtocolVersion,
    pub connect_timeout: Duration,
    pub inflight_window: u16,
    pub max_packet_size: u32,
    pub tls: Option<TlsOptions>,
    pub auto_reconnect: bool,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub queue_max_messages: usize,
    pub queue_max_bytes: usize,
    pub queue_full_policy: QueueFullPolicy,
    pub queue_before_connect: bool,
    /// Received messages waiting for callbacks: beyond either bound the socket is not read
    /// (the broker holds the rest: TCP flow control, and its inflight window for QoS 1/2).
    pub inbound_max_messages: usize,
    pub inbound_max_bytes: usize,
    pub v5_connect: V5ConnectOptions,
    /// An MQTT 5.0 CONNECT refused for its protocol version is retried as MQTT 3.1.1.
    pub protocol_fallback: bool,
    /// MQTT 5.0 enhanced authentication: the method (property 0x15) and initial data (0x16)
    /// of CONNECT; the exchange continues through the client's authentication handler.
    pub auth: Option<AuthMethod>,
    /// With `version` 3.1.1: speak MQTT 3.1 instead (protocol name `MQIsdp`, level 3) for old
    /// brokers. Only CONNECT differs on the wire for a client.
    pub mqtt31: bool,
    /// Follow a CONNACK 0x9C / 0x9D Server Reference to the next server (bounded hops).
    pub follow_redirects: bool,
    /// Accept brokers with and without TLS in one list while credentials are set (they would
    /// go in clear to the plaintext ones). Off by default: `check_consistent` refuses it.
    pub allow_plaintext_fallback: bool,
    /// MQTT 5.0: assign topic aliases to repeated topics within the broker's Topic Alias
    /// Maximum (on by default; only used when the broker allows aliases).
    pub topic_alias_auto: bool,
    /// Request/response: where response topics are made when the broker gives no Response
    /// Information (`<prefix><client id>`).
    pub response_topic_prefix: String,
    /// Request/response: how many requests may wait for their reply at once.
    pub max_pending_requests: usize,
    /// How connections are made: proxy, local binding, WebSocket headers.
    pub network: TransportOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            brokers: vec![Endpoint::tcp("localhost", 1883, false)],
            brokers_are_default: true,
            client_id: None,
            username: None,
            password: None,
            keep_alive: Duration::from_secs(60),
            clean_session: true,
            session_expiry: 0,
            version: ProtocolVersion::V311,
            connect_timeout: Duration::from_secs(10),
            inflight_window: 20,
            max_packet_size: MQTT_MAX_PACKET_SIZE,
            tls: None,
            auto_reconnect: true,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            queue_max_messages: 100_000,
            queue_max_bytes: 64 * 1024 * 1024,
            queue_full_policy: QueueFullPolicy::RejectNew,
            queue_before_connect: false,
            inbound_max_messages: 10_000,
            inbound_max_bytes: 32 * 1024 * 1024,
            v5_connect: V5ConnectOptions::default(),
            protocol_fallback: false,
            auth: None,
            mqtt31: false,
            follow_redirects: false,
            allow_plaintext_fallback: false,
            topic_alias_auto: true,
            response_topic_prefix: DEFAULT_RESPONSE_TOPIC_PREFIX.into(),
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            network: TransportOptions::default(),
        }
    }
}

impl Options {
    /// Replaces the broker list with one broker; TLS follows whether TLS options are set.
    pub fn set_broker(&mut self, host: &str, port: i32) -> Result<()> {
        let address = broker_address(host, port, self.tls.is_some())?;
        self.brokers = vec![address];
        self.brokers_are_default = false;
        Ok(())
    }

    /// Appends a failover broker. The first call after `new` replaces the default broker.
    pub fn add_broker(&mut self, host: &str, port: i32, tls: bool) -> Result<()> {
        let address = broker_address(host, port, tls)?;
        if self.brokers_are_default {
            self.brokers.clear();
            self.brokers_are_default = false;
        }
        self.brokers.push(address);
        Ok(())
    }

    /// Replaces the broker list with the broker of a URI (`mqtt://`, `mqtts://`, `ws://`,
    /// `wss://`, `unix://`); its scheme decides TLS.
    pub fn set_broker_uri(&mut self, uri: &str) -> Result<()> {
        let endpoint = self.uri_endpoint(uri)?;
        self.brokers = vec![endpoint];
        self.brokers_are_default = false;
        Ok(())
    }

    /// Appends the failover broker of a URI. The first call after `new` replaces the default
    /// broker.
    pub fn add_broker_uri(&mut self, uri: &str) -> Result<()> {
        let endpoint = self.uri_endpoint(uri)?;
        if self.brokers_are_default {
            self.brokers.clear();
            self.brokers_are_default = false;
        }
        self.brokers.push(endpoint);
        Ok(())
    }

    /// A TLS scheme turns TLS on (with the system's trust store until a CA is set).
    fn uri_endpoint(&mut self, uri: &str) -> Result<Endpoint> {
        let endpoint = Endpoint::parse_uri(uri)?;
        if endpoint.tls && self.tls.is_none() {
            self.tls = Some(TlsOptions::default());
        }
        Ok(endpoint)
    }

    /// Every TCP, TLS and WebSocket connection goes through this proxy (`http://`,
    /// `socks5://`, `socks5h://`, with optional `user:password@`); `None` connects directly.
    pub fn set_proxy(&mut self, uri: Option<&str>) -> Result<()> {
        self.network.proxy = uri.map(Proxy::parse).transpose()?;
        Ok(())
    }

    /// Takes proxies from the environment (read now) when no proxy is set.
    pub fn set_proxy_from_env(&mut self, enabled: bool) -> Result<()> {
        self.network.env_proxies = if enabled {
            Some(EnvProxies::from_env()?)
        } else {
            None
        };
        Ok(())
    }

    pub fn set_client_id(&mut self, id: &str) -> Result<()> {
        validate::client_id(id)?;
        // Empty: on MQTT 5.0 the broker assigns one; on 3.1.1 the client generates one.
        self.client_id = Some(id.to_string());
        Ok(())
    }

    pub fn set_credentials(&mut self, username: &str, password: Option<&[u8]>) -> Result<()> {
        if username.len() > validate::MAX_STRING_LEN {
            return Err(Error::InvalidArgument(
                "username is longer than 65,535 bytes".into(),
            ));
        }
        if password.is_some_and(|p| p.len() > validate::MAX_STRING_LEN) {
            return Err(Error::InvalidArgument(
                "password is longer than 65,535 bytes".into(),
            ));
        }
        self.username = Some(username.to_string());
        self.password = password.map(<[u8]>::to_vec);
        Ok(())
    }

    pub fn set_keep_alive(&mut self, seconds: i32) -> Result<()> {
        let seconds = in_range("keep-alive (seconds)", seconds, 0, 65_535)?;
        self.keep_alive = Duration::from_secs(seconds as u64);
        Ok(())
    }

    pub fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.version = version;
        self.mqtt31 = false;
    }

    /// MQTT 3.1 (`MQIsdp`, level 3) for brokers older than 3.1.1; client ids are then limited
    /// to 23 bytes.
    pub fn set_mqtt31(&mut self) {
        self.version = ProtocolVersion::V311;
        self.mqtt31 = true;
    }

    /// The MQTT 5.0 authentication method (and initial data) CONNECT carries; `None` clears
    /// it. The method is a UTF-8 string of the spec's rules; data at most 65,535 bytes.
    pub fn set_auth_method(&mut self, method: Option<(&str, Option<&[u8]>)>) -> Result<()> {
        let Some((method, data)) = method else {
            self.auth = None;
            return Ok(());
        };
        validate::auth_method(method)?;
        if data.is_some_and(|d| d.len() > validate::MAX_STRING_LEN) {
            return Err(Error::InvalidArgument(
                "authentication data is longer than 65,535 bytes".into(),
            ));
        }
        self.auth = Some(AuthMethod {
            method: method.to_string(),
            data: data.map(bytes::Bytes::copy_from_slice),
        });
        Ok(())
    }

    pub fn set_connect_timeout(&mut self, ms: i32) -> Result<()> {
        let ms = in_range("connect timeout (ms)", ms, 1, i32::MAX)?;
        self.connect_timeout = Duration::from_millis(ms as u64);
        Ok(())
    }

    pub fn set_inflight_window(&mut self, window: i32) -> Result<()> {
        self.inflight_window = in_range("inflight window", window, 1, 65_535)? as u16;
        Ok(())
    }

    pub fn set_max_packet_size(&mut self, bytes: i64) -> Result<()> {
        if !(16..=MQTT_MAX_PACKET_SIZE as i64).contains(&bytes) {
            return Err(Error::InvalidArgument(format!(
                "max packet size {bytes} is outside 16..={MQTT_MAX_PACKET_SIZE}"
            )));
        }
        self.max_packet_size = bytes as u32;
        self.v5_connect.announce_max_packet_size = true;
        Ok(())
    }

    pub fn set_receive_maximum(&mut self, maximum: i32) -> Result<()> {
        self.v5_connect.receive_maximum =
            Some(in_range("receive maximum", maximum, 1, 65_535)? as u16);
        Ok(())
    }

    pub fn set_topic_alias_maximum(&mut self, maximum: i32) -> Result<()> {
        self.v5_connect.topic_alias_maximum =
            in_range("topic alias maximum", maximum, 0, 65_535)? as u16;
        Ok(())
    }

    pub fn add_connect_user_property(&mut self, name: &str, value: &str) -> Result<()> {
        if name.len() > validate::MAX_STRING_LEN || value.len() > validate::MAX_STRING_LEN {
            return Err(Error::InvalidArgument(
                "a user property name or value is longer than 65,535 bytes".into(),
            ));
        }
        self.v5_connect
            .user_properties
            .push((name.to_string(), value.to_string()));
        Ok(())
    }

    pub fn set_request_response_information(&mut self, request: bool) {
        self.v5_connect.request_response_information = Some(request);
    }

    pub fn set_request_problem_information(&mut self, request: bool) {
        self.v5_connect.request_problem_information = Some(request);
    }

    pub fn set_topic_alias_auto(&mut self, auto: bool) {
        self.topic_alias_auto = auto;
    }

    /// The prefix of generated response topics: a topic name's characters (no wildcards), at
    /// most 1,024 bytes; may be empty.
    pub fn set_response_topic_prefix(&mut self, prefix: &str) -> Result<()> {
        if prefix.len() > 1024 {
            return Err(Error::InvalidArgument(format!(
                "response topic prefix is {} bytes; at most 1,024 are allowed",
                prefix.len()
            )));
        }
        if !prefix.is_empty() {
            validate::topic_name(prefix)?;
        }
        self.response_topic_prefix = prefix.to_string();
        Ok(())
    }

    pub fn set_max_pending_requests(&mut self, maximum: i64) -> Result<()> {
        if !(1..=1_000_000).contains(&maximum) {
            return Err(Error::InvalidArgument(format!(
                "maximum pending requests {maximum} is outside 1..=1000000"
            )));
        }
        self.max_pending_requests = maximum as usize;
        Ok(())
    }

    pub fn set_follow_redirects(&mut self, follow: bool) {
        self.follow_redirects = follow;
    }

    pub fn set_protocol_fallback(&mut self, fall_back: bool) {
        self.protocol_fallback = fall_back;
    }

    pub fn set_inbound_queue(&mut self, max_messages: i64, max_bytes: i64) -> Result<()> {
        if max_messages < 1 || max_bytes < 1 {
            return Err(Error::InvalidArgument(format!(
                "inbound queue limits of {max_messages} messages and {max_bytes} bytes must both be at least 1"
            )));
        }
        self.inbound_max_messages = max_messages as usize;
        self.inbound_max_bytes = max_bytes.min(usize::MAX as i64) as usize;
        Ok(())
    }

    pub fn set_reconnect(&mut self, enabled: bool, min_ms: i32, max_ms: i32) -> Result<()> {
        let min_ms = in_range("minimum reconnect delay (ms)", min_ms, 1, i32::MAX)?;
        let max_ms = in_range("maximum reconnect delay (ms)", max_ms, min_ms, i32::MAX)?;
        self.auto_reconnect = enabled;
        self.reconnect_min = Duration::from_millis(min_ms as u64);
        self.reconnect_max = Duration::from_millis(max_ms as u64);
        Ok(())
    }

    pub fn set_offline_queue(
        &mut self,
        max_messages: i64,
        max_bytes: i64,
        policy: QueueFullPolicy,
        before_first_connect: bool,
    ) -> Result<()> {
        if max_messages < 1 {
            return Err(Error::InvalidArgument(format!(
                "queue limit of {max_messages} messages must be at least 1"
            )));
        }
        if max_bytes < 1 {
            return Err(Error::InvalidArgument(format!(
                "queue limit of {max_bytes} bytes must be at least 1"
            )));
        }
        self.queue_max_messages = max_messages as usize;
        self.queue_max_bytes = max_bytes as usize;
        self.queue_full_policy = policy;
        self.queue_before_connect = before_first_connect;
        Ok(())
    }

    /// Turns TLS on for every configured broker.
    pub fn enable_tls(&mut self, ca_file: Option<&str>) -> Result<()> {
        let ca_file = ca_file
            .map(|path| readable_file("CA file", path))
            .transpose()?;
        let tls = self.tls.get_or_insert_with(TlsOptions::default);
        tls.ca_file = ca_file;
        for broker in &mut self.brokers {
            if !broker.scheme_fixed {
                broker.tls = true;
            }
        }
        Ok(())
    }

    pub fn set_client_certificate(
        &mut self,
        cert_file: &str,
        key_file: &str,
        key_password: Option<&str>,
    ) -> Result<()> {
        let cert = ClientCertificate {
            cert_file: readable_file("client certificate", cert_file)?,
            key_file: readable_file("client key", key_file)?,
            key_password: key_password.map(str::to_string),
        };
        self.tls_mut()?.client_cert = Some(cert);
        Ok(())
    }

    pub fn set_verify_hostname(&mut self, verify: bool) -> Result<()> {
        self.tls_mut()?.verify_hostname = verify;
        Ok(())
    }

    pub fn set_insecure(&mut self, insecure: bool) -> Result<()> {
        self.tls_mut()?.insecure = insecure;
        Ok(())
    }

    pub fn set_tls_min_version(&mut self, version: TlsVersion) -> Result<()> {
        self.tls_mut()?.min_version = version;
        Ok(())
    }

    /// Checks what no single setter can: the options as a whole. Called when a client is
    /// created from them.
    pub fn check_consistent(&self) -> Result<()> {
        if self.auth.is_some() && self.version != ProtocolVersion::V5 {
            return Err(Error::InvalidArgument(
                "an authentication method needs MQTT 5.0 (enhanced authentication); set the protocol version to 5".into(),
            ));
        }
        // Without one, the generated id (20 bytes) fits MQTT 3.1's limit.
        if let (true, Some(id)) = (self.mqtt31, &self.client_id) {
            validate::mqtt31_client_id(id)?;
        }
        let has_credentials = self.username.is_some() || self.password.is_some();
        if !has_credentials || self.allow_plaintext_fallback {
            return Ok(());
        }
        let with_tls = self.brokers.iter().find(|b| b.tls);
        let plaintext = self.brokers.iter().find(|b| !b.tls);
        if let (Some(with_tls), Some(plaintext)) = (with_tls, plaintext) {
            return Err(Error::TlsConfig(format!(
                "broker {}:{} has no TLS while {}:{} uses TLS: the username and password \
                 would be sent in clear to {}:{} after a failover; use TLS for every broker, \
                 or accept it with allow_plaintext_fallback \
                 (eq1_mqtt_options_set_allow_plaintext_fallback)",
                plaintext.host,
                plaintext.port,
                with_tls.host,
                with_tls.port,
                plaintext.host,
                plaintext.port
            )));
        }
        Ok(())
    }

    fn tls_mut(&mut self) -> Result<&mut TlsOptions> {
        self.tls.as_mut().ok_or_else(|| {
            Error::InvalidState("TLS is not enabled: set the CA (set_tls) first".into())
        })
    }
}

fn broker_address(host: &str, port: i32, tls: bool) -> Result<Endpoint> {
    if host.is_empty() {
        return Err(Error::InvalidArgument("broker host is empty".into()));
    }
    let port = in_range("broker port", port, 1, 65_535)? as u16;
    Ok(Endpoint::tcp(host, port, tls))
}

fn in_range(what: &str, value: i32, min: i32, max: i32) -> Result<i32> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} {value} is outside {min}..={max}"
        )))
    }
}

fn readable_file(what: &str, path: &str) -> Result<PathBuf> {
    std::fs::metadata(path)
        .map_err(|e| Error::TlsConfig(format!("cannot read {what} '{path}': {e}")))?;
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_reject_out_of_range_values() {
        let mut o = Options::default();
        assert!(o.set_keep_alive(-1).is_err());
        assert!(o.set_keep_alive(65_536).is_err());
        assert!(o.set_inflight_window(0).is_err());
        assert!(o.set_broker("", 1).is_err());
        assert!(o.set_broker("h", 0).is_err());
        assert!(o.set_reconnect(true, 1000, 10).is_err());
        assert!(o.set_verify_hostname(false).is_err(), "TLS not enabled yet");
        assert!(o.enable_tls(Some("/nonexistent/ca.pem")).is_err());
    }

    fn tls_primary_with_plaintext_failover() -> Options {
        let mut o = Options::default();
        o.enable_tls(None).unwrap();
        o.set_broker("secure", 8883).unwrap();
        o.add_broker("plain", 1883, false).unwrap();
        o
    }

    #[test]
    fn credentials_with_a_plaintext_failover_to_a_tls_broker_are_refused() {
        let mut o = tls_primary_with_plaintext_failover();
        assert_eq!(
            o.check_consistent(),
            Ok(()),
            "no credentials, nothing to leak"
        );
        o.set_credentials("user", Some(b"secret")).unwrap();
        let error = o.check_consistent().unwrap_err();
        assert!(matches!(error, Error::TlsConfig(_)), "{error:?}");
        let message = error.message();
        assert!(
            message.contains("plain:1883") && message.contains("secure:8883"),
            "{message}"
        );
        assert!(message.contains("allow_plaintext_fallback"), "{message}");
        o.set_credentials("token-as-username", None).unwrap();
        assert!(
            o.check_consistent().is_err(),
            "a username alone may be the secret"
        );
    }

    #[test]
    fn plaintext_fallback_with_credentials_when_explicitly_allowed() {
        let mut o = tls_primary_with_plaintext_failover();
        o.set_credentials("user", Some(b"secret")).unwrap();
        o.allow_plaintext_fallback = true;
        assert_eq!(o.check_consistent(), Ok(()));
    }

    #[test]
    fn credentials_with_all_brokers_alike_are_consistent() {
        let mut all_tls = Options::default();
        all_tls.set_credentials("user", Some(b"secret")).unwrap();
        all_tls.add_broker("a", 8883, true).unwrap();
        all_tls.add_broker("b", 8883, true).unwrap();
        assert_eq!(all_tls.check_consistent(), Ok(()));
        let mut all_plain = Options::default();
        all_plain.set_credentials("user", Some(b"secret")).unwrap();
        all_plain.add_broker("b", 1883, false).unwrap();
        assert_eq!(all_plain.check_consistent(), Ok(()));
    }

    #[test]
    fn add_broker_keeps_an_explicit_localhost_primary() {
        let mut o = Options::default();
        o.set_broker("localhost", 1883).unwrap();
        o.add_broker("b", 2, false).unwrap();
        assert_eq!(o.brokers.len(), 2);
        assert_eq!(o.brokers[0].host, "localhost");
    }

    #[test]
    fn add_broker_replaces_the_default_then_appends() {
        let mut o = Options::default();
        o.add_broker("a", 1, false).unwrap();
        o.add_broker("b", 2, true).unwrap();
        assert_eq!(o.brokers.len(), 2);
        assert_eq!(o.brokers[0].host, "a");
        assert!(o.brokers[1].tls);
    }
}
