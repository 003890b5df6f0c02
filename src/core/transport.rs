//! Opens the byte stream to a broker: DNS, TCP (with TCP_NODELAY) and optionally TLS, all within
//! one deadline, each failure named by its cause.

use crate::core::error::{Error, Result};
use crate::core::tls;
use std::io::ErrorKind;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

pub trait IoStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> IoStream for T {}

pub type Stream = Box<dyn IoStream>;

/// One server to connect to (several make a failover list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

pub async fn open(
    broker: &Endpoint,
    tls: Option<&tls::Connector>,
    deadline: Instant,
) -> Result<Stream> {
    let name = format!("{}:{}", broker.host, broker.port);
    let timed_out = |stage: &str| Error::Timeout(format!("timed out {stage} {name}"));

    let addresses: Vec<_> = timeout_at(
        deadline,
        tokio::net::lookup_host((broker.host.as_str(), broker.port)),
    )
    .await
    .map_err(|_| timed_out("resolving"))?
    .map_err(|e| Error::DnsFailed(format!("cannot resolve broker host '{}': {e}", broker.host)))?
    .collect();
    if addresses.is_empty() {
        return Err(Error::DnsFailed(format!(
            "broker host '{}' resolved to no address",
            broker.host
        )));
    }

    let mut last_error = None;
    let mut tcp = None;
    for address in addresses {
        match timeout_at(deadline, TcpStream::connect(address)).await {
            Err(_) => return Err(timed_out("connecting to")),
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(e)) => last_error = Some(tcp_error(&e, &name)),
        }
    }
    let tcp = match tcp {
        Some(tcp) => tcp,
        None => {
            return Err(
                last_error.unwrap_or_else(|| Error::Network(format!("cannot connect to {name}")))
            )
        }
    };
    // Small MQTT packets (acks, pings) must not wait for Nagle's algorithm.
    tcp.set_nodelay(true)
        .map_err(|e| Error::Network(format!("cannot set TCP_NODELAY on {name}: {e}")))?;

    match tls {
        None => Ok(Box::new(tcp)),
        Some(connector) => {
            let stream = timeout_at(deadline, connector.connect(&broker.host, tcp))
                .await
                .map_err(|_| timed_out("in the TLS handshake with"))??;
            Ok(Box::new(stream))
        }
    }
}

pub fn tcp_error(e: &std::io::Error, name: &str) -> Error {
    match e.kind() {
        ErrorKind::ConnectionRefused => {
            Error::ConnectionRefused(format!("connection refused by {name}"))
        }
        _ => Error::Network(format!("cannot connect to {name}: {e}")),
    }
}
