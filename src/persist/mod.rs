//! The persistent store behind store-and-forward: an append-only log of checksummed records
//! in bounded segment files, keyed by `u64`, with group-committed durability, recovery that
//! survives torn writes, compaction, a size bound and an exclusive directory lock. The session
//! integration keeps its messages in it; the format is in docs/persistence-format.md.
//!
//! Threads: a `Store` is shared (`&self` methods, one internal mutex for appends). In `Sync`
//! mode a put returns after `fdatasync`; callers arriving while one runs wait for the next, which
//! covers all of them (group commit). In `Batched` mode a background thread syncs every
//! interval.

mod index;
mod lock;
pub mod record;
mod recovery;
mod segment;

use crate::core::error::Error;
use index::{Index, Loc};
use record::{encode_record, record_len, Op, MAX_VALUE_LEN};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When a record is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `put`/`remove` return after `fdatasync`: survives power loss.
    Sync,
    /// `put`/`remove` return once `write(2)` handed the record to the kernel (survives the
    /// death of the process); a background thread syncs every `interval` (power loss loses at
    /// most that much).
    Batched { interval: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Bound on the bytes of the store's files; 0 = unbounded. A put that would pass it (less a
    /// reserve of two segments kept for tombstones and compaction) gets `StoreError::Full`.
    pub max_bytes: u64,
}

/// What `Store::open` found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Live records, ascending key order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Torn or damaged bytes found and dropped (a torn tail is cut off the file).
    pub discarded_bytes: u64,
    pub discarded_records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Another store (in this or another process) holds the directory.
    Locked(String),
    /// The put would pass `max_bytes`.
    Full(String),
    /// The file system is full (ENOSPC, EDQUOT); nothing was written.
    NoSpace(String),
    /// Any other failure of the file system (EIO, EACCES...), or the store stopped after an
    /// earlier `fdatasync` failed (it must be reopened).
    Io(String),
    /// The file system is read-only (EROFS): mounted so, or turned read-only by the kernel
    /// after an error (ext4's errors=remount-ro).
    ReadOnly(String),
    /// The store cannot be read beyond recovery (unknown format version, an older segment
    /// damaged where its records cannot be located).
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Locked(m)
            | StoreError::Io(m)
            | StoreError::ReadOnly(m)
            | StoreError::Corrupt(m) => f.write_str(m),
            StoreError::Full(m) => write!(f, "store full: {m}"),
            StoreError::NoSpace(m) => write!(f, "no space left on the store's disk: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// ENOSPC shares `EQ1_STATUS_STORE_FULL` with the size bound: both mean "no room for this
/// message now; room comes back when deliveries complete or space is freed"; the detail says
/// which one it was.
impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        let text = error.to_string();
        match error {
            StoreError::Locked(_) => Error::StoreLocked(text),
            StoreError::Full(_) | StoreError::NoSpace(_) => Error::StoreFull(text),
            StoreError::Io(_) => Error::StoreIo(text),
            StoreError::ReadOnly(_) => Error::StoreReadOnly(text),
            StoreError::Corrupt(_) => Error::StoreCorrupt(text),
        }
    }
}

/// Segment size when nothing bounds the store.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 20;
const MIN_SEGMENT_BYTES: u64 = 4096;

/// An open store. Dropping it syncs what is pending and releases the directory lock.
pub struct Store {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    _lock: lock::DirLock,
}

struct Shared {
    dir: PathBuf,
    dir_handle: File,
    options: StoreOptions,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Signalled when a sync ends (group commit followers) and on shutdown (the flusher).
    changed: Condvar,
}

struct State {
    index: Index,
    head: Head,
    /// Record bytes appended since open, and how many of them are known durable.
    written: u64,
    synced: u64,
    syncing: bool,
    /// Set when an `fdatasync` (or cutting off a failed append) failed: what was written since
    /// is in an unknown state, so the store refuses work until it is reopened (recovery then
    /// reads what is really there). Later calls get the same kind of error.
    failed: Option<StoreError>,
    stopping: bool,
    scratch: Vec<u8>,
}

struct Head {
    sequence: u64,
    file: Arc<File>,
    size: u64,
}

impl Store {
    /// Opens (creating if missing) the store in `dir`, takes its lock and recovers it.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(Store, Recovered), StoreError> {
        let segment_bytes = match options.max_bytes {
            0 => DEFAULT_SEGMENT_BYTES,
            max => (max / 8).clamp(MIN_SEGMENT_BYTES, DEFAULT_SEGMENT_BYTES),
        };
        Store::open_with_segment_bytes(dir, options, segment_bytes)
    }

    /// `open` with a chosen segment size (tests and benchmarks use small ones).
    pub fn open_with_segment_bytes(
        dir: &Path,
        options: StoreOptions,
        segment_bytes: u64,
    ) -> Result<(Store, Recovered), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| segment::classify(e, "creating", dir))?;
        let lock = lock::DirLock::acquire(dir)?;
        let dir_handle =
            File::open(dir).map_err(|e| segment::classify(e, "opening the directory", dir))?;
        let scan = recovery::scan(dir)?;
        let mut index = scan.index;
        if let Some(unfinished) = scan.unfinished {
            segment::delete(dir, &dir_handle, unfinished)?;
        }
        let head = match scan.head {
            Some((sequence, good_len)) => {
                let file = segment::open_for_append(dir, sequence)?;
                let path = segment::path_of(dir, sequence);
                let on_disk = file
                    .metadata()
                    .map_err(|e| segment::classify(e, "reading", &path))?
                    .len();
                if on_disk != good_len {
                    file.set_len(good_len)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| segment::classify(e, "cutting the torn tail of", &path))?;
                }
                Head {
                    sequence,
                    file: Arc::new(file),
                    size: good_len,
                }
            }
            None => {
                let sequence = scan.last_sequence + 1;
                let file = segment::create(dir, &dir_handle, sequence)?;
                index.add_segment(sequence, segment::EMPTY_LEN);
                Head {
                    sequence,
                    file: Arc::new(file),
                    size: segment::EMPTY_LEN,
                }
            }
        };
        let recovered = Recovered {
            records: scan.records.into_iter().collect(),
            discarded_bytes: scan.discarded_bytes,
            discarded_records: scan.discarded_records,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            dir_handle,
            options,
            segment_bytes: segment_bytes.max(MIN_SEGMENT_BYTES),
            state: Mutex::new(State {
                index,
                head,
                written: 0,
                synced: 0,
                syncing: false,
                failed: None,
                stopping: false,
                scratch: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let flusher = match options.durability {
            Durability::Sync => None,
            Durability::Batched { interval } => {
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("eq1-store-flush".into())
                    .spawn(move || shared.flush_every(interval));
                Some(spawned.map_err(|e| StoreError::Io(format!("starting the flusher: {e}")))?)
            }
        };
        Ok((
            Store {
                shared,
                flusher,
                _lock: lock,
            },
            recovered,
        ))
    }

    /// Inserts or replaces the record of `key`. At the size bound it first compacts the
    /// segments whose copy frees at least as much as it writes (half garbage or more), and is
    /// refused (`Full`) if that does not make room.
    pub fn put(&self, key: u64, value: &[u8]) -> Result<(), StoreError> {
        self.put_at_bound(key, value, self.shared.segment_bytes / 2)
    }

    /// `put` for a caller that would rather drop old records than pay for compaction (the
    /// drop-oldest policy): at the size bound it only deletes dead segments and copies nearly
    /// dead ones (at least seven eighths garbage), so its cost stays a write or two.
    pub fn put_cheaply(&self, key: u64, value: &[u8]) -> Result<(), StoreError> {
        let segment_bytes = self.shared.segment_bytes;
        self.put_at_bound(key, value, segment_bytes - segment_bytes / 8)
    }

    /// `put`; at the bound, compaction copies only segments that reclaim at least `worth`.
    fn put_at_bound(&self, key: u64, value: &[u8], worth: u64) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::Full(format!(
                "a record of {} bytes is larger than the store takes ({MAX_VALUE_LEN})",
                value.len()
            )));
        }
        let position = {
            let mut state = self.shared.lock();
            state.usable()?;
            let len = record_len(value.len());
            if !self.shared.fits(&state, len) {
                self.shared.compact(&mut state, Some((len, worth)));
                state.usable()?;
                if !self.shared.fits(&state, len) {
                    return Err(StoreError::Full(format!(
                        "{} bytes used of {} (a reserve of {} is kept for removals)",
                        state.index.bytes_used(),
                        self.shared.options.max_bytes,
                        self.shared.reserve()
                    )));
                }
            }
            self.shared
                .append_and_compact(&mut state, key, Op::Put(value))?
        };
        self.shared.after_write(position)
    }

    /// Removes the record of `key` (a tombstone; nothing is written for a key not stored).
    /// Never refused for `max_bytes`: removals are what frees space.
    pub fn remove(&self, key: u64) -> Result<(), StoreError> {
        let position = {
            let mut state = self.shared.lock();
            state.usable()?;
            if state.index.live(key).is_none() {
                return Ok(());
            }
            self.shared
                .append_and_compact(&mut state, key, Op::Remove)?
        };
        self.shared.after_write(position)
    }

    /// Makes everything written so far durable (`fdatasync`).
    pub fn flush(&self) -> Result<(), StoreError> {
        let position = self.shared.lock().written;
        self.shared.sync_to(position)
    }

    /// Bytes of the store's segment files, what `max_bytes` bounds.
    pub fn bytes_used(&self) -> u64 {
        self.shared.lock().index.bytes_used()
    }

    pub fn live_count(&self) -> usize {
        self.shared.lock().index.live_count()
    }

    /// Number of segment files (for tests of compaction).
    pub fn segment_count(&self) -> usize {
        self.shared.lock().index.segment_numbers().len()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        let _ = self.flush();
    }
}

impl State {
    fn usable(&self) -> Result<(), StoreError> {
        let Some(failure) = &self.failed else {
            return Ok(());
        };
        let text = format!("the store stopped after its disk failed ({failure}); reopen it");
        Err(match failure {
            StoreError::ReadOnly(_) => StoreError::ReadOnly(text),
            _ => StoreError::Io(text),
        })
    }

    /// Stops the store after a failure that leaves the log in an unknown state.
    fn fail(&mut self, error: StoreError) -> StoreError {
        crate::core::log::log!(
            crate::core::log::Level::Error,
            "the persistent store stopped: {error} (publish now fails with this status until \
             the client is made again on a working disk)"
        );
        self.failed = Some(error.clone());
        error
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as any crash would;
        // keep going rather than poison every later call.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reserve(&self) -> u64 {
        2 * self.segment_bytes
    }

    fn fits(&self, state: &State, len: u64) -> bool {
        let max = self.options.max_bytes;
        max == 0 || state.index.bytes_used() + len + segment::EMPTY_LEN + self.reserve() <= max
    }

    /// Appends one record (rolling over to a new segment first when the head is full), then
    /// compacts if a segment was sealed. Returns the log position to wait for.
    fn append_and_compact(
        &self,
        state: &mut State,
        key: u64,
        op: Op<'_>,
    ) -> Result<u64, StoreError> {
        let sealed = self.append(state, key, op)?;
        if sealed {
            self.compact(state, None);
        }
        Ok(state.written)
    }

    /// Appends one record with one `write(2)`; a failed write is cut off again so the log
    /// stays a sequence of whole records. Returns whether a segment was sealed first.
    fn append(&self, state: &mut State, key: u64, op: Op<'_>) -> Result<bool, StoreError> {
        let value_len = match op {
            Op::Put(value) => value.len(),
            Op::Remove => 0,
        };
        let len = record_len(value_len);
        let mut sealed = false;
        if state.head.size > segment::EMPTY_LEN && state.head.size + len > self.segment_bytes {
            self.roll_over(state)?;
            sealed = true;
        }
        let mut frame = std::mem::take(&mut state.scratch);
        frame.clear();
        encode_record(&mut frame, key, op);
        let written = (&*state.head.file).write_all(&frame);
        state.scratch = frame;
        if let Err(error) = written {
            let path = segment::path_of(&self.dir, state.head.sequence);
            let grew = state
                .head
                .file
                .metadata()
                .map_or(true, |m| m.len() != state.head.size);
            if grew {
                if let Err(cut) = state.head.file.set_len(state.head.size) {
                    state.fail(segment::classify(
                        cut,
                        "cutting off a failed append to",
                        &path,
                    ));
                }
            }
            return Err(segment::classify(error, "appending to", &path));
        }
        let loc = Loc {
            segment: state.head.sequence,
            offset: state.head.size,
            len,
        };
        state.head.size += len;
        state.written += len;
        state.index.grow(loc.segment, len);
        match op {
            Op::Put(_) => state.index.apply_put(key, loc),
            Op::Remove => state.index.apply_remove(key, loc.segment),
        }
        Ok(sealed)
    }

    /// Seals the head (durable before the next segment exists, so damage in a sealed segment
    /// is never a torn write) and starts the next segment.
    fn roll_over(&self, state: &mut State) -> Result<(), StoreError> {
        let path = segment::path_of(&self.dir, state.head.sequence);
        if let Err(error) = state.head.file.sync_data() {
            let error = state.fail(sync_failure(error, &path));
            self.changed.notify_all();
            return Err(error);
        }
        state.synced = state.written;
        self.changed.notify_all();
        let sequence = state.head.sequence + 1;
        let file = segment::create(&self.dir, &self.dir_handle, sequence)?;
        state.index.add_segment(sequence, segment::EMPTY_LEN);
        state.head = Head {
            sequence,
            file: Arc::new(file),
            size: segment::EMPTY_LEN,
        };
        Ok(())
    }

    /// Reclaims space: deletes sealed segments nothing needs, then, when the needed data is a
    /// small fraction of the files (or `room` bytes are wanted for a put), copies the live
    /// records of the emptiest sealed segments to the head and deletes those. Failures leave
    /// the log consistent (at worst a copy is written twice) and are not the caller's: the
    /// caller's own append reports the disk's state.
    ///
    /// For a put at the size bound (`room`: its length, and what a copy must reclaim to be
    /// worth it) only segments with at least that much garbage are copied, so that a store
    /// kept at its bound pays an amortized constant per put, not a segment copy and two syncs
    /// each time.
    fn compact(&self, state: &mut State, room: Option<(u64, u64)>) {
        let _ = self.delete_dead(state);
        let rounds = state.index.segment_numbers().len();
        for _ in 0..rounds {
            if let Some((len, _)) = room {
                if self.fits(state, len) {
                    return;
                }
            } else {
                let used = state.index.bytes_used();
                let needed = state.index.needed_bytes();
                if used <= 2 * needed + 2 * self.segment_bytes {
                    return;
                }
            }
            let worth = room.map_or(1, |(_, worth)| worth);
            let Some(victim) = self.emptiest_sealed(state, worth) else {
                return;
            };
            if self.copy_forward(state, victim).is_err() || self.delete_dead(state).is_err() {
                return;
            }
        }
    }

    /// The sealed segment with the most bytes compaction would reclaim, if it reclaims at
    /// least `worth`.
    fn emptiest_sealed(&self, state: &State, worth: u64) -> Option<u64> {
        let per_tomb = record_len(0);
        state
            .index
            .segment_numbers()
            .into_iter()
            .filter(|&s| s != state.head.sequence)
            .filter_map(|s| {
                let stats = state.index.segment(s)?;
                let keep = stats.live_bytes + stats.pins * per_tomb;
                let reclaim = stats.size.saturating_sub(keep + segment::EMPTY_LEN);
                (reclaim >= worth).then_some((reclaim, s))
            })
            .max()
            .map(|(_, s)| s)
    }

    /// Copies what `victim` still holds (live puts, needed tombstones) to the head and makes
    /// the copies durable, after which `victim` is dead.
    fn copy_forward(&self, state: &mut State, victim: u64) -> Result<(), StoreError> {
        let path = segment::path_of(&self.dir, victim);
        let bytes = std::fs::read(&path).map_err(|e| segment::classify(e, "reading", &path))?;
        for (key, loc) in state.index.live_in(victim) {
            let start = loc.offset as usize + record::FRAME_HEAD_LEN + record::BODY_HEAD_LEN;
            let end = (loc.offset + loc.len) as usize;
            let value = bytes.get(start..end).ok_or_else(|| {
                StoreError::Corrupt(format!("{}: shorter than its index", path.display()))
            })?;
            self.append(state, key, Op::Put(value))?;
        }
        for key in state.index.pinned_in(victim) {
            self.append(state, key, Op::Remove)?;
        }
        let head = segment::path_of(&self.dir, state.head.sequence);
        if let Err(error) = state.head.file.sync_data() {
            let error = state.fail(sync_failure(error, &head));
            self.changed.notify_all();
            return Err(error);
        }
        state.synced = state.written;
        self.changed.notify_all();
        Ok(())
    }

    /// Deletes every sealed segment that nothing needs, in rounds: a deletion can free a
    /// tombstone's segment, which is then deleted only after the first deletion is durable.
    fn delete_dead(&self, state: &mut State) -> Result<(), StoreError> {
        loop {
            let dead: Vec<u64> = state
                .index
                .segment_numbers()
                .into_iter()
                .filter(|&s| s != state.head.sequence)
                .filter(|&s| state.index.segment(s).is_some_and(|st| st.is_dead()))
                .collect();
            if dead.is_empty() {
                return Ok(());
            }
            for sequence in dead {
                segment::delete(&self.dir, &self.dir_handle, sequence)?;
                state.index.forget_segment(sequence);
            }
        }
    }

    fn after_write(&self, position: u64) -> Result<(), StoreError> {
        match self.options.durability {
            Durability::Sync => self.sync_to(position),
            Durability::Batched { .. } => Ok(()),
        }
    }

    /// Returns once the log is durable up to `position`. The first caller to find no sync
    /// running becomes the leader and syncs everything written so far, outside the lock;
    /// callers arriving meanwhile wait and are covered by it or by the next leader.
    fn sync_to(&self, position: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            state.usable()?;
            if state.synced >= position {
                return Ok(());
            }
            if state.syncing {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state = self.lead_sync(state);
        }
    }

    /// One group commit: syncs the head up to what is written now, with the lock released.
    fn lead_sync<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.syncing = true;
        let target = state.written;
        let file = Arc::clone(&state.head.file);
        let sequence = state.head.sequence;
        drop(state);
        let result = file.sync_data();
        let mut state = self.lock();
        state.syncing = false;
        match result {
            Ok(()) => state.synced = state.synced.max(target),
            Err(error) => {
                let path = segment::path_of(&self.dir, sequence);
                state.fail(sync_failure(error, &path));
            }
        }
        self.changed.notify_all();
        state
    }

    /// The `Batched` flusher: syncs what is pending every `interval` until the store closes.
    fn flush_every(&self, interval: Duration) {
        let mut due = Instant::now() + interval;
        let mut state = self.lock();
        loop {
            if state.stopping {
                return;
            }
            let now = Instant::now();
            if now < due {
                state = self
                    .changed
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                continue;
            }
            due = now + interval;
            if state.failed.is_none() && !state.syncing && state.written > state.synced {
                state = self.lead_sync(state);
            }
        }
    }
}

/// A failed `fdatasync`: the kernel may have dropped the pages it could not write, so the
/// store cannot tell what is on disk. Read-only stays read-only; anything else (EIO, and also
/// ENOSPC, which freeing space does not undo here) is I/O.
fn sync_failure(error: std::io::Error, path: &Path) -> StoreError {
    match segment::classify(error, "fdatasync", path) {
        StoreError::ReadOnly(text) => StoreError::ReadOnly(text),
        StoreError::NoSpace(text) | StoreError::Io(text) => StoreError::Io(text),
        other => other,
    }
}
