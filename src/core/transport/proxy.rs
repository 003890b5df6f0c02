//! Tunnels through a proxy: HTTP CONNECT (RFC 9110 §9.3.6, with basic authentication) and
//! SOCKS5 (RFC 1928, user/password per RFC 1929), plus the usual proxy environment variables.
//! Written here rather than taken from a crate: both handshakes are a few messages, and doing
//! them ourselves lets every refusal carry its own status (a wrong proxy password is
//! `ProxyAuthFailed`, a target the proxy will not reach is `ProxyFailed`) with the proxy's
//! own words, and keeps TLS and WebSockets layered on top exactly as on a direct connection.

use super::{connect_tcp, uri, Endpoint, Stream, TransportOptions};
use crate::core::error::{Error, Result};
use std::net::IpAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Which proxy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT (`http://`).
    Http,
    /// SOCKS5; `remote_dns`: the proxy resolves the host name (`socks5h://`), otherwise we
    /// resolve it and send the address (`socks5://`).
    Socks5 { remote_dns: bool },
}

/// A proxy, from a URI such as `http://user:pass@proxy:3128` or `socks5h://proxy:1080`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Proxy {
    // Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        };
        write!(
            f,
            "{scheme} proxy {}:{}",
            uri::bracketed(&self.host),
            self.port
        )
    }
}

impl Proxy {
    /// Parses a proxy URI. A value without a scheme (`proxy:3128`, as environment variables
    /// often hold) is an HTTP proxy.
    pub fn parse(text: &str) -> Result<Proxy> {
        let with_scheme;
        let text = if text.contains("://") {
            text
        } else {
            with_scheme = format!("http://{text}");
            &with_scheme
        };
        let parts = uri::split(text)?;
        let invalid = |why: &str| {
            Error::InvalidArgument(format!("invalid proxy URI '{}': {why}", uri::redact(text)))
        };
        let (kind, default_port) = match parts.scheme.as_str() {
            "http" => (ProxyKind::Http, 80),
            "socks5" => (ProxyKind::Socks5 { remote_dns: false }, 1080),
            "socks5h" => (ProxyKind::Socks5 { remote_dns: true }, 1080),
            other => {
                return Err(invalid(&format!(
                    "unsupported proxy scheme '{other}' (use http, socks5 or socks5h)"
                )))
            }
        };
        if parts.host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        if !matches!(parts.rest, "" | "/") {
            return Err(invalid("a proxy URI has no path, query or fragment"));
        }
        let (username, password) = match parts.user {
            Some((name, password)) => (Some(name), password),
            None => (None, None),
        };
        if matches!(kind, ProxyKind::Socks5 { .. }) {
            // RFC 1929: one length byte each.
            let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > 255);
            if too_long(&username) || too_long(&password) {
                return Err(invalid(
                    "a SOCKS5 user name or password is at most 255 bytes",
                ));
            }
        }
        Ok(Proxy {
            kind,
            host: parts.host,
            port: parts.port.unwrap_or(default_port),
            username,
            password,
        })
    }
}

/// The proxies of the environment (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`,
/// lower case first, then upper case), read once when the user opts in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvProxies {
    /// For plaintext connections (mqtt://, ws://).
    pub http: Option<Proxy>,
    /// For TLS connections (mqtts://, wss://).
    pub https: Option<Proxy>,
    /// For any connection the two above do not cover.
    pub all: Option<Proxy>,
    /// Hosts reached directly: names (a leading '.' or not, matching subdomains too), IP
    /// addresses, or "*" for every host.
    pub no_proxy: Vec<String>,
}

impl EnvProxies {
    /// Reads the variables through `lookup` (the process environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<EnvProxies> {
        let var = |name: &str| {
            lookup(name)
                .or_else(|| lookup(&name.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
        };
        let proxy = |name: &str| -> Result<Option<Proxy>> {
            var(name)
                .map(|value| {
                    Proxy::parse(value.trim()).map_err(|e| {
                        Error::InvalidArgument(format!(
                            "environment variable {name}: {}",
                            e.message()
                        ))
                    })
                })
                .transpose()
        };
        Ok(EnvProxies {
            http: proxy("http_proxy")?,
            https: proxy("https_proxy")?,
            all: proxy("all_proxy")?,
            no_proxy: var("no_proxy")
                .map(|list| {
                    list.split(',')
                        .map(|entry| entry.trim().to_ascii_lowercase())
                        .filter(|entry| !entry.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<EnvProxies> {
        EnvProxies::from_lookup(|name| std::env::var(name).ok())
    }

    /// The proxy a connection to `broker` takes, or `None` to connect directly.
    pub fn for_endpoint(&self, broker: &Endpoint) -> Option<&Proxy> {
        if self.bypasses(&broker.host) {
            return None;
        }
        let specific = if broker.tls { &self.https } else { &self.http };
        specific.as_ref().or(self.all.as_ref())
    }

    fn bypasses(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            // An entry may carry a port ("host:1883"); the host part decides.
            let entry = match entry.rsplit_once(':') {
                Some((name, port))
                    if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name
                }
                _ => entry.as_str(),
            };
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            let domain = entry.trim_start_matches("*.").trim_start_matches('.');
            if domain.is_empty() {
                return false;
            }
            host == domain || host.ends_with(&format!(".{domain}"))
        })
    }
}

/// A connection to `host:port` through `proxy`, ready for TLS or MQTT.
pub(super) async fn connect(
    proxy: &Proxy,
    host: &str,
    port: u16,
    network: &TransportOptions,
    deadline: Instant,
) -> Result<Stream> {
    let mut tcp = connect_tcp(&proxy.host, proxy.port, network, deadline)
        .await
        .map_err(|e| match e {
            Error::Timeout(_) | Error::BindFailed(_) => e,
            other => Error::ProxyFailed(format!("cannot reach the {proxy}: {}", other.message())),
        })?;
    let target = format!("{}:{port}", uri::bracketed(host));
    let io_error = |e: std::io::Error| {
        Error::ProxyFailed(format!(
            "the {proxy} closed or broke the connection while opening a tunnel to {target}: {e}"
        ))
    };
    let tunnel = async {
        match proxy.kind {
            ProxyKind::Http => http_connect(&mut tcp, proxy, &target).await,
            ProxyKind::Socks5 { remote_dns } => {
                socks5_connect(&mut tcp, proxy, host, port, remote_dns, &target, deadline).await
            }
        }
    };
    match timeout_at(deadline, tunnel).await {
        Err(_) => Err(Error::Timeout(format!(
            "timed out opening a tunnel to {target} through the {proxy}"
        ))),
        Ok(Err(Handshake::Io(e))) => Err(io_error(e)),
        Ok(Err(Handshake::Refused(e))) => Err(e),
        Ok(Ok(())) => Ok(Box::new(tcp)),
    }
}

enum Handshake {
    Io(std::io::Error),
    Refused(Error),
}

impl From<std::io::Error> for Handshake {
    fn from(e: std::io::Error) -> Self {
        Handshake::Io(e)
    }
}

/// The longest HTTP response head we read from a proxy.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

async fn http_connect(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    target: &str,
) -> std::result::Result<(), Handshake> {
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(user) = &proxy.username {
        let credentials = format!("{user}:{}", proxy.password.as_deref().unwrap_or(""));
        request.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(credentials.as_bytes())
        ));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await?;
    tcp.flush().await?;

    // Byte by byte up to the blank line: what follows belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(Handshake::Refused(Error::ProxyFailed(format!(
                "the {proxy} sent a response head longer than {MAX_RESPONSE_HEAD} bytes"
            ))));
        }
        let byte = tcp.read_u8().await?;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default().trim().to_string();
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        // 407 is the standard answer; some proxies (tinyproxy among them) send 401.
        Some(401 | 407) => Err(Handshake::Refused(Error::ProxyAuthFailed(format!(
            "the {proxy} refused our credentials for a tunnel to {target} ({status_line}){}",
            if proxy.username.is_some() {
                ": wrong proxy user name or password"
            } else {
                ": it requires a user name and password"
            }
        )))),
        Some(_) => Err(Handshake::Refused(Error::ProxyFailed(format!(
            "the {proxy} refused a tunnel to {target}: {status_line}"
        )))),
        None => Err(Handshake::Refused(Error::ProxyFailed(format!(
            "the {proxy} did not answer CONNECT with HTTP: '{status_line}'"
        )))),
    }
}

const SOCKS_VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const USER_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE_METHOD: u8 = 0xFF;

async fn socks5_connect(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
    remote_dns: bool,
    target: &str,
    deadline: Instant,
) -> std::result::Result<(), Handshake> {
    let refused = |e: Error| Err(Handshake::Refused(e));
    let protocol = |what: &str| {
        Handshake::Refused(Error::ProxyFailed(format!(
            "the {proxy} broke the SOCKS5 protocol: {what}"
        )))
    };
    // The address first: a name that does not resolve locally fails before we talk.
    let address = match (host.parse::<IpAddr>(), remote_dns) {
        (Ok(ip), _) => Address::Ip(ip),
        (Err(_), true) => {
            if host.len() > 255 {
                return refused(Error::InvalidArgument(format!(
                    "host name '{host}' is longer than SOCKS5's 255 bytes"
                )));
            }
            Address::Name(host)
        }
        (Err(_), false) => {
            let resolved = timeout_at(deadline, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| {
                    Handshake::Refused(Error::Timeout(format!("timed out resolving {host}")))
                })?;
            match resolved.map(|mut all| all.next()) {
                Ok(Some(address)) => Address::Ip(address.ip()),
                Ok(None) => {
                    return refused(Error::DnsFailed(format!(
                        "host '{host}' resolved to no address"
                    )))
                }
                Err(e) => {
                    return refused(Error::DnsFailed(format!(
                        "cannot resolve host '{host}': {e} (socks5h:// lets the proxy resolve it)"
                    )))
                }
            }
        }
    };

    let methods: &[u8] = if proxy.username.is_some() {
        &[NO_AUTHENTICATION, USER_PASSWORD]
    } else {
        &[NO_AUTHENTICATION]
    };
    let mut greeting = vec![SOCKS_VERSION, methods.len() as u8];
    greeting.extend_from_slice(methods);
    tcp.write_all(&greeting).await?;
    let mut choice = [0u8; 2];
    tcp.read_exact(&mut choice).await?;
    if choice[0] != SOCKS_VERSION {
        return Err(protocol(&format!(
            "version {} in its method choice",
            choice[0]
        )));
    }
    match choice[1] {
        NO_AUTHENTICATION => {}
        USER_PASSWORD if proxy.username.is_some() => {
            let user = proxy.username.as_deref().unwrap_or("").as_bytes();
            let password = proxy.password.as_deref().unwrap_or("").as_bytes();
            // Lengths were checked to fit one byte when the proxy was parsed.
            let mut request = vec![1, user.len() as u8];
            request.extend_from_slice(user);
            request.push(password.len() as u8);
            request.extend_from_slice(password);
            tcp.write_all(&request).await?;
            let mut answer = [0u8; 2];
            tcp.read_exact(&mut answer).await?;
            if answer[1] != 0 {
                return refused(Error::ProxyAuthFailed(format!(
                    "the {proxy} refused user '{}': wrong proxy user name or password",
                    proxy.username.as_deref().unwrap_or("")
                )));
            }
        }
        NO_ACCEPTABLE_METHOD => {
            return refused(Error::ProxyAuthFailed(format!(
                "the {proxy} accepts none of our authentication methods{}",
                if proxy.username.is_some() {
                    ""
                } else {
                    ": it requires a user name and password"
                }
            )))
        }
        other => {
            return Err(protocol(&format!(
                "it chose method {other:#04x}, which we did not offer"
            )))
        }
    }

    let mut request = vec![SOCKS_VERSION, 0x01, 0x00];
    match address {
        Address::Ip(IpAddr::V4(v4)) => {
            request.push(0x01);
            request.extend_from_slice(&v4.octets());
        }
        Address::Ip(IpAddr::V6(v6)) => {
            request.push(0x04);
            request.extend_from_slice(&v6.octets());
        }
        Address::Name(name) => {
            request.push(0x03);
            request.push(name.len() as u8);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    tcp.write_all(&request).await?;

    let mut reply = [0u8; 4];
    tcp.read_exact(&mut reply).await?;
    if reply[0] != SOCKS_VERSION {
        return Err(protocol(&format!("version {} in its reply", reply[0])));
    }
    if reply[1] != 0 {
        return refused(Error::ProxyFailed(format!(
            "the {proxy} refused a connection to {target}: {}",
            socks5_reply(reply[1])
        )));
    }
    let bound_length = match reply[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => tcp.read_u8().await? as usize,
        other => return Err(protocol(&format!("address type {other:#04x} in its reply"))),
    };
    let mut bound = vec![0u8; bound_length + 2];
    tcp.read_exact(&mut bound).await?;
    Ok(())
}

enum Address<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

fn socks5_reply(code: u8) -> String {
    let text = match code {
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unknown reply",
    };
    format!("{text} (SOCKS5 reply {code:#04x})")
}

/// Standard base64 with padding, for the Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn proxy_uris() {
        let p = Proxy::parse("http://user:p%40ss@proxy.local:3128").unwrap();
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 3128));
        assert_eq!(p.username.as_deref(), Some("user"));
        assert_eq!(p.password.as_deref(), Some("p@ss"));
        assert!(!format!("{p:?}").contains("p@ss"));
        let p = Proxy::parse("socks5h://127.0.0.1").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: true });
        assert_eq!(p.port, 1080);
        assert_eq!(Proxy::parse("proxy:8080").unwrap().kind, ProxyKind::Http);
        for bad in [
            "https://p:1",
            "socks4://p",
            "http://:1",
            "http://p:1/path",
            "http://p:x",
        ] {
            assert!(
                matches!(Proxy::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        let long = "u".repeat(256);
        assert!(Proxy::parse(&format!("socks5://{long}:p@h")).is_err());
    }

    #[test]
    fn environment_proxies_by_tls_with_no_proxy_exceptions() {
        let vars = |name: &str| match name {
            "http_proxy" => Some("http://plain:3128".to_string()),
            "HTTPS_PROXY" => Some("socks5://secure:1080".to_string()),
            "ALL_PROXY" => Some("http://all:1".to_string()),
            "no_proxy" => Some("localhost, .internal.example,10.0.0.1:1883".to_string()),
            _ => None,
        };
        let env = EnvProxies::from_lookup(vars).unwrap();
        let at = |host: &str, tls: bool| {
            env.for_endpoint(&Endpoint::tcp(host, 1, tls))
                .map(|p| p.host.clone())
        };
        assert_eq!(at("broker", false).as_deref(), Some("plain"));
        assert_eq!(at("broker", true).as_deref(), Some("secure"));
        assert_eq!(at("localhost", false), None);
        assert_eq!(at("a.internal.example", true), None);
        assert_eq!(at("internal.example", true), None);
        assert_eq!(at("10.0.0.1", false), None);
        assert_eq!(at("notinternal.example", false).as_deref(), Some("plain"));

        let only_all = EnvProxies::from_lookup(|n| {
            (n == "all_proxy").then(|| "socks5h://all:1080".to_string())
        })
        .unwrap();
        assert_eq!(
            only_all
                .for_endpoint(&Endpoint::tcp("b", 1, true))
                .map(|p| p.port),
            Some(1080)
        );
        let star = EnvProxies::from_lookup(|n| match n {
            "all_proxy" => Some("http://all:1".to_string()),
            "NO_PROXY" => Some("*".to_string()),
            _ => None,
        })
        .unwrap();
        assert!(star.for_endpoint(&Endpoint::tcp("b", 1, false)).is_none());

        let bad = EnvProxies::from_lookup(|n| (n == "http_proxy").then(|| "ftp://x".to_string()));
        let message = bad.unwrap_err().message();
        assert!(message.contains("http_proxy"), "{message}");
    }
}
