//! Store and forward: what the session keeps on disk so that a publish the caller was told is
//! accepted survives the death of the process. The session and the handle speak to a
//! `DurableLog` (a key/value log: `crate::persist::Store` on disk, `MemoryLog` in unit
//! tests) through `Persistence`, which owns the key layout and the record formats.
//!
//! Keys (u64):
//! - `META_KEY` (0): the format version and the client id the store belongs to.
//! - a token number (1 .. 2^62): one accepted message (QoS 1/2, and QoS 0 when asked) from
//!   the caller's publish until its flow ends. Token numbers are never reused across runs:
//!   a restored client issues new tokens above the highest restored one, so a restored
//!   message keeps its original token.
//! - `STATE_BIT | token`: the packet id a QoS 2 message was sent with and its stage (PUBREL
//!   sent or not), written before the PUBLISH (or PUBREL) leaves. QoS 1 has none: a QoS 1
//!   message restored without its id goes out again as a new publish, which "at least once"
//!   allows, and keeps the hot path at one record per message.
//! - `INBOUND_BIT | packet id`: a received QoS 2 message whose PUBREC is (about to be) sent
//!   and whose PUBREL has not come: a retransmission after a restart is not delivered again.

use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::tokens::Token;
use crate::mqtt::properties::PublishProperties;
use crate::mqtt::wire::OutPublish;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a persistent store needs to offer the session: insert-or-replace, remove, flush.
/// `put` returns once the record is as durable as the store's durability promises (in the
/// batched mode: written to the kernel; in the sync mode: on disk).
pub trait DurableLog: Send + Sync {
    fn put(&self, key: u64, value: &[u8]) -> std::result::Result<(), LogError>;
    /// `put` for the drop-oldest policy: when full, refuses rather than compacts at length
    /// (the caller drops its oldest message and tries again).
    fn put_cheaply(&self, key: u64, value: &[u8]) -> std::result::Result<(), LogError> {
        self.put(key, value)
    }
    fn remove(&self, key: u64) -> Result<()>;
    fn flush(&self) -> Result<()>;
}

/// A failed put: `full` when the store reached its size limit (the full-queue policy
/// applies), with the error the caller hears.
#[derive(Debug, Clone)]
pub struct LogError {
    pub full: bool,
    pub error: Error,
}

impl LogError {
    fn from_store(e: crate::persist::StoreError) -> LogError {
        LogError {
            full: matches!(e, crate::persist::StoreError::Full(_)),
            error: e.into(),
        }
    }
}

impl From<Error> for LogError {
    fn from(error: Error) -> LogError {
        LogError { full: false, error }
    }
}

impl From<LogError> for Error {
    fn from(e: LogError) -> Error {
        e.error
    }
}

/// How durable an accepted publish is when publish returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk (fdatasync, group-committed): survives power loss.
    Sync,
    /// Written to the kernel (survives the process being killed); on disk within `interval`
    /// (power loss loses at most that interval).
    Batched { interval: Duration },
}

/// `Options::persistence`: where and how the session is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistenceOptions {
    pub directory: PathBuf,
    pub durability: Durability,
    /// Bytes the store may take on disk (0: unbounded).
    pub max_bytes: u64,
    /// Also keep QoS 0 messages while they wait in the outbox.
    pub qos0: bool,
}

/// In the sync mode, how often the store syncs what needs no sync of its own (removals).
const SYNC_MODE_BACKGROUND_INTERVAL: Duration = Duration::from_secs(1);

/// The default interval of the batched mode.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) const META_KEY: u64 = 0;
pub(crate) const STATE_BIT: u64 = 1 << 62;
pub(crate) const INBOUND_BIT: u64 = 1 << 63;
/// Tokens stay below this, so that they never reach the flag bits.
const MAX_TOKEN: u64 = STATE_BIT - 1;

const FORMAT: u8 = 1;

/// Where a restored QoS 2 message stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoredStage {
    /// Sent with this id; PUBREC not yet received.
    AwaitAck(u16),
    /// PUBREL sent with this id; PUBCOMP not yet received.
    AwaitComp(u16),
}

/// A message found in the store at start.
#[derive(Debug, Clone)]
pub struct RestoredMessage {
    pub token: Token,
    pub message: OutPublish,
    /// When the first run accepted it (wall clock), for its Message Expiry Interval.
    pub accepted: SystemTime,
    /// Packet id and stage of a QoS 2 message that was sent; `None`: not sent yet (or QoS
    /// 0/1, which go out again as new publishes).
    pub stage: Option<RestoredStage>,
}

/// What `Persistence::open` found.
#[derive(Debug, Default)]
pub struct Restored {
    /// Ascending token (acceptance order).
    pub messages: Vec<RestoredMessage>,
    /// Received QoS 2 ids whose PUBREL had not come.
    pub inbound_qos2: Vec<u16>,
    /// Bytes and records the store could not use (a torn end, a bad checksum).
    pub discarded_bytes: u64,
    pub discarded_records: u64,
}

/// What the application can ask about a restored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredInfo {
    pub token: Token,
    pub topic: String,
    pub qos: u8,
}

/// A policy for a full store, matching the outbox's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    RejectNew,
    DropOldest,
}

/// The session's view of its store: shared by the handle (records accepted publishes in the
/// caller's thread) and the driver (packet ids, stages, removals).
pub struct Persistence {
    log: RwLock<Option<Box<dyn DurableLog>>>,
    /// The sync mode: an accepted publish is flushed (group-committed) before publish returns,
    /// and what the session records is flushed before the packets it guards are written.
    /// The store itself runs batched, so that the session's removals never wait for a sync.
    sync: bool,
    qos0: bool,
    policy: FullPolicy,
    /// With the drop-oldest policy: tokens of stored messages still in the outbox (the ones
    /// a full store may drop), and the ones dropped that the session still holds.
    drop_index: Option<Mutex<DropIndex>>,
    /// Removals of finished messages, done by a thread of their own (`start_janitor`) so
    /// that the driver, which finishes every flow, never waits on the store for them. Their
    /// keys (token numbers) are never reused, so a late removal cannot hit a newer record.
    /// Without the thread (unit tests) removals are done at once.
    janitor: std::sync::OnceLock<Arc<Janitor>>,
}

#[derive(Default)]
struct Janitor {
    /// Keys to remove, and whether the thread should stop.
    queue: Mutex<(Vec<u64>, bool)>,
    wake: std::sync::Condvar,
}

/// How long the janitor lets removals gather before it writes them.
const JANITOR_PAUSE: Duration = Duration::from_millis(2);

#[derive(Default)]
struct DropIndex {
    queued: BTreeSet<Token>,
    dropped: HashSet<Token>,
}

impl Persistence {
    /// Wraps an opened log and reads what it held. `client_id` must be the one the store
    /// belongs to (a fresh store is given it).
    pub fn attach(
        log: Box<dyn DurableLog>,
        records: Vec<(u64, Vec<u8>)>,
        client_id: &str,
        qos0: bool,
        policy: FullPolicy,
    ) -> Result<(Persistence, Restored)> {
        Persistence::attach_with(log, records, client_id, qos0, policy, false)
    }

    /// `attach`; with `sync`, accepted publishes are flushed before `accept` returns and
    /// `barrier` flushes.
    pub fn attach_with(
        log: Box<dyn DurableLog>,
        records: Vec<(u64, Vec<u8>)>,
        client_id: &str,
        qos0: bool,
        policy: FullPolicy,
        sync: bool,
    ) -> Result<(Persistence, Restored)> {
        let mut restored = Restored::default();
        let mut messages: BTreeMap<Token, RestoredMessage> = BTreeMap::new();
        let mut states: BTreeMap<Token, RestoredStage> = BTreeMap::new();
        let mut meta = None;
        for (key, value) in records {
            if key == META_KEY {
                meta = Some(decode_meta(&value)?);
            } else if key & INBOUND_BIT != 0 {
                restored.inbound_qos2.push((key & 0xFFFF) as u16);
            } else if key & STATE_BIT != 0 {
                match decode_state(&value) {
                    Some(stage) => {
                        states.insert(key & !STATE_BIT, stage);
                    }
                    None => discard(&mut restored, key, value.len()),
                }
            } else {
                match decode_message(&value) {
                    Some((message, accepted)) => {
                        messages.insert(
                            key,
                            RestoredMessage {
                                token: key,
                                message,
                                accepted,
                                stage: None,
                            },
                        );
                    }
                    None => discard(&mut restored, key, value.len()),
                }
            }
        }
        match meta {
            Some(owner) if owner != client_id => {
                return Err(Error::StoreClientMismatch(format!(
                    "the store belongs to client id '{owner}'; this client is '{client_id}' (use another directory, or the same client id)"
                )))
            }
            Some(_) => {}
            None => log.put(META_KEY, &encode_meta(client_id)).map_err(Error::from)?,
        }
        for (token, stage) in &states {
            match messages.get_mut(token) {
                Some(m) if m.message.qos == 2 => m.stage = Some(*stage),
                // A state whose message is gone: the flow ended between the two removals.
                _ => log.remove(STATE_BIT | token)?,
            }
        }
        restored.messages = messages.into_values().collect();
        let drop_index = (policy == FullPolicy::DropOldest).then(|| {
            Mutex::new(DropIndex {
                queued: restored
                    .messages
                    .iter()
                    .filter(|m| m.stage.is_none())
                    .map(|m| m.token)
                    .collect(),
                dropped: HashSet::new(),
            })
        });
        Ok((
            Persistence {
                log: RwLock::new(Some(log)),
                sync,
                qos0,
                policy,
                drop_index,
                janitor: std::sync::OnceLock::new(),
            },
            restored,
        ))
    }

    /// Starts the thread that removes finished messages from the store.
    fn start_janitor(self: &Arc<Self>) -> Result<()> {
        let janitor = Arc::new(Janitor::default());
        let weak = Arc::downgrade(self);
        let shared = janitor.clone();
        std::thread::Builder::new()
            .name("eq1-store-janitor".into())
            .spawn(move || loop {
                let keys = {
                    let mut queue = lock(&shared.queue);
                    while queue.0.is_empty() && !queue.1 {
                        queue = shared.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
                    }
                    if queue.1 {
                        return;
                    }
                    std::mem::take(&mut queue.0)
                };
                let Some(persistence) = weak.upgrade() else {
                    return;
                };
                persistence.remove_now(&keys);
                drop(persistence);
                std::thread::sleep(JANITOR_PAUSE);
            })
            .map_err(|e| {
                Error::Internal(format!("cannot start the store's janitor thread: {e}"))
            })?;
        let _ = self.janitor.set(janitor);
        Ok(())
    }

    fn remove_now(&self, keys: &[u64]) {
        let result = self.with_log(|log| keys.iter().try_for_each(|key| log.remove(*key)));
        if let Err(e) = result {
            log!(
                Level::Warn,
                "cannot remove finished messages from the store (they may be sent again after a restart): {e}"
            );
        }
    }

    fn with_log<T>(&self, f: impl FnOnce(&dyn DurableLog) -> Result<T>) -> Result<T> {
        let guard = self.log.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_deref() {
            Some(log) => f(log),
            None => Err(Error::InvalidState(
                "the client's store is closed (the client is being freed)".into(),
            )),
        }
    }

    /// Whether messages of this QoS are kept.
    pub fn keeps(&self, qos: u8) -> bool {
        qos > 0 || self.qos0
    }

    /// Records an accepted publish, in the caller's thread, before publish returns. A full
    /// store drops its oldest queued message with the drop-oldest policy (the session
    /// reports it `Dropped`), or refuses this one.
    pub fn accept(&self, token: Token, message: &OutPublish, accepted: SystemTime) -> Result<()> {
        if !self.keeps(message.qos) {
            return Ok(());
        }
        if token > MAX_TOKEN {
            return Err(Error::Internal("token numbers are exhausted".into()));
        }
        let record = encode_message(message, accepted);
        if let Some(index) = &self.drop_index {
            lock(index).queued.insert(token);
        }
        // Drop-oldest: cheap puts, each refusal dropping the oldest queued message (a log
        // frees room a segment at a time: a refused put may cost a few drops, each reported);
        // once nothing is left to drop, one put that may compact before it is refused.
        let mut cheaply = self.policy == FullPolicy::DropOldest;
        loop {
            let put = |log: &dyn DurableLog| match cheaply {
                true => Ok(log.put_cheaply(token, &record)),
                false => Ok(log.put(token, &record)),
            };
            match self.with_log(put) {
                Ok(Ok(())) if self.sync => {
                    return self.flush().inspect_err(|_| {
                        self.forget_queued(token);
                        // Not accepted: it must not be sent, nor restored later.
                        let _ = self.with_log(|log| log.remove(token));
                    });
                }
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if e.full && cheaply => {
                    match self.drop_oldest_except(token) {
                        Ok(true) => {}
                        Ok(false) => cheaply = false,
                        Err(e) => {
                            // Not accepted: it must leave the drop index with the error.
                            self.forget_queued(token);
                            return Err(e);
                        }
                    }
                }
                Ok(Err(e)) => {
                    self.forget_queued(token);
                    return Err(e.error);
                }
                Err(e) => {
                    self.forget_queued(token);
                    return Err(e);
                }
            }
        }
    }

    /// Drop-oldest: removes the oldest stored message still queued (not `keep`). Returns
    /// whether one was dropped.
    fn drop_oldest_except(&self, keep: Token) -> Result<bool> {
        let Some(index) = &self.drop_index else {
            return Ok(false);
        };
        let victim = {
            let mut index = lock(index);
            let victim = index.queued.iter().copied().find(|t| *t != keep);
            if let Some(v) = victim {
                index.queued.remove(&v);
                index.dropped.insert(v);
            }
            victim
        };
        match victim {
            Some(v) => {
                log!(
                    Level::Warn,
                    "the store is full: dropping the oldest queued message (token {v})"
                );
                self.with_log(|log| log.remove(v))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn forget_queued(&self, token: Token) {
        if let Some(index) = &self.drop_index {
            lock(index).queued.remove(&token);
        }
    }

    /// The session takes a message out of the outbox: true when a full store dropped it
    /// meanwhile (report it `Dropped`, do not send it).
    pub fn leaves_outbox(&self, token: Token) -> bool {
        let Some(index) = &self.drop_index else {
            return false;
        };
        let mut index = lock(index);
        index.queued.remove(&token);
        index.dropped.remove(&token)
    }

    /// Whether a full store dropped this queued message; if so it is forgotten here (the
    /// session reports it `Dropped`). Unlike `leaves_outbox`, a message not dropped stays
    /// queued.
    pub fn was_dropped(&self, token: Token) -> bool {
        let Some(index) = &self.drop_index else {
            return false;
        };
        let mut index = lock(index);
        let dropped = index.dropped.remove(&token);
        if dropped {
            index.queued.remove(&token);
        }
        dropped
    }

    /// A QoS 2 message gets its packet id (before its PUBLISH is written), or reaches PUBREL.
    pub fn record_stage(&self, token: Token, stage: RestoredStage) -> Result<()> {
        self.with_log(|log| Ok(log.put(STATE_BIT | token, &encode_state(stage))?))
    }

    /// A QoS 2 message goes back to the outbox (the broker lost the session): its old id
    /// no longer counts.
    pub fn forget_state(&self, token: Token) {
        if let Err(e) = self.with_log(|log| log.remove(STATE_BIT | token)) {
            log!(
                Level::Warn,
                "cannot remove the packet id of message {token} from the store: {e}"
            );
        }
    }

    /// The flow of a stored message ended (completed, refused, expired, dropped): its
    /// records go. `had_state`: a QoS 2 stage record was written for it.
    pub fn forget(&self, token: Token, qos: u8, had_state: bool) {
        if !self.keeps(qos) {
            return;
        }
        self.forget_queued(token);
        // The message first: a state left alone is dropped at the next start.
        let keys = [token, STATE_BIT | token];
        let keys = if had_state { &keys[..] } else { &keys[..1] };
        match self.janitor.get() {
            Some(janitor) => {
                let mut queue = lock(&janitor.queue);
                let was_empty = queue.0.is_empty();
                queue.0.extend_from_slice(keys);
                if was_empty {
                    janitor.wake.notify_one();
                }
            }
            None => self.remove_now(keys),
        }
    }

    /// A received QoS 2 message is about to be acknowledged with PUBREC.
    pub fn record_inbound(&self, pkid: u16) -> Result<()> {
        self.with_log(|log| Ok(log.put(INBOUND_BIT | pkid as u64, &[])?))
    }

    /// The broker's PUBREL for a received QoS 2 message came (or its session is gone).
    pub fn forget_inbound(&self, pkid: u16) {
        if let Err(e) = self.with_log(|log| log.remove(INBOUND_BIT | pkid as u64)) {
            log!(
                Level::Warn,
                "cannot remove received packet id {pkid} from the store: {e}"
            );
        }
    }

    pub fn flush(&self) -> Result<()> {
        self.with_log(|log| log.flush())
    }

    /// In the sync mode, before packets that records guard leave (a QoS 2 packet id before
    /// its PUBLISH, a received id before its PUBREC): those records reach the disk, one
    /// group commit for the whole write. Written to the kernel is enough otherwise.
    pub fn barrier(&self) {
        if self.sync {
            if let Err(e) = self.flush() {
                log!(Level::Warn, "syncing the store before a write failed: {e}");
            }
        }
    }

    /// Flushes and closes the store (its lock is released): later calls fail. Runs when the
    /// client is freed, so that the same directory can be opened again at once.
    pub fn close(&self) {
        if let Some(janitor) = self.janitor.get() {
            let keys = {
                let mut queue = lock(&janitor.queue);
                queue.1 = true;
                janitor.wake.notify_one();
                std::mem::take(&mut queue.0)
            };
            self.remove_now(&keys);
        }
        let log = self.log.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(log) = log {
            if let Err(e) = log.flush() {
                log!(Level::Warn, "flushing the store on close failed: {e}");
            }
        }
    }
}

/// Opens the store of `settings` for `client_id` and reads what it held.
pub fn open(
    settings: &PersistenceOptions,
    client_id: &str,
    policy: FullPolicy,
) -> Result<(Arc<Persistence>, Restored)> {
    let (log, records, discarded) = open_store(settings)?;
    let sync = settings.durability == Durability::Sync;
    let (persistence, mut restored) =
        Persistence::attach_with(log, records, client_id, settings.qos0, policy, sync)?;
    restored.discarded_bytes += discarded.0;
    restored.discarded_records += discarded.1;
    if restored.discarded_records > 0 {
        log!(
            Level::Warn,
            "the store in {} had {} unreadable records ({} bytes: a torn end after a crash); every complete record was kept",
            settings.directory.display(),
            restored.discarded_records,
            restored.discarded_bytes
        );
    }
    let persistence = Arc::new(persistence);
    persistence.start_janitor()?;
    Ok((persistence, restored))
}

type Opened = (Box<dyn DurableLog>, Vec<(u64, Vec<u8>)>, (u64, u64));

fn open_store(settings: &PersistenceOptions) -> Result<Opened> {
    use crate::persist::{Store, StoreOptions};
    // The sync mode runs the store batched and flushes what must be durable itself
    // (`Persistence::accept`, `barrier`): removals and the session's own records then cost a
    // write, not a sync each, and concurrent publishers still share one sync.
    let durability = match settings.durability {
        Durability::Sync => crate::persist::Durability::Batched {
            interval: SYNC_MODE_BACKGROUND_INTERVAL,
        },
        Durability::Batched { interval } => crate::persist::Durability::Batched { interval },
    };
    let (store, recovered) = Store::open(
        &settings.directory,
        StoreOptions {
            durability,
            max_bytes: settings.max_bytes,
        },
    )?;
    Ok((
        Box::new(store),
        recovered.records,
        (recovered.discarded_bytes, recovered.discarded_records),
    ))
}

/// The on-disk store (`crate::persist`). Only its size bound counts as "full" for the
/// full-queue policies: a full file system (ENOSPC) is reported at publish whatever the
/// policy, since dropping would need room for its tombstone too.
impl DurableLog for crate::persist::Store {
    fn put(&self, key: u64, value: &[u8]) -> std::result::Result<(), LogError> {
        crate::persist::Store::put(self, key, value).map_err(LogError::from_store)
    }
    fn put_cheaply(&self, key: u64, value: &[u8]) -> std::result::Result<(), LogError> {
        crate::persist::Store::put_cheaply(self, key, value).map_err(LogError::from_store)
    }
    fn remove(&self, key: u64) -> Result<()> {
        Ok(crate::persist::Store::remove(self, key)?)
    }
    fn flush(&self) -> Result<()> {
        Ok(crate::persist::Store::flush(self)?)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn discard(restored: &mut Restored, key: u64, len: usize) {
    log!(
        Level::Warn,
        "store record {key:#x} cannot be read by this version; it is ignored"
    );
    restored.discarded_records += 1;
    restored.discarded_bytes += len as u64;
}

/// Converts a restored wall-clock acceptance time to this run's clock.
pub fn accepted_instant(accepted: SystemTime, now: Instant) -> Instant {
    let waited = SystemTime::now()
        .duration_since(accepted)
        .unwrap_or(Duration::ZERO);
    now.checked_sub(waited).unwrap_or(now)
}

// ----- record formats (each starts with FORMAT; little-endian) -----

fn encode_meta(client_id: &str) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(client_id.as_bytes());
    out
}

fn decode_meta(value: &[u8]) -> Result<String> {
    match value.split_first() {
        Some((&FORMAT, id)) => String::from_utf8(id.to_vec())
            .map_err(|_| Error::StoreCorrupt("the store's client id is not UTF-8".into())),
        Some((v, _)) => Err(Error::StoreCorrupt(format!(
            "the store was written in session format {v}; this library reads format {FORMAT}"
        ))),
        None => Err(Error::StoreCorrupt(
            "the store's header record is empty".into(),
        )),
    }
}

fn encode_state(stage: RestoredStage) -> [u8; 4] {
    let (code, pkid) = match stage {
        RestoredStage::AwaitAck(p) => (0, p),
        RestoredStage::AwaitComp(p) => (1, p),
    };
    let id = pkid.to_le_bytes();
    [FORMAT, code, id[0], id[1]]
}

fn decode_state(value: &[u8]) -> Option<RestoredStage> {
    match value {
        [FORMAT, code, a, b] => {
            let pkid = u16::from_le_bytes([*a, *b]);
            if pkid == 0 {
                return None;
            }
            match code {
                0 => Some(RestoredStage::AwaitAck(pkid)),
                1 => Some(RestoredStage::AwaitComp(pkid)),
                _ => None,
            }
        }
        _ => None,
    }
}

const P_UTF8_SET: u8 = 1;
const P_UTF8: u8 = 2;
const P_EXPIRY: u8 = 4;
const P_CONTENT_TYPE: u8 = 8;
const P_RESPONSE_TOPIC: u8 = 16;
const P_CORRELATION: u8 = 32;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// [FORMAT][qos][retain][accepted ms u64][topic][properties?][payload], strings and byte
/// strings as u32 length + bytes.
fn encode_message(message: &OutPublish, accepted: SystemTime) -> Vec<u8> {
    let millis = accepted
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut out = Vec::with_capacity(32 + message.topic.len() + message.payload.len());
    out.push(FORMAT);
    out.push(message.qos);
    out.push(message.retain as u8 | (message.properties.is_some() as u8) << 1);
    out.extend_from_slice(&millis.to_le_bytes());
    put_bytes(&mut out, message.topic.as_bytes());
    if let Some(p) = &message.properties {
        let mut flags = 0;
        if let Some(utf8) = p.payload_is_utf8 {
            flags |= P_UTF8_SET | if utf8 { P_UTF8 } else { 0 };
        }
        flags |= if p.message_expiry.is_some() {
            P_EXPIRY
        } else {
            0
        };
        flags |= if p.content_type.is_some() {
            P_CONTENT_TYPE
        } else {
            0
        };
        flags |= if p.response_topic.is_some() {
            P_RESPONSE_TOPIC
        } else {
            0
        };
        flags |= if p.correlation_data.is_some() {
            P_CORRELATION
        } else {
            0
        };
        out.push(flags);
        if let Some(expiry) = p.message_expiry {
            out.extend_from_slice(&expiry.to_le_bytes());
        }
        if let Some(c) = &p.content_type {
            put_bytes(&mut out, c.as_bytes());
        }
        if let Some(r) = &p.response_topic {
            put_bytes(&mut out, r.as_bytes());
        }
        if let Some(c) = &p.correlation_data {
            put_bytes(&mut out, c);
        }
        out.extend_from_slice(&(p.user_properties.len() as u32).to_le_bytes());
        for (name, value) in &p.user_properties {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
    }
    put_bytes(&mut out, &message.payload);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn decode_message(value: &[u8]) -> Option<(OutPublish, SystemTime)> {
    let mut r = Reader(value);
    if r.u8()? != FORMAT {
        return None;
    }
    let qos = r.u8()?;
    if qos > 2 {
        return None;
    }
    let flags = r.u8()?;
    let accepted = UNIX_EPOCH + Duration::from_millis(r.u64()?);
    let topic = r.string()?;
    let properties = if flags & 2 != 0 {
        let f = r.u8()?;
        let mut p = PublishProperties {
            payload_is_utf8: (f & P_UTF8_SET != 0).then_some(f & P_UTF8 != 0),
            ..PublishProperties::default()
        };
        if f & P_EXPIRY != 0 {
            p.message_expiry = Some(r.u32()?);
        }
        if f & P_CONTENT_TYPE != 0 {
            p.content_type = Some(r.string()?);
        }
        if f & P_RESPONSE_TOPIC != 0 {
            p.response_topic = Some(r.string()?);
        }
        if f & P_CORRELATION != 0 {
            p.correlation_data = Some(Bytes::copy_from_slice(r.bytes()?));
        }
        let count = r.u32()?;
        for _ in 0..count {
            let name = r.string()?;
            let value = r.string()?;
            p.user_properties.push((name, value));
        }
        Some(Arc::new(p))
    } else {
        None
    };
    let payload = Bytes::copy_from_slice(r.bytes()?);
    if !r.0.is_empty() {
        return None;
    }
    Some((
        OutPublish {
            topic,
            payload,
            qos,
            retain: flags & 1 != 0,
            properties,
        },
        accepted,
    ))
}

/// An in-memory `DurableLog` for unit tests: what it holds is what a restart would read.
/// `fail_with` makes every later put fail (a full or broken disk).
#[derive(Default, Clone)]
pub struct MemoryLog {
    pub records: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
    pub fail_with: Arc<Mutex<Option<LogError>>>,
}

impl MemoryLog {
    /// The records, as the next open would read them.
    pub fn snapshot(&self) -> Vec<(u64, Vec<u8>)> {
        lock(&self.records)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

impl DurableLog for MemoryLog {
    fn put(&self, key: u64, value: &[u8]) -> std::result::Result<(), LogError> {
        if let Some(e) = lock(&self.fail_with).clone() {
            return Err(e);
        }
        lock(&self.records).insert(key, value.to_vec());
        Ok(())
    }
    fn remove(&self, key: u64) -> Result<()> {
        lock(&self.records).remove(&key);
        Ok(())
    }
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, qos: u8) -> OutPublish {
        OutPublish {
            topic: topic.into(),
            payload: Bytes::from_static(b"payload"),
            qos,
            retain: true,
            properties: None,
        }
    }

    #[test]
    fn message_records_round_trip_with_properties() {
        let mut m = message("a/b", 2);
        m.properties = Some(Arc::new(PublishProperties {
            payload_is_utf8: Some(true),
            message_expiry: Some(30),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into())],
        }));
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let (back, when) = decode_message(&encode_message(&m, at)).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(when, at);
        // A torn record is refused, never misread.
        let record = encode_message(&m, at);
        for cut in 0..record.len() {
            assert!(decode_message(&record[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn a_store_of_another_client_is_refused() {
        let log = MemoryLog::default();
        let (_p, _) = Persistence::attach(
            Box::new(log.clone()),
            log.snapshot(),
            "first",
            false,
            FullPolicy::RejectNew,
        )
        .expect("fresh store");
        let err = Persistence::attach(
            Box::new(log.clone()),
            log.snapshot(),
            "second",
            false,
            FullPolicy::RejectNew,
        )
        .err()
        .expect("refused");
        assert!(matches!(err, Error::StoreClientMismatch(_)), "{err:?}");
    }

    #[test]
    fn records_are_restored_in_acceptance_order_with_their_stage() {
        let log = MemoryLog::default();
        let (p, _) = Persistence::attach(
            Box::new(log.clone()),
            log.snapshot(),
            "c",
            false,
            FullPolicy::RejectNew,
        )
        .unwrap();
        let now = SystemTime::now();
        p.accept(3, &message("t/3", 2), now).unwrap();
        p.accept(1, &message("t/1", 1), now).unwrap();
        p.accept(2, &message("t/2", 0), now).unwrap(); // QoS 0 not kept without the flag
        p.record_stage(3, RestoredStage::AwaitComp(7)).unwrap();
        p.record_inbound(9).unwrap();
        let (_, restored) = Persistence::attach(
            Box::new(log.clone()),
            log.snapshot(),
            "c",
            false,
            FullPolicy::RejectNew,
        )
        .unwrap();
        let tokens: Vec<_> = restored.messages.iter().map(|m| m.token).collect();
        assert_eq!(tokens, vec![1, 3]);
        assert_eq!(
            restored.messages[1].stage,
            Some(RestoredStage::AwaitComp(7))
        );
        assert_eq!(restored.inbound_qos2, vec![9]);
        p.forget(3, 2, true);
        p.forget(1, 1, false);
        p.forget_inbound(9);
        assert_eq!(log.snapshot().len(), 1, "only the header is left");
    }

    #[test]
    fn a_full_store_drops_the_oldest_queued_message_with_drop_oldest() {
        let log = MemoryLog::default();
        let (p, _) = Persistence::attach(
            Box::new(log.clone()),
            log.snapshot(),
            "c",
            false,
            FullPolicy::DropOldest,
        )
        .unwrap();
        let now = SystemTime::now();
        p.accept(1, &message("t", 1), now).unwrap();
        p.accept(2, &message("t", 1), now).unwrap();
        // A store that takes no more until something is removed.
        struct FullAfter(MemoryLog, usize);
        impl DurableLog for FullAfter {
            fn put(&self, key: u64, value: &[u8]) -> std::result::Result<(), LogError> {
                if lock(&self.0.records).len() >= self.1 {
                    return Err(LogError {
                        full: true,
                        error: Error::StoreFull("the store is full".into()),
                    });
                }
                self.0.put(key, value)
            }
            fn remove(&self, key: u64) -> Result<()> {
                self.0.remove(key)
            }
            fn flush(&self) -> Result<()> {
                Ok(())
            }
        }
        *p.log.write().unwrap() = Some(Box::new(FullAfter(log.clone(), 3)));
        p.accept(3, &message("t", 1), now).unwrap();
        assert!(p.leaves_outbox(1), "the oldest was dropped");
        assert!(!p.leaves_outbox(2));
        let keys: Vec<u64> = log.snapshot().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![META_KEY, 2, 3]);
        // Nothing queued is left to drop (2 and 3 left the outbox): the new one is refused.
        assert!(!p.leaves_outbox(3));
        let err = p.accept(4, &message("t", 1), now).unwrap_err();
        assert!(matches!(err, Error::StoreFull(_)), "{err:?}");
    }
}
