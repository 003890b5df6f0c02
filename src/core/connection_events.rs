//! Connection events of the request/response clients (TCP, serial, Modbus): connected, lost
//! (with the error that ended the connection), reconnected and disconnected, delivered to the
//! application's handler on a dispatcher thread of the client's own, never on the I/O thread
//! nor on the thread whose call noticed the change (MQTT's convention). The thread starts with
//! the first handler, so a client nobody listens to costs no thread; the queue in front of it is
//! bounded, so a slow handler never stalls I/O (events beyond the bound are dropped, counted and
//! logged).

use crate::core::dispatcher::{self, guarded, EventQueue};
use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};

/// Events that may wait for the handler at once; more are dropped.
pub const QUEUE_LIMIT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// The caller's connect succeeded (or the first connection a later call opened).
    Connected,
    /// The connection ended without the caller asking: `ConnectionEvent::error` says why.
    Lost,
    /// A call opened a new connection after the last one was lost (automatic reconnect).
    Reconnected,
    /// The caller's disconnect closed the connection.
    Disconnected,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionEvent {
    pub kind: ConnectionEventKind,
    /// Why the connection was lost (`Lost` only).
    pub error: Option<Error>,
}

pub type ConnectionEventHandler = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

enum Item {
    Event(ConnectionEvent),
    Stop,
}

struct Inner {
    queue: EventQueue<Item>,
    handler: Mutex<Option<ConnectionEventHandler>>,
    /// The dispatcher runs: events are queued (none are before the first handler).
    listening: AtomicBool,
    /// The owner is being freed: queued events run no handler any more.
    closing: AtomicBool,
    /// A connection was opened since the caller's last connect: the next one is a reconnect.
    opened: AtomicBool,
    dropped: AtomicU64,
    what: &'static str,
}

/// The side that reports events; cheap to clone into the I/O tasks of a client.
#[derive(Clone)]
pub struct EventSender(Arc<Inner>);

enum Thread {
    NotStarted,
    Running(JoinHandle<()>, ThreadId),
    Stopped,
}

/// Owned by a client handle: the handler, the queue and the dispatcher thread. Dropping it
/// joins the thread (unless dropped on that thread, inside a handler).
pub struct ConnectionEvents {
    sender: EventSender,
    thread: Mutex<Thread>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventSender {
    fn emit(&self, kind: ConnectionEventKind, error: Option<Error>) {
        let inner = &self.0;
        if !inner.listening.load(Ordering::Acquire) {
            return;
        }
        if !inner
            .queue
            .push_bounded(Item::Event(ConnectionEvent { kind, error }), QUEUE_LIMIT)
            && !inner.closing.load(Ordering::Acquire)
        {
            let dropped = inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            log!(
                Level::Warn,
                "{}: the connection callback is {QUEUE_LIMIT} events behind; a {kind:?} event \
                 was dropped ({dropped} so far)",
                inner.what
            );
        }
    }

    /// The caller's connect opened a connection.
    pub fn connected(&self) {
        self.0.opened.store(true, Ordering::Release);
        self.emit(ConnectionEventKind::Connected, None);
    }

    /// A call opened a connection on its own: a reconnect when one was open before.
    pub fn reopened(&self) {
        let again = self.0.opened.swap(true, Ordering::AcqRel);
        self.emit(
            if again {
                ConnectionEventKind::Reconnected
            } else {
                ConnectionEventKind::Connected
            },
            None,
        );
    }

    /// The connection ended without the caller asking.
    pub fn lost(&self, why: &Error) {
        self.emit(ConnectionEventKind::Lost, Some(why.clone()));
    }

    /// The caller closed the connection.
    pub fn disconnected(&self) {
        self.0.opened.store(false, Ordering::Release);
        self.emit(ConnectionEventKind::Disconnected, None);
    }

    /// Events dropped because the handler was too far behind.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl ConnectionEvents {
    /// `what` names the client in log lines ("tcp", "serial", "modbus").
    pub fn new(what: &'static str) -> ConnectionEvents {
        ConnectionEvents {
            sender: EventSender(Arc::new(Inner {
                queue: EventQueue::default(),
                handler: Mutex::new(None),
                listening: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                opened: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
                what,
            })),
            thread: Mutex::new(Thread::NotStarted),
        }
    }

    pub fn sender(&self) -> &EventSender {
        &self.sender
    }

    /// Sets (or with `None` removes) the handler; the first one starts the dispatcher thread.
    /// Events that happened before are not replayed.
    pub fn set_handler(&self, handler: Option<ConnectionEventHandler>) -> Result<()> {
        let inner = &self.sender.0;
        let mut thread = lock(&self.thread);
        if handler.is_some() {
            match *thread {
                Thread::Running(..) => {}
                Thread::Stopped => {
                    return Err(Error::InvalidState("the client is being freed".into()));
                }
                Thread::NotStarted => {
                    let running = Arc::clone(inner);
                    let handle = dispatcher::spawn(move || run(&running))?;
                    let id = handle.thread().id();
                    *thread = Thread::Running(handle, id);
                    inner.listening.store(true, Ordering::Release);
                }
            }
        }
        *lock(&inner.handler) = handler;
        Ok(())
    }

    /// True on the dispatcher thread, i.e. inside the handler.
    pub fn in_callback(&self) -> bool {
        matches!(*lock(&self.thread), Thread::Running(_, id) if id == std::thread::current().id())
    }

    /// Stops the dispatcher: after it returns no handler runs again (one running is waited
    /// for; queued events are dropped). Refused inside the handler, where joining would wait
    /// for itself.
    pub fn shutdown(&self) -> Result<()> {
        if self.in_callback() {
            return Err(Error::CalledFromCallback(format!(
                "a {} client cannot be freed from inside its own connection callback",
                self.sender.0.what
            )));
        }
        self.stop();
        Ok(())
    }

    fn stop(&self) {
        let inner = &self.sender.0;
        let previous = std::mem::replace(&mut *lock(&self.thread), Thread::Stopped);
        inner.closing.store(true, Ordering::Release);
        inner.listening.store(false, Ordering::Release);
        if let Thread::Running(handle, id) = previous {
            inner.queue.push(Item::Stop);
            if id != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for ConnectionEvents {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(inner: &Inner) {
    let mut batch = VecDeque::new();
    loop {
        inner.queue.take_all(&mut batch);
        while let Some(item) = batch.pop_front() {
            match item {
                Item::Stop => {
                    inner.queue.close();
                    return;
                }
                Item::Event(event) => {
                    if inner.closing.load(Ordering::Acquire) {
                        continue;
                    }
                    let handler = lock(&inner.handler).clone();
                    if let Some(handler) = handler {
                        guarded("connection", || handler(&event));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn recording(events: &ConnectionEvents) -> mpsc::Receiver<(ConnectionEventKind, ThreadId)> {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        events
            .set_handler(Some(Arc::new(move |e: &ConnectionEvent| {
                let _ = lock(&tx).send((e.kind, std::thread::current().id()));
            })))
            .expect("handler");
        rx
    }

    #[test]
    fn events_arrive_in_order_on_the_dispatcher_thread() {
        let events = ConnectionEvents::new("test");
        let got = recording(&events);
        let sender = events.sender().clone();
        sender.connected();
        sender.lost(&Error::ConnectionLost("cut".into()));
        sender.reopened();
        sender.disconnected();
        sender.reopened();
        let kinds: Vec<_> = (0..5)
            .map(|_| got.recv_timeout(Duration::from_secs(5)).expect("event"))
            .collect();
        use ConnectionEventKind::*;
        assert_eq!(
            kinds.iter().map(|k| k.0).collect::<Vec<_>>(),
            [Connected, Lost, Reconnected, Disconnected, Connected]
        );
        assert!(kinds.iter().all(|k| k.1 != std::thread::current().id()));
    }

    #[test]
    fn no_thread_and_no_queueing_before_a_handler() {
        let events = ConnectionEvents::new("test");
        events.sender().connected();
        assert!(matches!(*lock(&events.thread), Thread::NotStarted));
        let got = recording(&events);
        events.sender().lost(&Error::Timeout("t".into()));
        let first = got.recv_timeout(Duration::from_secs(5)).expect("event");
        assert_eq!(first.0, ConnectionEventKind::Lost);
    }

    #[test]
    fn a_slow_handler_never_blocks_the_reporter_and_the_overflow_is_counted() {
        let events = ConnectionEvents::new("test");
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        events
            .set_handler(Some(Arc::new(move |_: &ConnectionEvent| {
                let _ = lock(&release_rx).recv_timeout(Duration::from_secs(10));
            })))
            .expect("handler");
        let sender = events.sender().clone();
        // The handler holds the first event; QUEUE_LIMIT more fill the queue; the rest drop.
        for _ in 0..QUEUE_LIMIT * 2 {
            sender.lost(&Error::ConnectionLost("x".into()));
        }
        assert!(sender.dropped() >= QUEUE_LIMIT as u64 - 1);
        drop(release_tx);
    }

    #[test]
    fn shutdown_is_refused_inside_the_handler_and_joins_outside() {
        let events = Arc::new(ConnectionEvents::new("test"));
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let weak = Arc::downgrade(&events);
        events
            .set_handler(Some(Arc::new(move |_: &ConnectionEvent| {
                let refused = weak.upgrade().map(|e| e.shutdown());
                let _ = lock(&tx).send(matches!(refused, Some(Err(Error::CalledFromCallback(_)))));
            })))
            .expect("handler");
        events.sender().connected();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).ok(), Some(true));
        assert!(events.shutdown().is_ok());
        assert!(matches!(*lock(&events.thread), Thread::Stopped));
    }
}
