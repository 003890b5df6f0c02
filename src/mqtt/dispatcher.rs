//! The dispatcher thread: calls a client's user callbacks one at a time, in the order events
//! arrived, so that callbacks never run on the I/O runtime and a slow one never stalls keep-alive.

use crate::core::log::{log, Level};
use crate::mqtt::engine::Command;
use crate::mqtt::shared::{Event, Shared};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

pub fn run(shared: Arc<Shared>, events: Receiver<Event>, engine: UnboundedSender<Command>) {
    while let Ok(event) = events.recv() {
        // A client being freed runs no more callbacks, however many events are still queued.
        if shared.closing.load(Ordering::Acquire) {
            return;
        }
        match event {
            Event::Shutdown => return,
            Event::Message(message, ack) => {
                {
                    // Held across the handlers of this message: an unsubscribe from another
                    // thread removes the entry first and then waits for this lock, so a handler
                    // it removed is either not collected here or runs before it returns.
                    let _running = shared.dispatching.lock().unwrap_or_else(|p| p.into_inner());
                    let handlers = shared.subscriptions().handlers_for(&message.topic);
                    for handler in handlers {
                        guarded("message", || handler(&message));
                    }
                }
                if let Some(ticket) = ack {
                    // The engine may be gone (client being freed): the broker will resend.
                    let _ = engine.send(Command::Ack(ticket));
                }
            }
            Event::Connection(connection) => {
                if let Some(handler) = shared.handlers().connection {
                    guarded("connection", || handler(&connection));
                }
            }
            Event::Delivery(token, result) => {
                if let Some(handler) = shared.handlers().delivery {
                    guarded("delivery", || handler(token, &result));
                }
            }
        }
    }
}

// A handler that panics (a Rust user's closure) must not take the dispatcher down with it.
fn guarded(what: &str, call: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(call)).is_err() {
        log!(
            Level::Error,
            "a {what} callback panicked; the client continues"
        );
    }
}
