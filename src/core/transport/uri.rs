//! The URI forms of brokers (`mqtt://`, `mqtts://`, `ws://`, `wss://`, `unix://`) and of
//! proxies (`http://`, `socks5://`, `socks5h://`), parsed strictly: every refusal names what
//! is wrong.

use super::{Endpoint, Transport};
use crate::core::error::{Error, Result};
use std::path::PathBuf;

/// The parts of `scheme://[user[:password]@]host[:port][rest]`.
pub(super) struct Parts<'a> {
    pub scheme: String,
    pub user: Option<(String, Option<String>)>,
    pub host: String,
    pub port: Option<u16>,
    /// Path, query and fragment as written (empty or starting with '/', '?' or '#').
    pub rest: &'a str,
}

fn invalid(text: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("invalid URI '{}': {why}", redact(text)))
}

/// The URI with any password replaced by `***`, for messages.
pub(super) fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => text.to_string(),
    }
}

/// `host` as a URI writes it: IPv6 addresses in brackets.
pub(super) fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

pub(super) fn split(text: &str) -> Result<Parts<'_>> {
    if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(invalid(text, "it contains spaces or control characters"));
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| invalid(text, "it has no scheme (like mqtt://)"))?;
    let valid_scheme = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    if !valid_scheme {
        return Err(invalid(text, "the scheme is not valid"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => {
            let (name, password) = match user.split_once(':') {
                Some((name, password)) => (name, Some(percent_decode(text, password)?)),
                None => (user, None),
            };
            (Some((percent_decode(text, name)?, password)), host_port)
        }
        None => (None, authority),
    };
    let (host, port) = if let Some(after) = host_port.strip_prefix('[') {
        let (host, after) = after
            .split_once(']')
            .ok_or_else(|| invalid(text, "an IPv6 address lacks its closing ']'"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid(text, "the bracketed host is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(text, "unexpected text after ']'")),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None => None,
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(invalid(text, &format!("port '{digits}' is not 1..65535"))),
        },
    };
    Ok(Parts {
        scheme: scheme.to_ascii_lowercase(),
        user,
        host: host.to_string(),
        port,
        rest: tail,
    })
}

fn percent_decode(text: &str, part: &str) -> Result<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => out.push(byte),
                None => return Err(invalid(text, "a '%' escape is not two hex digits")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        Error::InvalidUtf8(format!(
            "URI '{}': a '%' escape decodes to invalid UTF-8",
            redact(text)
        ))
    })
}

pub(super) fn broker(text: &str) -> Result<Endpoint> {
    if let Some(path) = text.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(invalid(
                text,
                "a Unix socket URI names an absolute path (unix:///path/to/socket)",
            ));
        }
        return Ok(Endpoint {
            // What reports name as the broker's host (with port 0).
            host: path.to_string(),
            port: 0,
            tls: false,
            transport: Transport::Unix {
                path: PathBuf::from(path),
            },
            scheme_fixed: true,
        });
    }
    let parts = split(text)?;
    let (tls, websocket, default_port) = match parts.scheme.as_str() {
        "mqtt" | "tcp" => (false, false, 1883),
        "mqtts" | "ssl" | "tls" => (true, false, 8883),
        "ws" => (false, true, 80),
        "wss" => (true, true, 443),
        other => {
            return Err(invalid(
                text,
                &format!("unknown scheme '{other}' (use mqtt, mqtts, ws, wss or unix)"),
            ))
        }
    };
    if parts.user.is_some() {
        return Err(invalid(
            text,
            "credentials do not go into a broker URI: set them with set_credentials",
        ));
    }
    if parts.host.is_empty() {
        return Err(invalid(text, "the host is empty"));
    }
    if parts.rest.contains('#') {
        return Err(invalid(text, "a broker URI has no fragment ('#')"));
    }
    let transport = if websocket {
        let path = match parts.rest {
            "" => "/".to_string(),
            rest if rest.starts_with('?') => format!("/{rest}"),
            rest => rest.to_string(),
        };
        Transport::WebSocket { path }
    } else {
        if !matches!(parts.rest, "" | "/") {
            return Err(invalid(
                text,
                "an mqtt:// or mqtts:// URI has no path (did you mean ws://?)",
            ));
        }
        Transport::Tcp
    };
    Ok(Endpoint {
        host: parts.host,
        port: parts.port.unwrap_or(default_port),
        tls,
        transport,
        scheme_fixed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(path: &str) -> Transport {
        Transport::WebSocket { path: path.into() }
    }

    #[test]
    fn broker_uris_of_every_scheme() {
        let e = broker("mqtt://broker.example:1884").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("broker.example", 1884, false)
        );
        assert_eq!(e.transport, Transport::Tcp);
        let e = broker("mqtts://h").unwrap();
        assert_eq!((e.port, e.tls), (8883, true));
        let e = broker("ws://127.0.0.1:9001/mqtt").unwrap();
        assert_eq!((e.port, e.tls, e.transport), (9001, false, ws("/mqtt")));
        let e = broker("WSS://[::1]:8443").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("::1", 8443, true));
        assert_eq!(e.transport, ws("/"));
        let e = broker("ws://h/a/b?token=1").unwrap();
        assert_eq!((e.port, e.transport), (80, ws("/a/b?token=1")));
        let e = broker("unix:///run/mosquitto.sock").unwrap();
        assert_eq!(
            e.transport,
            Transport::Unix {
                path: "/run/mosquitto.sock".into()
            }
        );
        assert_eq!(e.to_string(), "unix:///run/mosquitto.sock");
        assert_eq!(
            broker("wss://[::1]:8443/x").unwrap().to_string(),
            "wss://[::1]:8443/x"
        );
    }

    #[test]
    fn bad_broker_uris_are_refused_with_the_reason() {
        for (uri, why) in [
            ("localhost:1883", "no scheme"),
            ("http://h", "unknown scheme"),
            ("mqtt://", "host is empty"),
            ("mqtt://h:0", "not 1..65535"),
            ("mqtt://h:65536", "not 1..65535"),
            ("mqtt://h:12ab", "not 1..65535"),
            ("mqtt://h/path", "no path"),
            ("mqtt://u:p@h", "credentials"),
            ("ws://h/x#frag", "fragment"),
            ("unix://relative", "absolute path"),
            ("unix://", "absolute path"),
            ("mqtt://[::1", "closing"),
            ("mqtt://[nothex]:1", "not an IPv6"),
            ("mqtt://h 1", "spaces"),
        ] {
            let error = broker(uri).expect_err(uri);
            assert!(
                matches!(error, Error::InvalidArgument(_)),
                "{uri}: {error:?}"
            );
            assert!(error.message().contains(why), "{uri}: {}", error.message());
        }
    }

    #[test]
    fn passwords_are_redacted_in_messages() {
        assert_eq!(
            redact("http://user:secret@proxy:3128"),
            "http://user:***@proxy:3128"
        );
        let error = split("http://user:se%zzcret@proxy:3128").err().unwrap();
        assert!(!error.message().contains("se%zz"), "{}", error.message());
    }
}
