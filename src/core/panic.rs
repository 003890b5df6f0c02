//! Panics of the library's own code go to the library log (`Level::Error`), never to stderr: the
//! library must not print. Panics elsewhere in the program keep the hook the program had.

use crate::core::log::{self, Level};
use std::cell::Cell;
use std::sync::Once;

/// Every thread the library starts has a name beginning with this.
pub const LIBRARY_THREAD_PREFIX: &str = "eq1-";

thread_local! {
    // How many library calls (from `run_as_library`) are running on this thread: C callbacks
    // may call back into the library, so calls nest.
    static LIBRARY_CALLS: Cell<u32> = const { Cell::new(0) };
}

/// Installs the library's panic hook, once per process; the hook in place before it (the
/// default one, or the host program's own) still handles every panic that is not the library's.
pub fn install_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_library_panic() {
                return previous(info);
            }
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(a panic without a message)");
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let thread = std::thread::current();
            log::emit(
                Level::Error,
                &format!(
                    "internal error: panic in thread '{}'{place}: {text}",
                    thread.name().unwrap_or("unnamed")
                ),
            );
        }));
    });
}

/// Runs `body` as a library call: a panic inside it is reported to the library log.
pub fn run_as_library<R>(body: impl FnOnce() -> R) -> R {
    struct Running;
    impl Drop for Running {
        // Also runs while a panic unwinds, after the hook has seen the panic.
        fn drop(&mut self) {
            let _ = LIBRARY_CALLS.try_with(|calls| calls.set(calls.get().saturating_sub(1)));
        }
    }
    install_hook();
    let _ = LIBRARY_CALLS.try_with(|calls| calls.set(calls.get() + 1));
    let _running = Running;
    body()
}

fn is_library_panic() -> bool {
    LIBRARY_CALLS.try_with(Cell::get).unwrap_or(0) > 0
        || std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(LIBRARY_THREAD_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_panic_inside_a_library_call_goes_to_the_log() {
        let records = Arc::new(Mutex::new(Vec::<(Level, String)>::new()));
        let sink = records.clone();
        log::set_sink(
            Some(Arc::new(move |level, message: &str| {
                if let Ok(mut records) = sink.lock() {
                    records.push((level, message.to_string()));
                }
            })),
            Level::Error,
        );
        let caught = std::panic::catch_unwind(|| run_as_library(|| panic!("boom {}", 42)));
        // Not the library's: handed to the previous (default) hook, not to the log.
        let host_thread = std::thread::spawn(|| panic!("host boom")).join();
        log::set_sink(None, Level::Error);
        assert!(caught.is_err() && host_thread.is_err());
        assert!(!records
            .lock()
            .map(|r| r.iter().any(|(_, m)| m.contains("host boom")))
            .unwrap_or(true));
        let records = records.lock().map(|r| r.clone()).unwrap_or_default();
        let panics: Vec<_> = records
            .iter()
            .filter(|(_, m)| m.contains("boom 42"))
            .collect();
        assert_eq!(panics.len(), 1, "{records:?}");
        assert_eq!(panics[0].0, Level::Error);
        assert!(panics[0].1.contains("panic.rs"), "{}", panics[0].1);
        assert_eq!(
            LIBRARY_CALLS.with(Cell::get),
            0,
            "the count unwinds with the panic"
        );
    }

    #[test]
    fn library_threads_and_calls_are_told_apart_from_the_host() {
        assert!(!is_library_panic());
        assert!(run_as_library(|| run_as_library(is_library_panic)));
        assert!(!is_library_panic());
        let on_library_thread = std::thread::Builder::new()
            .name(format!("{LIBRARY_THREAD_PREFIX}test"))
            .spawn(is_library_panic)
            .map(|t| t.join().unwrap_or(false))
            .unwrap_or(false);
        assert!(on_library_thread);
    }
}
