//! The library's logging: records go to one sink the embedding program installs (the C API's log
//! callback, Python's `logging`). The library itself never prints.

use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

/// Severity of a log record; higher is more verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    pub fn from_number(n: i32) -> Option<Level> {
        Some(match n {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            5 => Level::Trace,
            _ => return None,
        })
    }
}

pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

static SINK: Lazy<RwLock<Option<Sink>>> = Lazy::new(|| RwLock::new(None));
// Kept outside the lock so that a disabled level costs one atomic load on hot paths.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);

/// Installs (or with `None` removes) the sink and the most verbose level it receives.
pub fn set_sink(sink: Option<Sink>, max_level: Level) {
    let mut guard = SINK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let level = if sink.is_some() { max_level as u8 } else { 0 };
    *guard = sink;
    MAX_LEVEL.store(level, Ordering::Release);
}

pub fn enabled(level: Level) -> bool {
    (level as u8) <= MAX_LEVEL.load(Ordering::Acquire)
}

pub fn emit(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let sink = SINK
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    if let Some(sink) = sink {
        sink(level, message);
    }
}

/// `log!(Level::Info, "connected to {}", host)`: formats only when the level is enabled.
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::core::log::enabled($level) {
            $crate::core::log::emit($level, &format!($($arg)*));
        }
    };
}
pub(crate) use log;
