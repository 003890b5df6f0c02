//! The internal tokio runtime that runs every client's session task: one per process, created on
//! first use, driven by one library thread. C callers never run on it and never block it.
//!
//! It is a current-thread runtime on a thread of ours rather than the work-stealing scheduler
//! with one worker: the same single I/O thread, without the scheduler's statistics and stealing
//! machinery, whose code and the math library it links cost every process about 0.6 MiB of
//! resident memory. Callers that `block_on` the handle (TCP request/response) poll their future
//! on their own thread while the library thread drives the sockets and timers.
//!
//! After fork() the child inherits the parent's runtime as memory only: its worker threads do not
//! exist there. The child's first client gets a new runtime; the parent's is never dropped in the
//! child (dropping waits for its threads, forever) and stays allocated and reachable, so that
//! leak checkers do not report it.

use crate::core::error::{Error, Result};
use crate::core::panic::{self, LIBRARY_THREAD_PREFIX};
use std::sync::{Mutex, MutexGuard};
use tokio::runtime::{Builder, Handle};

struct ProcessRuntime {
    pid: u32,
    handle: Handle,
    /// The library thread drives the runtime until this is dropped, which happens only when
    /// another thread's runtime was installed first.
    _driving: tokio::sync::oneshot::Sender<()>,
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
pub fn get() -> Result<&'static Handle> {
    panic::install_hook();
    let pid = std::process::id();
    if let Some(current) = runtimes().current.filter(|r| r.pid == pid) {
        return Ok(&current.handle);
    }
    let started = start(pid)?;
    let mut runtimes = runtimes();
    if let Some(current) = runtimes.current.filter(|r| r.pid == pid) {
        // Another thread of this process was first: use its runtime; ours never ran a task and
        // its thread ends when `started` is dropped.
        drop(runtimes);
        drop(started);
        return Ok(&current.handle);
    }
    let current: &'static ProcessRuntime = Box::leak(Box::new(started));
    if let Some(inherited) = runtimes.current.replace(current) {
        runtimes.inherited.push(inherited);
    }
    Ok(&current.handle)
}

fn start(pid: u32) -> Result<ProcessRuntime> {
    let failed = |e: std::io::Error| Error::Internal(format!("cannot start the I/O runtime: {e}"));
    let name = format!("{LIBRARY_THREAD_PREFIX}runtime");
    let runtime = Builder::new_current_thread()
        .thread_name(name.clone())
        .enable_io()
        .enable_time()
        .build()
        .map_err(failed)?;
    let handle = runtime.handle().clone();
    let (driving, stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // Only the runtime's own `block_on` drives its I/O and timers (and every task
            // spawned through the handle); it returns once `driving` is dropped.
            runtime.block_on(async {
                let _ = stop.await;
            });
        })
        .map_err(failed)?;
    Ok(ProcessRuntime {
        pid,
        handle,
        _driving: driving,
    })
}
