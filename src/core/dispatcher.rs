//! The callback side of a client: one thread per client runs the application's callbacks one
//! at a time, in order, so that callbacks never run on the I/O runtime and a slow one never
//! stalls the connection. Here is what any protocol's dispatcher needs: the thread, the gate
//! that lets another thread wait until a callback has returned, the bounded backlog in front
//! of the callbacks, and panic containment.

use crate::core::log::{log, Level};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts the dispatcher thread.
pub fn spawn(body: impl FnOnce() + Send + 'static) -> crate::core::error::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("eq1-dispatch".into())
        .spawn(body)
        .map_err(|e| {
            crate::core::error::Error::Internal(format!("cannot start the dispatcher thread: {e}"))
        })
}

/// A callback that panics (a Rust user's closure) must not take the dispatcher down with it.
pub fn guarded(what: &str, call: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(call)).is_err() {
        log!(
            Level::Error,
            "a {what} callback panicked; the client continues"
        );
    }
}

/// Tells other threads whether a callback is running, so that one which removed a callback
/// can wait (with a timeout) until a call already under way has returned. Entering and
/// leaving are two atomic stores (no lock, no wake-up call) unless another thread waits: the
/// dispatcher passes the gate once per message.
#[derive(Default)]
pub struct CallbackGate {
    running: AtomicBool,
    /// Threads in `wait_idle`: only then does leaving take the lock and notify.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    idle: Condvar,
}

pub struct Running<'a>(&'a CallbackGate);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // SeqCst pairs with `wait_idle`: either it sees `running` false, or this sees its
        // waiter count and notifies under the lock it waits with.
        self.0.running.store(false, Ordering::SeqCst);
        if self.0.waiters.load(Ordering::SeqCst) != 0 {
            drop(self.0.lock.lock().unwrap_or_else(|p| p.into_inner()));
            self.0.idle.notify_all();
        }
    }
}

impl CallbackGate {
    /// Held by the dispatcher while it runs the callbacks of one event. Whatever the
    /// dispatcher reads after entering (the routing table) is ordered after the store, so
    /// that a thread which changed the routes and then finds the gate idle knows the next
    /// callback sees its change.
    pub fn enter(&self) -> Running<'_> {
        self.running.store(true, Ordering::SeqCst);
        Running(self)
    }

    /// Returns true once no callback runs, false if one still runs after `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let idle = loop {
            if !self.running.load(Ordering::SeqCst) {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            guard = self
                .idle
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        idle
    }
}

/// The events waiting for the dispatcher thread: a deque under a lock that a push holds for
/// a moment, and a condvar signalled only when the dispatcher is parked on it (one wake-up per
/// idle period, none while it is busy). The dispatcher takes everything queued at once (one
/// lock per batch, not per event) by swapping deques, so that both buffers are reused and a
/// steady stream allocates nothing (a channel allocates a block every few dozen events).
pub struct EventQueue<T> {
    state: Mutex<QueueState<T>>,
    ready: Condvar,
}

struct QueueState<T> {
    items: VecDeque<T>,
    /// The dispatcher waits on `ready`; the push that clears this wakes it.
    parked: bool,
    /// The dispatcher has stopped: pushes are dropped.
    closed: bool,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                parked: false,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> EventQueue<T> {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event (dropped when the dispatcher has stopped).
    pub fn push(&self, item: T) {
        self.push_bounded(item, usize::MAX);
    }

    /// Queues an event unless `limit` events already wait for the dispatcher; false when it
    /// was dropped (the queue is full, or the dispatcher has stopped).
    pub fn push_bounded(&self, item: T, limit: usize) -> bool {
        let mut state = self.state();
        if state.closed || state.items.len() >= limit {
            return false;
        }
        state.items.push_back(item);
        let wake = std::mem::replace(&mut state.parked, false);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// Waits until something is queued, then moves all of it into `batch` (empty on entry).
    pub fn take_all(&self, batch: &mut VecDeque<T>) {
        let mut state = self.state();
        while state.items.is_empty() {
            state.parked = true;
            state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.parked = false;
        std::mem::swap(&mut state.items, batch);
    }

    /// The dispatcher stops: what is still queued, and what comes, is dropped.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        let dropped = std::mem::take(&mut state.items);
        drop(state);
        drop(dropped);
    }
}

/// The received work waiting for callbacks, bounded in items and bytes. The I/O side stops
/// reading from the peer while it is full (the peer then holds the rest: TCP flow control),
/// and is woken when the dispatcher has made room.
pub struct Backlog {
    items: AtomicUsize,
    bytes: AtomicUsize,
    max_items: usize,
    max_bytes: usize,
    room: tokio::sync::Notify,
    waiting: AtomicBool,
}

impl Backlog {
    pub fn new(max_items: usize, max_bytes: usize) -> Backlog {
        Backlog {
            items: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
            room: tokio::sync::Notify::new(),
            waiting: AtomicBool::new(false),
        }
    }

    pub fn add(&self, bytes: usize) {
        self.items.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    pub fn remove(&self, bytes: usize) {
        self.items.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) && !self.is_full() {
            self.waiting.store(false, Ordering::Release);
            self.room.notify_one();
        }
    }

    /// Messages held now.
    pub fn items(&self) -> usize {
        self.items.load(Ordering::Acquire)
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.items.load(Ordering::Acquire) >= self.max_items
            || self.bytes.load(Ordering::Acquire) >= self.max_bytes
    }

    /// Resolves once there is room (at once if there is).
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            self.waiting.store(true, Ordering::Release);
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn gate_wait_times_out_while_a_callback_runs() {
        let gate = Arc::new(CallbackGate::default());
        let running = gate.enter();
        assert!(!gate.wait_idle(Duration::from_millis(20)));
        drop(running);
        assert!(gate.wait_idle(Duration::from_millis(20)));
    }

    #[test]
    fn event_queue_wakes_a_parked_taker_and_hands_over_in_order() {
        let queue = Arc::new(EventQueue::default());
        let taker = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut batch = VecDeque::new();
                while got.len() < 1000 {
                    queue.take_all(&mut batch);
                    got.extend(batch.drain(..));
                }
                got
            })
        };
        for i in 0..1000 {
            queue.push(i);
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(taker.join().ok(), Some((0..1000).collect::<Vec<_>>()));
        queue.close();
        queue.push(1);
        assert!(queue.state().items.is_empty());
    }

    #[test]
    fn backlog_is_full_at_either_bound() {
        let backlog = Backlog::new(2, 100);
        backlog.add(10);
        assert!(!backlog.is_full());
        backlog.add(10);
        assert!(backlog.is_full());
        backlog.remove(10);
        assert!(!backlog.is_full());
        backlog.add(200);
        assert!(backlog.is_full());
    }
}
