//! Opens the byte stream to a broker within one deadline, each failure named by its cause:
//! TCP (with TCP_NODELAY, optionally bound to a local address or interface) directly or
//! through an HTTP CONNECT / SOCKS5 proxy, or a Unix domain socket; then optionally TLS; then
//! optionally WebSockets. Every protocol of the framework opens its connections here.

mod proxy;
mod unix;
mod uri;
mod websocket;

pub use proxy::{EnvProxies, Proxy, ProxyKind};

use crate::core::error::{Error, Result};
use crate::core::tls;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};

pub trait IoStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> IoStream for T {}

pub type Stream = Box<dyn IoStream>;

/// How the bytes reach the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Transport {
    /// TCP to `host:port` (TLS on it when the endpoint says so).
    #[default]
    Tcp,
    /// WebSockets (subprotocol `mqtt`) on TCP or TLS, to this request path (with any query).
    WebSocket { path: String },
    /// A Unix domain socket at this path (`host` repeats it for reports, `port` is 0).
    Unix { path: PathBuf },
}

/// One server to connect to (several make a failover list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub transport: Transport,
    /// The endpoint came from a URI whose scheme chose TLS or not: turning TLS on for the
    /// options leaves it as it is.
    pub scheme_fixed: bool,
}

impl Endpoint {
    /// A TCP endpoint (`tls` on it or not).
    pub fn tcp(host: &str, port: u16, tls: bool) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
            tls,
            transport: Transport::Tcp,
            scheme_fixed: false,
        }
    }

    /// Parses `mqtt://host[:port]`, `mqtts://`, `ws://host[:port][/path]`, `wss://` and
    /// `unix:///path/to/socket`.
    pub fn parse_uri(text: &str) -> Result<Endpoint> {
        uri::broker(text)
    }
}

impl std::fmt::Display for Endpoint {
    /// The endpoint as a URI (what the logs and error messages name).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = uri::bracketed(&self.host);
        match &self.transport {
            Transport::Unix { path } => write!(f, "unix://{}", path.display()),
            Transport::Tcp if self.tls => write!(f, "mqtts://{host}:{}", self.port),
            Transport::Tcp => write!(f, "mqtt://{host}:{}", self.port),
            Transport::WebSocket { path } => {
                let scheme = if self.tls { "wss" } else { "ws" };
                write!(f, "{scheme}://{host}:{}{path}", self.port)
            }
        }
    }
}

/// How connections are made, whatever the server: proxy, local binding, WebSocket headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransportOptions {
    /// Every TCP, TLS and WebSocket connection goes through this proxy.
    pub proxy: Option<Proxy>,
    /// Proxies taken from the environment when the user opted in (used when `proxy` is unset).
    pub env_proxies: Option<EnvProxies>,
    /// The local address outgoing TCP connections are bound to.
    pub bind_address: Option<IpAddr>,
    /// The network interface outgoing TCP connections are bound to (SO_BINDTODEVICE).
    pub bind_interface: Option<String>,
    /// Extra HTTP headers of the WebSocket upgrade request.
    pub websocket_headers: Vec<(String, String)>,
}

impl TransportOptions {
    /// The proxy a connection to `broker` goes through, if any.
    pub fn proxy_for(&self, broker: &Endpoint) -> Option<&Proxy> {
        if matches!(broker.transport, Transport::Unix { .. }) {
            return None;
        }
        self.proxy.as_ref().or_else(|| {
            self.env_proxies
                .as_ref()
                .and_then(|env| env.for_endpoint(broker))
        })
    }

    /// Adds a header to the WebSocket upgrade request; the ones the handshake itself sets
    /// (Host, Upgrade, Connection, Sec-WebSocket-*) are refused.
    pub fn add_websocket_header(&mut self, name: &str, value: &str) -> Result<()> {
        websocket::check_header(name, value)?;
        self.websocket_headers
            .push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Binds outgoing connections to a local IP address (`None` unbinds).
    pub fn set_bind_address(&mut self, address: Option<&str>) -> Result<()> {
        self.bind_address = match address {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                Error::InvalidArgument(format!(
                    "bind address '{text}' is not an IPv4 or IPv6 address"
                ))
            })?),
        };
        Ok(())
    }

    /// Binds outgoing connections to a network interface (`None` unbinds). Needs
    /// CAP_NET_RAW (root) when connecting; Linux only.
    pub fn set_bind_interface(&mut self, interface: Option<&str>) -> Result<()> {
        self.bind_interface = match interface {
            None => None,
            Some(name) => {
                let valid = !name.is_empty()
                    && name.len() < 16
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
                if !valid {
                    return Err(Error::InvalidArgument(format!(
                        "'{name}' is not a network interface name (1..15 characters, no '/', ':' or spaces)"
                    )));
                }
                if !cfg!(any(target_os = "linux", target_os = "android")) {
                    return Err(Error::FeatureNotSupported(
                        "binding to an interface needs Linux (SO_BINDTODEVICE)".into(),
                    ));
                }
                Some(name.to_string())
            }
        };
        Ok(())
    }
}

pub async fn open(
    broker: &Endpoint,
    tls: Option<&tls::Connector>,
    network: &TransportOptions,
    deadline: Instant,
) -> Result<Stream> {
    let name = format!("{}:{}", broker.host, broker.port);
    let timed_out = |stage: &str| Error::Timeout(format!("timed out {stage} {name}"));

    let stream: Stream = match (&broker.transport, network.proxy_for(broker)) {
        (Transport::Unix { path }, _) => Box::new(unix::connect(path, deadline).await?),
        (_, Some(proxy)) => {
            proxy::connect(proxy, &broker.host, broker.port, network, deadline).await?
        }
        (_, None) => Box::new(connect_tcp(&broker.host, broker.port, network, deadline).await?),
    };

    let stream: Stream = match tls {
        None => stream,
        Some(connector) => {
            // The connector applies the SNI override and names a failure's cause itself.
            let stream = timeout_at(deadline, connector.connect(&broker.host, stream, deadline))
                .await
                .map_err(|_| timed_out("in the TLS handshake with"))??;
            Box::new(stream)
        }
    };

    match &broker.transport {
        Transport::WebSocket { path } => {
            websocket::handshake(stream, broker, path, &network.websocket_headers, deadline).await
        }
        _ => Ok(stream),
    }
}

/// DNS and TCP to `host:port` (bound as the options say), TCP_NODELAY on.
pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    network: &TransportOptions,
    deadline: Instant,
) -> Result<TcpStream> {
    let name = format!("{host}:{port}");
    let timed_out = |stage: &str| Error::Timeout(format!("timed out {stage} {name}"));

    let mut addresses: Vec<SocketAddr> =
        timeout_at(deadline, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| timed_out("resolving"))?
            .map_err(|e| Error::DnsFailed(format!("cannot resolve host '{host}': {e}")))?
            .collect();
    if addresses.is_empty() {
        return Err(Error::DnsFailed(format!(
            "host '{host}' resolved to no address"
        )));
    }
    if let Some(local) = network.bind_address {
        addresses.retain(|a| a.is_ipv4() == local.is_ipv4());
        if addresses.is_empty() {
            return Err(Error::BindFailed(format!(
                "'{host}' has no {} address to reach from the bind address {local}",
                if local.is_ipv4() { "IPv4" } else { "IPv6" }
            )));
        }
    }

    let mut last_error = None;
    for address in addresses {
        let socket = bound_socket(address, network)?;
        match timeout_at(deadline, socket.connect(address)).await {
            Err(_) => return Err(timed_out("connecting to")),
            Ok(Ok(tcp)) => {
                // Small MQTT packets (acks, pings) must not wait for Nagle's algorithm.
                tcp.set_nodelay(true).map_err(|e| {
                    Error::Network(format!("cannot set TCP_NODELAY on {name}: {e}"))
                })?;
                return Ok(tcp);
            }
            Ok(Err(e)) => last_error = Some(tcp_error(&e, &name)),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Network(format!("cannot connect to {name}"))))
}

/// A TCP socket for `target`, bound to the options' local address and interface.
fn bound_socket(target: SocketAddr, network: &TransportOptions) -> Result<TcpSocket> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| Error::Network(format!("cannot create a TCP socket: {e}")))?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(interface) = &network.bind_interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| {
                let hint = match e.raw_os_error() {
                    Some(libc::EPERM) => " (binding to an interface needs CAP_NET_RAW, e.g. root)",
                    Some(libc::ENODEV) => " (no such interface)",
                    _ => "",
                };
                Error::BindFailed(format!("cannot bind to interface '{interface}': {e}{hint}"))
            })?;
    }
    if let Some(local) = network.bind_address {
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(|e| Error::BindFailed(format!("cannot bind to local address {local}: {e}")))?;
    }
    Ok(socket)
}

pub fn tcp_error(e: &std::io::Error, name: &str) -> Error {
    match e.kind() {
        ErrorKind::ConnectionRefused => {
            Error::ConnectionRefused(format!("connection refused by {name}"))
        }
        _ => Error::Network(format!("cannot connect to {name}: {e}")),
    }
}
