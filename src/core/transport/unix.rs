//! Unix domain sockets (a broker on the same host, e.g. mosquitto's `listener 0 /path`).

use crate::core::error::{Error, Result};
use std::io::ErrorKind;
use std::path::Path;
use tokio::net::UnixStream;
use tokio::time::{timeout_at, Instant};

pub(super) async fn connect(path: &Path, deadline: Instant) -> Result<UnixStream> {
    let name = path.display();
    match timeout_at(deadline, UnixStream::connect(path)).await {
        Err(_) => Err(Error::Timeout(format!(
            "timed out connecting to Unix socket {name}"
        ))),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(match e.kind() {
            // Nothing listens there (a stale socket file, or none at all).
            ErrorKind::ConnectionRefused | ErrorKind::NotFound => {
                Error::ConnectionRefused(format!("connection refused by Unix socket {name}: {e}"))
            }
            _ => Error::Network(format!("cannot connect to Unix socket {name}: {e}")),
        }),
    }
}
