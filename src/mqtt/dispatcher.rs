//! A client's dispatcher thread: calls the user's callbacks one at a time, in the order events
//! arrived. A received message goes to the subscriptions its identifiers name, or to every
//! subscription whose filter matches it (`subscriptions.rs`), else to the
//! default message callback; with neither, a QoS 1/2 message is held (not acknowledged, still
//! counted in the inbound backlog) until a matching subscription or the default callback
//! appears, so that a message the broker queued for a persistent session is never
//! acknowledged and then dropped.

use crate::core::dispatcher::guarded;
use crate::core::log::{log, Level};
use crate::mqtt::driver::Command;
use crate::mqtt::session::AckTicket;
use crate::mqtt::shared::{Dispatch, Shared};
use crate::mqtt::subscriptions::MessageHandler;
use crate::mqtt::Message;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

struct Dispatcher {
    shared: Arc<Shared>,
    driver: UnboundedSender<Command>,
    /// Messages no callback took yet, oldest first.
    held: VecDeque<(Message, Option<AckTicket>)>,
}

pub fn run(shared: Arc<Shared>, events: Receiver<Dispatch>, driver: UnboundedSender<Command>) {
    let mut dispatcher = Dispatcher {
        shared,
        driver,
        held: VecDeque::new(),
    };
    while let Ok(event) = events.recv() {
        // A client being freed runs no more callbacks, however many events are still queued.
        if dispatcher.shared.closing.load(Ordering::Acquire) {
            return;
        }
        match event {
            Dispatch::Shutdown => return,
            Dispatch::Message(message, ticket) => {
                // Held messages are older: they go first once they have somewhere to go.
                dispatcher.release_held();
                dispatcher.deliver(message, ticket);
            }
            Dispatch::Redeliver => dispatcher.release_held(),
            Dispatch::Connection(connection) => {
                if let Some(handler) = dispatcher.shared.handlers().connection {
                    guarded("connection", || handler(&connection));
                }
            }
            Dispatch::Delivery(token, result, detail) => {
                if let Some(handler) = dispatcher.shared.handlers().delivery {
                    guarded("delivery", || handler(token, &result, detail.as_deref()));
                }
            }
        }
    }
}

impl Dispatcher {
    /// Runs the message's handlers, then acknowledges it; holds it when there are none.
    fn deliver(&mut self, message: Message, ticket: Option<AckTicket>) {
        let delivered = {
            // Held across the handlers of this message: an unsubscribe from another thread
            // removes the route first and then waits for the gate, so a handler it removed is
            // either not collected here or has returned before the unsubscribe does.
            let _running = self.shared.gate.enter();
            let handlers = self.handlers_for(&message);
            for handler in &handlers {
                guarded("message", || handler(&message));
            }
            !handlers.is_empty()
        };
        if !delivered && ticket.is_some() {
            if self.held.is_empty() {
                log!(
                    Level::Warn,
                    "a QoS {} message on '{}' matches no subscription and no default message callback is set: held until one is",
                    message.qos,
                    message.topic
                );
            }
            self.held.push_back((message, ticket));
            return;
        }
        if !delivered {
            log!(
                Level::Debug,
                "QoS 0 message on '{}' matches no subscription: dropped",
                message.topic
            );
        }
        self.shared
            .backlog
            .remove(message.payload.len() + message.topic.len());
        if let Some(ticket) = ticket {
            // The driver may be gone (client being freed): the broker will resend.
            let _ = self.driver.send(Command::Ack(ticket));
        }
    }

    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        // In arrival order; one still without a route does not block the others.
        for (message, ticket) in std::mem::take(&mut self.held) {
            if self.handlers_for(&message).is_empty() {
                self.held.push_back((message, ticket));
            } else {
                self.deliver(message, ticket);
            }
        }
    }

    fn handlers_for(&self, message: &Message) -> Vec<MessageHandler> {
        let handlers = self.shared.subscriptions().handlers_for(message);
        if !handlers.is_empty() {
            return handlers;
        }
        self.shared.handlers().message.into_iter().collect()
    }
}
