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
use crate::mqtt::session::{AckTicket, AuthAnswer, AuthChallenge};
use crate::mqtt::shared::{Dispatch, Handlers, Shared};
use crate::mqtt::subscriptions::{MessageHandler, RouteSnapshot};
use crate::mqtt::Message;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc::{Sender, UnboundedSender};

/// Authentication answers go back to the driver on their own small channel: the driver reads
/// it also during the CONNECT handshake, when it reads no other command. One step is
/// outstanding at a time, so a few places are plenty; a late answer to an abandoned step
/// finds room or is dropped (the driver would ignore it anyway).
pub(crate) const AUTH_ANSWERS: usize = 4;
pub type AuthAnswers = Sender<(u64, AuthAnswer)>;

struct Dispatcher {
    shared: Arc<Shared>,
    driver: UnboundedSender<Command>,
    auth_answers: AuthAnswers,
    /// Messages no callback took yet, oldest first.
    held: VecDeque<(Message, Option<AckTicket>)>,
    /// The routes and handlers as of `routes_version`: re-read only after a change, so that
    /// an event costs no lock and no copy of its handlers.
    routes_version: u64,
    routes: RouteSnapshot,
    handlers: Handlers,
}

pub fn run(shared: Arc<Shared>, driver: UnboundedSender<Command>, auth_answers: AuthAnswers) {
    let mut dispatcher = Dispatcher {
        shared,
        driver,
        auth_answers,
        held: VecDeque::new(),
        routes_version: u64::MAX,
        routes: RouteSnapshot::default(),
        handlers: Handlers::default(),
    };
    let mut batch = VecDeque::new();
    loop {
        dispatcher.shared.events.take_all(&mut batch);
        while let Some(event) = batch.pop_front() {
            if !dispatcher.handle(event) {
                dispatcher.shared.events.close();
                return;
            }
        }
    }
}

impl Dispatcher {
    /// Runs one event; false on shutdown.
    fn handle(&mut self, event: Dispatch) -> bool {
        // A client being freed runs no more callbacks, however many events are still queued;
        // library calls (the outcomes of requests, told before the shutdown) still run.
        if self.shared.closing.load(Ordering::Acquire) {
            match event {
                Dispatch::Call(call) => guarded("request", call),
                Dispatch::Shutdown => return false,
                _ => {}
            }
            return true;
        }
        match event {
            Dispatch::Shutdown => return false,
            Dispatch::Call(call) => guarded("request", call),
            Dispatch::Message(message, ticket) => {
                // Held messages are older: they go first once they have somewhere to go.
                self.release_held();
                self.deliver(message, ticket);
            }
            Dispatch::Redeliver => self.release_held(),
            Dispatch::Auth(challenge) => self.authenticate(&challenge),
            Dispatch::Connection(connection) => {
                self.refresh();
                if let Some(handler) = &self.handlers.connection {
                    guarded("connection", || handler(&connection));
                }
            }
            Dispatch::Delivery(token, result, detail) => {
                self.refresh();
                if let Some(handler) = &self.handlers.delivery {
                    guarded("delivery", || handler(token, &result, detail.as_deref()));
                }
            }
        }
        true
    }

    /// Asks the authentication handler and sends its answer to the driver, which waits for it
    /// without stalling keep-alive (and within the connect or re-authentication timeout).
    fn authenticate(&mut self, challenge: &AuthChallenge) {
        self.refresh();
        let answer = match &self.handlers.auth {
            None => AuthAnswer::Failure(
                "the broker sent an authentication challenge but no authentication callback is installed (eq1_mqtt_client_set_auth_callback)".into(),
            ),
            Some(handler) => {
                let mut answer = None;
                guarded("authentication", || answer = Some(handler(challenge)));
                answer.unwrap_or_else(|| {
                    AuthAnswer::Failure("the authentication callback panicked".into())
                })
            }
        };
        if self
            .auth_answers
            .try_send((challenge.step, answer))
            .is_err()
        {
            log!(
                Level::Warn,
                "an authentication answer was not delivered (the connection is gone or the step was abandoned)"
            );
        }
    }

    /// Runs the message's handlers, then acknowledges it; holds it when there are none.
    fn deliver(&mut self, message: Message, ticket: Option<AckTicket>) {
        let delivered = {
            // Held across the handlers of this message: an unsubscribe from another thread
            // removes the route first and then waits for the gate, so a handler it removed is
            // either not collected here or has returned before the unsubscribe does.
            let _running = self.shared.gate.enter();
            // After entering the gate: see `Shared::routes_since`.
            refresh(
                &self.shared,
                &mut self.routes_version,
                &mut self.routes,
                &mut self.handlers,
            );
            let run = |handler: &MessageHandler| guarded("message", || handler(&message));
            self.routes.for_each_handler(&message, run) != 0
                || self.handlers.message.as_ref().map(run).is_some()
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
        self.refresh();
        for (message, ticket) in std::mem::take(&mut self.held) {
            if self.handlers.message.is_none() && !self.routes.routes(&message) {
                self.held.push_back((message, ticket));
            } else {
                self.deliver(message, ticket);
            }
        }
    }

    /// Takes a fresh copy of the routes and handlers if they changed since the last one.
    fn refresh(&mut self) {
        refresh(
            &self.shared,
            &mut self.routes_version,
            &mut self.routes,
            &mut self.handlers,
        );
    }
}

fn refresh(shared: &Shared, seen: &mut u64, routes: &mut RouteSnapshot, handlers: &mut Handlers) {
    if let Some((version, new_routes, new_handlers)) = shared.routes_since(*seen) {
        *seen = version;
        *routes = new_routes;
        *handlers = new_handlers;
    }
}
