//! Delivery tokens: one per accepted publish, completed when the broker acknowledged it (QoS 1/2)
//! or it was written (QoS 0), or failed with the reason. Callers may block on one.

use crate::core::error::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub type Token = u64;

/// What the peer said with its answer to a publish, beyond success or failure: a reason code,
/// a reason string and name/value properties (MQTT 5.0 acknowledgements carry them). Kept
/// only when there is something to say (a non-zero code, a text or properties).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckDetail {
    pub code: u8,
    pub text: Option<String>,
    pub properties: Vec<(String, String)>,
}

impl AckDetail {
    /// Whether it says anything beyond plain success (code 0, no text, no properties).
    pub fn is_plain(&self) -> bool {
        self.code == 0 && self.text.is_none() && self.properties.is_empty()
    }
}

/// How a publish ended, as `Tokens::wait_report` tells it.
pub type Report = (Result<()>, Option<Arc<AckDetail>>);

/// Failures remembered for `wait`; older ones are forgotten so that a long outage with the
/// drop-oldest policy cannot grow memory without bound (the delivery callback saw them all).
const KEPT_FAILURES: usize = 65_536;

/// A token not yet completed: when it was issued and at which QoS, for the latency metric.
#[derive(Clone, Copy)]
struct Pending {
    issued: Instant,
    qos: u8,
}

/// How long a completed publish took from `issue` to its completion, at which QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    pub elapsed: Duration,
    pub qos: u8,
}

#[derive(Default)]
struct State {
    next: Token,
    pending: HashMap<Token, Pending>,
    // Successes are implied (issued and no longer pending); only failures need remembering.
    failures: HashMap<Token, Error>,
    /// What the peer said about a completed token, when it said anything.
    details: HashMap<Token, Arc<AckDetail>>,
    /// Tokens in `failures` or `details`, oldest first.
    failure_order: VecDeque<Token>,
    /// Highest token whose failure was forgotten: below it, "not failed" is not known.
    forgotten_up_to: Token,
}

#[derive(Default)]
pub struct Tokens {
    state: Mutex<State>,
    completed: Condvar,
}

impl Tokens {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new token for a publish at `qos`.
    pub fn issue(&self, qos: u8) -> Token {
        let issued = Instant::now();
        let mut state = self.lock();
        state.next += 1;
        let token = state.next;
        state.pending.insert(token, Pending { issued, qos });
        token
    }

    /// Tokens of messages restored from a store (token, QoS): pending under their original
    /// numbers (their latency counts from now), and new tokens are issued above them.
    pub fn restore(&self, tokens: &[(Token, u8)]) {
        let issued = Instant::now();
        let mut state = self.lock();
        for &(token, qos) in tokens {
            state.next = state.next.max(token);
            state.pending.insert(token, Pending { issued, qos });
        }
    }

    pub fn complete(&self, token: Token, result: &Result<()>) {
        self.complete_with(token, result, None, |_| {})
    }

    /// `complete`, with what the peer said about it (kept for `wait_report`). `observe` sees
    /// how long the publish took before any waiter wakes (nothing when it was not pending).
    pub fn complete_with(
        &self,
        token: Token,
        result: &Result<()>,
        detail: Option<Arc<AckDetail>>,
        observe: impl FnOnce(Completed),
    ) {
        let mut state = self.lock();
        let Some(pending) = state.pending.remove(&token) else {
            return;
        };
        observe(Completed {
            elapsed: pending.issued.elapsed(),
            qos: pending.qos,
        });
        let mut kept = false;
        if let Err(e) = result {
            state.failures.insert(token, e.clone());
            kept = true;
        }
        if let Some(detail) = detail {
            state.details.insert(token, detail);
            kept = true;
        }
        if kept {
            state.failure_order.push_back(token);
            if state.failure_order.len() > KEPT_FAILURES {
                if let Some(old) = state.failure_order.pop_front() {
                    state.failures.remove(&old);
                    state.details.remove(&old);
                    state.forgotten_up_to = state.forgotten_up_to.max(old);
                }
            }
        }
        drop(state);
        self.completed.notify_all();
    }

    /// Completes `tokens` successfully; `each` sees how long each one took, before any waiter
    /// wakes.
    pub fn complete_all_ok(&self, tokens: &[Token], mut each: impl FnMut(Completed)) {
        if tokens.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        for token in tokens {
            if let Some(pending) = state.pending.remove(token) {
                each(Completed {
                    elapsed: now.saturating_duration_since(pending.issued),
                    qos: pending.qos,
                });
            }
        }
        drop(state);
        self.completed.notify_all();
    }

    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Blocks until `token` completes or `timeout` passes.
    pub fn wait(&self, token: Token, timeout: Duration) -> Result<()> {
        self.wait_report(token, timeout).0
    }

    /// `wait`, with what the peer said about the outcome (when it said anything).
    pub fn wait_report(&self, token: Token, timeout: Duration) -> Report {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        if token == 0 || token > state.next {
            return (
                Err(Error::InvalidArgument(format!(
                    "token {token} was never issued by this client"
                ))),
                None,
            );
        }
        while state.pending.contains_key(&token) {
            let now = Instant::now();
            if now >= deadline {
                return (
                    Err(Error::Timeout(format!(
                        "token {token} not completed within {} ms",
                        timeout.as_millis()
                    ))),
                    None,
                );
            }
            state = self
                .completed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let detail = state.details.get(&token).cloned();
        let result = match state.failures.get(&token) {
            Some(e) => Err(e.clone()),
            None if detail.is_none() && token <= state.forgotten_up_to => Err(Error::InvalidArgument(format!(
                "the outcome of token {token} is no longer kept (more than {KEPT_FAILURES} failures since); the delivery callback reported it"
            ))),
            None => Ok(()),
        };
        (result, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_reports_success_failure_timeout_and_unknown() {
        let tokens = Arc::new(Tokens::default());
        let a = tokens.issue(1);
        let b = tokens.issue(1);
        let c = tokens.issue(1);
        tokens.complete(a, &Ok(()));
        tokens.complete(b, &Err(Error::Dropped("dropped".into())));
        assert_eq!(tokens.wait(a, Duration::ZERO), Ok(()));
        assert!(matches!(
            tokens.wait(b, Duration::ZERO),
            Err(Error::Dropped(_))
        ));
        assert!(matches!(
            tokens.wait(c, Duration::from_millis(10)),
            Err(Error::Timeout(_))
        ));
        assert!(matches!(
            tokens.wait(99, Duration::ZERO),
            Err(Error::InvalidArgument(_))
        ));
        let waiter = {
            let tokens = tokens.clone();
            std::thread::spawn(move || tokens.wait(c, Duration::from_secs(10)))
        };
        tokens.complete_all_ok(&[c], |_| {});
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(tokens.pending(), 0);
    }

    #[test]
    fn old_failures_are_forgotten_and_said_to_be() {
        let tokens = Tokens::default();
        let first = tokens.issue(1);
        tokens.complete(first, &Err(Error::Dropped("x".into())));
        for _ in 0..KEPT_FAILURES {
            let t = tokens.issue(1);
            tokens.complete(t, &Err(Error::Dropped("x".into())));
        }
        assert!(matches!(
            tokens.wait(first, Duration::ZERO),
            Err(Error::InvalidArgument(_))
        ));
        let last = tokens.issue(1);
        tokens.complete(last, &Ok(()));
        assert_eq!(tokens.wait(last, Duration::ZERO), Ok(()));
    }
}
