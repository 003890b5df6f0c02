//! The one internal tokio runtime that runs every client's session task, created on first use.
//! C callers never run on it and never block it.

use once_cell::sync::OnceCell;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceCell<Runtime> = OnceCell::new();

pub fn get() -> crate::core::error::Result<&'static Runtime> {
    RUNTIME.get_or_try_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("eq1-runtime")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                crate::core::error::Error::Internal(format!("cannot start the I/O runtime: {e}"))
            })
    })
}
