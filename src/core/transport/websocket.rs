//! MQTT over WebSockets (subprotocol `mqtt`, binary frames), on tokio-tungstenite's handshake
//! and framing over our own TCP/TLS/proxy stream, so the TLS options and the proxy apply to
//! `wss://` as to `mqtts://`. `Bytes` turns the message stream back into the byte stream the
//! protocol drivers read: an MQTT packet may span frames and a frame may hold several packets.

use super::{Endpoint, Stream};
use crate::core::error::{Error, Result};
use crate::core::tls;
use futures_util::{Sink, Stream as _};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::{
    self,
    client::IntoClientRequest,
    error::ProtocolError,
    http::{HeaderName, HeaderValue},
    protocol::WebSocketConfig,
    Message,
};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocol of MQTT (MQTT 3.1.1 §6, MQTT 5.0 §6).
const SUBPROTOCOL: &str = "mqtt";
/// The largest MQTT packet (1 + 4 + 268,435,455 bytes) plus framing slack.
const MAX_MESSAGE: usize = 268_435_460 + 64;

/// Headers the handshake sets itself.
fn reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "host" | "upgrade" | "connection" | "content-length"
    ) || name.starts_with("sec-websocket-")
}

pub(super) fn check_header(name: &str, value: &str) -> Result<()> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(Error::InvalidArgument(format!(
            "'{name}' is not a valid HTTP header name"
        )));
    }
    if reserved(name) {
        return Err(Error::InvalidArgument(format!(
            "the WebSocket handshake sets the '{name}' header itself"
        )));
    }
    if HeaderValue::from_str(value).is_err() {
        return Err(Error::InvalidArgument(format!(
            "the value of HTTP header '{name}' holds a control character or non-ASCII text"
        )));
    }
    Ok(())
}

pub(super) async fn handshake(
    stream: Stream,
    broker: &Endpoint,
    path: &str,
    headers: &[(String, String)],
    deadline: Instant,
) -> Result<Stream> {
    let scheme = if broker.tls { "wss" } else { "ws" };
    let host = super::uri::bracketed(&broker.host);
    let url = format!("{scheme}://{host}:{}{path}", broker.port);
    let failed = |why: String| Error::WebSocketFailed(format!("WebSocket {url}: {why}"));
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("cannot make the upgrade request: {e}")))?;
    let fields = request.headers_mut();
    fields.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    for (name, value) in headers {
        // Checked when they were added.
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(Error::Internal(format!(
                "WebSocket header '{name}' passed its check but is invalid"
            )));
        };
        fields.append(name, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let upgraded = timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)),
    )
    .await
    .map_err(|_| Error::Timeout(format!("timed out in the WebSocket handshake with {url}")))?;
    match upgraded {
        Ok((socket, _response)) => Ok(Box::new(Bytes {
            socket,
            pending: bytes::Bytes::new(),
        })),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            Err(failed(format!(
                "the server answered the upgrade with HTTP {status} (wrong path, or no WebSocket listener there)"
            )))
        }
        Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(e))) => {
            Err(failed(format!(
                "the server did not accept the '{SUBPROTOCOL}' subprotocol: {e}"
            )))
        }
        Err(tungstenite::Error::Io(e)) => Err(tls::classify_io(&e, &broker.host)
            .unwrap_or_else(|| failed(format!("the connection failed during the handshake: {e}")))),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// A WebSocket connection read and written as bytes: each write is one binary frame.
struct Bytes {
    socket: WebSocketStream<Stream>,
    /// What is left of the last binary frame read.
    pending: bytes::Bytes,
}

fn io_error(e: tungstenite::Error) -> io::Error {
    match e {
        // Keeps TLS errors inside for the caller's classification.
        tungstenite::Error::Io(e) => e,
        other => io::Error::other(format!("WebSocket: {other}")),
    }
}

impl AsyncRead for Bytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                // The end of the stream (a close frame, or the connection ended).
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket: the server sent a text frame; MQTT uses binary frames only",
                    )))
                }
                // Pings are answered by tungstenite; pongs and raw frames carry no MQTT.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl AsyncWrite for Bytes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(io_error)?;
        let frame = Message::Binary(bytes::Bytes::copy_from_slice(buf));
        Pin::new(&mut self.socket)
            .start_send(frame)
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    // An in-process WebSocket peer: mosquitto cannot be told how to split its frames, and
    // these are the cases the byte adapter must get right.
    async fn pair() -> (Bytes, WebSocketStream<tokio::io::DuplexStream>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let client: Stream = Box::new(client);
        let socket = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let peer = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        (
            Bytes {
                socket,
                pending: bytes::Bytes::new(),
            },
            peer,
        )
    }

    #[tokio::test]
    async fn packets_spanning_frames_and_frames_holding_packets_read_as_one_byte_stream() {
        let (mut bytes, mut peer) = pair().await;
        // One PUBLISH over three frames, a ping between, then two PINGRESPs in one frame.
        let publish = [0x30u8, 0x07, 0x00, 0x01, b't', b'h', b'e', b'l', b'o'];
        for part in [&publish[..2], &publish[2..5], &publish[5..]] {
            peer.send(Message::Binary(bytes::Bytes::copy_from_slice(part)))
                .await
                .unwrap();
            peer.send(Message::Ping(bytes::Bytes::from_static(b"p")))
                .await
                .unwrap();
        }
        peer.send(Message::Binary(bytes::Bytes::from_static(&[
            0xD0, 0, 0xD0, 0,
        ])))
        .await
        .unwrap();
        let mut read = vec![0u8; publish.len() + 4];
        bytes.read_exact(&mut read).await.unwrap();
        assert_eq!(&read[..publish.len()], &publish);
        assert_eq!(&read[publish.len()..], &[0xD0, 0, 0xD0, 0]);

        // A write leaves as one binary frame (tungstenite answers the pings with pongs).
        bytes.write_all(&[0xC0, 0x00]).await.unwrap();
        bytes.flush().await.unwrap();
        loop {
            match peer.next().await.unwrap().unwrap() {
                Message::Pong(_) => {}
                Message::Binary(data) => {
                    assert_eq!(&data[..], &[0xC0, 0x00]);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }

        // A close frame is the end of the stream.
        peer.close(None).await.unwrap();
        assert_eq!(bytes.read(&mut read).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_text_frame_is_an_error() {
        let (mut bytes, mut peer) = pair().await;
        peer.send(Message::text("{}")).await.unwrap();
        let error = bytes.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn handshake_headers_are_ours() {
        assert!(check_header("Authorization", "Bearer x").is_ok());
        for name in ["Host", "sec-websocket-protocol", "Upgrade", "Connection"] {
            assert!(check_header(name, "x").is_err(), "{name}");
        }
        assert!(check_header("Bad Name", "x").is_err());
        assert!(check_header("X-A", "a\r\nb").is_err());
    }
}
