//! Benchmark of the persistent store (src/persist/) against redb, an embedded B-tree database,
//! on the store-and-forward workload: records of ~100 bytes (a topic and a 64-byte payload),
//! each put when a QoS 1 message is accepted and removed when its PUBACK arrives, ~N messages
//! in flight. Run by `scripts/bench-persistence.sh store`; figures and the decision in
//! benches/README.md.
//!
//!   cargo run --release --example persist_bench -- [records] [in_flight] [dir]
//!
//! Modes, the same for both engines where they have it:
//! - sync: every put and every remove is durable before it returns (ours: `Durability::Sync`,
//!   fdatasync with group commit; redb: one transaction per operation, `Durability::Immediate`).
//!   With 1 and with 4 threads putting at once.
//! - batched: ours `Durability::Batched { 10 ms }` (each call returns after write(2): a process
//!   crash loses nothing that returned); redb `Durability::None` per operation plus an
//!   `Immediate` commit every 10 ms from a thread (weaker: non-durable commits are lost when the
//!   process dies, up to the interval).

use eq1::persist::{Durability, Store, StoreOptions};
use redb::{Database, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const INTERVAL: Duration = Duration::from_millis(10);

trait Engine: Sync {
    fn put(&self, key: u64, value: &[u8]);
    fn remove(&self, key: u64);
    fn finish(&self) {}
}

struct Ours(Store);

impl Engine for Ours {
    fn put(&self, key: u64, value: &[u8]) {
        if let Err(e) = self.0.put(key, value) {
            panic!("put: {e}");
        }
    }
    fn remove(&self, key: u64) {
        if let Err(e) = self.0.remove(key) {
            panic!("remove: {e}");
        }
    }
    fn finish(&self) {
        if let Err(e) = self.0.flush() {
            panic!("flush: {e}");
        }
    }
}

struct Redb {
    db: Arc<Database>,
    durability: redb::Durability,
    stop: Arc<AtomicBool>,
}

impl Redb {
    fn write(
        &self,
        durability: redb::Durability,
        change: impl FnOnce(&mut redb::Table<u64, &[u8]>),
    ) {
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => panic!("begin_write: {e}"),
        };
        txn.set_durability(durability);
        {
            let mut table = match txn.open_table(TABLE) {
                Ok(table) => table,
                Err(e) => panic!("open_table: {e}"),
            };
            change(&mut table);
        }
        if let Err(e) = txn.commit() {
            panic!("commit: {e}");
        }
    }
}

impl Engine for Redb {
    fn put(&self, key: u64, value: &[u8]) {
        self.write(self.durability, |table| {
            if let Err(e) = table.insert(key, value) {
                panic!("insert: {e}");
            }
        });
    }
    fn remove(&self, key: u64) {
        self.write(self.durability, |table| {
            if let Err(e) = table.remove(key) {
                panic!("remove: {e}");
            }
        });
    }
    fn finish(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.write(redb::Durability::Immediate, |table| {
            let _ = table.len();
        });
    }
}

struct Outcome {
    seconds: f64,
    latencies: Vec<Duration>,
}

fn run(engine: &dyn Engine, records: u64, in_flight: u64, threads: u64) -> Outcome {
    let start = Instant::now();
    let per_thread = records / threads;
    let latencies: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    let base = thread << 40;
                    let mut latencies = Vec::with_capacity(per_thread as usize);
                    for i in 0..per_thread {
                        let value = message(i);
                        let t0 = Instant::now();
                        engine.put(base + i, &value);
                        latencies.push(t0.elapsed());
                        if i >= in_flight {
                            engine.remove(base + i - in_flight);
                        }
                    }
                    for i in per_thread.saturating_sub(in_flight)..per_thread {
                        engine.remove(base + i);
                    }
                    latencies
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    engine.finish();
    Outcome {
        seconds: start.elapsed().as_secs_f64(),
        latencies: latencies.into_iter().flatten().collect(),
    }
}

/// A QoS-1-like record: topic, NUL, 64-byte payload (~100 bytes).
fn message(i: u64) -> Vec<u8> {
    let mut value = format!("factory/hall-2/line-{}/press/temperature\0", i % 8).into_bytes();
    value.extend((0..64).map(|b| (i as u8).wrapping_add(b)));
    value
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1e6
}

fn report(engine: &str, mode: &str, threads: u64, records: u64, outcome: Outcome) {
    let mut sorted = outcome.latencies;
    sorted.sort_unstable();
    println!(
        "| {engine} | {mode} | {threads} | {records} | {:.0} | {:.1} | {:.1} |",
        records as f64 / outcome.seconds,
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.99),
    );
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    path
}

fn ours(dir: &Path, durability: Durability) -> Ours {
    let options = StoreOptions {
        durability,
        max_bytes: 0,
    };
    match Store::open(dir, options) {
        Ok((store, _)) => Ours(store),
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

fn redb(path: &Path, durability: redb::Durability) -> Redb {
    let db = match Database::create(path) {
        Ok(db) => Arc::new(db),
        Err(e) => panic!("redb create {}: {e}", path.display()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let engine = Redb {
        db: Arc::clone(&db),
        durability,
        stop: Arc::clone(&stop),
    };
    engine.write(redb::Durability::Immediate, |_| {});
    if matches!(durability, redb::Durability::None) {
        let flusher = Redb {
            db,
            durability,
            stop,
        };
        std::thread::spawn(move || {
            while !flusher.stop.load(Ordering::SeqCst) {
                std::thread::sleep(INTERVAL);
                flusher.write(redb::Durability::Immediate, |_| {});
            }
        });
    }
    engine
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let in_flight: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let dir = PathBuf::from(
        args.get(3)
            .cloned()
            .unwrap_or_else(|| "target/persist-bench".to_owned()),
    );
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("mkdir {}: {e}", dir.display());
    }
    println!(
        "records {records} of {} bytes, {in_flight} in flight per thread, in {}",
        message(0).len(),
        dir.display()
    );
    println!();
    println!(
        "| engine | mode | threads | records | msgs/s (put + remove) | put p50 µs | put p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|");
    let batched = Durability::Batched { interval: INTERVAL };
    for threads in [1, 4] {
        let store = ours(&fresh(&dir, "ours-sync"), Durability::Sync);
        report(
            "eq1 log",
            "sync",
            threads,
            records,
            run(&store, records, in_flight, threads),
        );
        drop(store);
        let db = redb(&fresh(&dir, "redb-sync.redb"), redb::Durability::Immediate);
        report(
            "redb",
            "sync",
            threads,
            records,
            run(&db, records, in_flight, threads),
        );
    }
    for threads in [1, 4] {
        let store = ours(&fresh(&dir, "ours-batched"), batched);
        report(
            "eq1 log",
            "batched 10 ms",
            threads,
            records,
            run(&store, records, in_flight, threads),
        );
        drop(store);
        let db = redb(&fresh(&dir, "redb-batched.redb"), redb::Durability::None);
        report(
            "redb",
            "batched 10 ms",
            threads,
            records,
            run(&db, records, in_flight, threads),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
