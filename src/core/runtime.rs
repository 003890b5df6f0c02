//! The internal tokio runtime that runs every client's session task: one per process, created on
//! first use. C callers never run on it and never block it.
//!
//! After fork() the child inherits the parent's runtime as memory only: its worker threads do not
//! exist there. The child's first client gets a new runtime; the parent's is never dropped in the
//! child (dropping waits for its threads, forever) and stays allocated and reachable, so that
//! leak checkers do not report it.

use crate::core::error::{Error, Result};
use crate::core::panic::{self, LIBRARY_THREAD_PREFIX};
use std::sync::{Mutex, MutexGuard};
use tokio::runtime::{Builder, Runtime};

struct ProcessRuntime {
    pid: u32,
    runtime: Runtime,
}

struct Runtimes {
    current: Option<&'static ProcessRuntime>,
    /// Runtimes of the processes this one was forked from.
    inherited: Vec<&'static ProcessRuntime>,
}

// Held only to read or swap a pointer, never while a runtime starts: a fork() by another thread
// can then hardly leave it locked in the child.
static RUNTIMES: Mutex<Runtimes> = Mutex::new(Runtimes {
    current: None,
    inherited: Vec::new(),
});

fn runtimes() -> MutexGuard<'static, Runtimes> {
    RUNTIMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The runtime of this process, started on first use.
pub fn get() -> Result<&'static Runtime> {
    panic::install_hook();
    let pid = std::process::id();
    if let Some(current) = runtimes().current.filter(|r| r.pid == pid) {
        return Ok(&current.runtime);
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("{LIBRARY_THREAD_PREFIX}runtime"))
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the I/O runtime: {e}")))?;
    let mut runtimes = runtimes();
    if let Some(current) = runtimes.current.filter(|r| r.pid == pid) {
        // Another thread of this process was first: use its runtime, ours never ran a task.
        drop(runtimes);
        runtime.shutdown_background();
        return Ok(&current.runtime);
    }
    let current: &'static ProcessRuntime = Box::leak(Box::new(ProcessRuntime { pid, runtime }));
    if let Some(inherited) = runtimes.current.replace(current) {
        runtimes.inherited.push(inherited);
    }
    Ok(&current.runtime)
}
