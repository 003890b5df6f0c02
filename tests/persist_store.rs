//! The persistent store (src/persist/) on real files: torn and flipped bytes, a full and a
//! read-only file system (a tmpfs the test mounts: CI runs as root, so a refused mount fails
//! the test), two processes on one store, SIGKILL in batched mode, and compaction keeping the
//! directory bounded. Child processes are this test binary run again with an environment
//! variable naming their role (see `child_role`).

use eq1::persist::{Durability, Recovered, Store, StoreError, StoreOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const SYNC: StoreOptions = StoreOptions {
    durability: Durability::Sync,
    max_bytes: 0,
};
const BATCHED: StoreOptions = StoreOptions {
    durability: Durability::Batched {
        interval: Duration::from_millis(5),
    },
    max_bytes: 0,
};
/// Never syncs on its own within a test: what survives a SIGKILL is what write(2) reached.
const BATCHED_NEVER_SYNCING: StoreOptions = StoreOptions {
    durability: Durability::Batched {
        interval: Duration::from_secs(3600),
    },
    max_bytes: 0,
};
const HEADER: usize = 32;
const FRAME: usize = 12 + 9;

fn open(dir: &Path, options: StoreOptions) -> (Store, Recovered) {
    match Store::open(dir, options) {
        Ok(opened) => opened,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

fn open_small(dir: &Path, options: StoreOptions, segment: u64) -> (Store, Recovered) {
    match Store::open_with_segment_bytes(dir, options, segment) {
        Ok(opened) => opened,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

fn value_of(key: u64, len: usize) -> Vec<u8> {
    let mut value = format!("plant/line{}/sensor\0", key % 7).into_bytes();
    value.extend((0..len).map(|i| (key as usize * 31 + i) as u8));
    value
}

fn as_map(recovered: &Recovered) -> BTreeMap<u64, Vec<u8>> {
    recovered.records.iter().cloned().collect()
}

fn segments_of(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

/// A store whose single segment ends with `last` (a put of key 100, or the removal of key 3).
fn store_ending_with(dir: &Path, last_is_removal: bool) -> BTreeMap<u64, Vec<u8>> {
    let (store, _) = open(dir, SYNC);
    let mut model = BTreeMap::new();
    for key in 1..=20 {
        let value = value_of(key, 64);
        store.put(key, &value).ok();
        model.insert(key, value);
    }
    for key in [5, 9, 14] {
        store.remove(key).ok();
        model.remove(&key);
    }
    if last_is_removal {
        store.remove(3).ok();
        model.remove(&3);
    } else {
        store.put(100, &value_of(100, 64)).ok();
        model.insert(100, value_of(100, 64));
    }
    model
}

#[test]
fn a_torn_last_record_is_dropped_at_every_byte_offset_and_cut_away() {
    for last_is_removal in [false, true] {
        let original = tempdir();
        let full_model = store_ending_with(original.path(), last_is_removal);
        let (last_key, last_len) = if last_is_removal {
            (3, FRAME)
        } else {
            (100, FRAME + value_of(100, 64).len())
        };
        let mut before_last = full_model.clone();
        if last_is_removal {
            before_last.insert(last_key, value_of(last_key, 64));
        } else {
            before_last.remove(&last_key);
        }
        let segments = segments_of(original.path());
        assert_eq!(segments.len(), 1);
        let bytes = read(&segments[0]);
        let last_start = bytes.len() - last_len;
        for cut in last_start..=bytes.len() {
            let copy = tempdir();
            let name = segments[0]
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_default();
            write(&copy.path().join(&name), &bytes[..cut]);
            let (store, recovered) = open(copy.path(), SYNC);
            let torn = cut - last_start;
            if cut == bytes.len() {
                assert_eq!(as_map(&recovered), full_model);
                assert_eq!(
                    (recovered.discarded_bytes, recovered.discarded_records),
                    (0, 0)
                );
            } else {
                assert_eq!(as_map(&recovered), before_last, "cut at {cut}");
                assert_eq!(recovered.discarded_bytes, torn as u64, "cut at {cut}");
                assert_eq!(
                    recovered.discarded_records,
                    u64::from(torn > 0),
                    "cut at {cut}"
                );
            }
            // The torn tail is gone: new records follow good data and come back.
            let expected_len = if cut == bytes.len() { cut } else { last_start };
            assert_eq!(read(&copy.path().join(&name)).len(), expected_len);
            assert!(store.put(500, b"after the tear").is_ok());
            drop(store);
            let (_, again) = open(copy.path(), SYNC);
            assert_eq!((again.discarded_bytes, again.discarded_records), (0, 0));
            let mut expected = if cut == bytes.len() {
                full_model.clone()
            } else {
                before_last.clone()
            };
            expected.insert(500, b"after the tear".to_vec());
            assert_eq!(as_map(&again), expected, "cut at {cut}, reopened");
        }
    }
}

/// A deterministic xorshift: the offsets are random but the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The records of a segment file as the format document describes them (no checksums looked
/// at: the test cuts files, it does not damage them): `(end offset, key, value or None)`.
fn frames_of(segment: &[u8]) -> Vec<(usize, u64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut at = HEADER;
    while at + 12 <= segment.len() {
        let body = u32::from_le_bytes([
            segment[at],
            segment[at + 1],
            segment[at + 2],
            segment[at + 3],
        ]) as usize;
        let end = at + 12 + body;
        if end > segment.len() {
            break;
        }
        let mut key = [0u8; 8];
        key.copy_from_slice(&segment[at + 13..at + 21]);
        let value = (segment[at + 12] == 1).then(|| segment[at + 21..end].to_vec());
        out.push((end, u64::from_le_bytes(key), value));
        at = end;
    }
    out
}

#[test]
fn a_multi_segment_store_cut_at_random_offsets_keeps_every_complete_record() {
    let original = tempdir();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut model = BTreeMap::new();
    {
        let (store, _) = open_small(original.path(), BATCHED, 4096);
        for step in 0..3000u64 {
            let key = rng.below(200);
            if rng.below(3) == 0 {
                assert!(store.remove(key).is_ok());
                model.remove(&key);
            } else {
                let value = value_of(step, rng.below(150) as usize);
                assert!(store.put(key, &value).is_ok());
                model.insert(key, value);
            }
        }
    }
    let segments: Vec<(PathBuf, Vec<u8>)> = segments_of(original.path())
        .into_iter()
        .map(|p| {
            let bytes = read(&p);
            (p, bytes)
        })
        .collect();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    let (_, whole) = open(original.path(), SYNC);
    assert_eq!(as_map(&whole), model, "the uncut store is the history");
    let total: usize = segments.iter().map(|(_, b)| b.len()).sum();
    for round in 0..150 {
        let cut = rng.below(total as u64 + 1) as usize;
        let copy = tempdir();
        let mut expected = BTreeMap::new();
        let mut expected_discarded = 0u64;
        let mut start = 0;
        for (path, bytes) in &segments {
            if start > cut {
                break;
            }
            let keep = (cut - start).min(bytes.len());
            let name = path.file_name().map(PathBuf::from).unwrap_or_default();
            write(&copy.path().join(name), &bytes[..keep]);
            if keep < HEADER {
                expected_discarded += keep as u64;
            } else {
                let mut good_end = HEADER;
                for (end, key, value) in frames_of(&bytes[..keep]) {
                    good_end = end;
                    match value {
                        Some(value) => expected.insert(key, value),
                        None => expected.remove(&key),
                    };
                }
                expected_discarded += (keep - good_end) as u64;
            }
            start += bytes.len();
        }
        let (store, recovered) = open(copy.path(), SYNC);
        assert_eq!(as_map(&recovered), expected, "cut at {cut} of {total}");
        assert_eq!(
            recovered.discarded_bytes, expected_discarded,
            "cut at {cut}"
        );
        assert_eq!(store.live_count(), expected.len());
        if round % 10 == 0 {
            assert!(store.put(9999, b"new").is_ok());
            drop(store);
            let (_, again) = open(copy.path(), SYNC);
            expected.insert(9999, b"new".to_vec());
            assert_eq!(as_map(&again), expected, "cut at {cut}, reopened");
            assert_eq!(again.discarded_bytes, 0);
        }
    }
}

#[test]
fn flipped_bytes_are_caught_by_the_checksums() {
    let original = tempdir();
    let model = store_ending_with(original.path(), false);
    let segment = segments_of(original.path()).remove(0);
    let name = segment.file_name().map(PathBuf::from).unwrap_or_default();
    let bytes = read(&segment);
    let frames = frames_of(&bytes);
    let last_len = FRAME + value_of(100, 64).len();
    // Every byte of the last record, every bit: the record is dropped, nothing else.
    let mut without_last = model.clone();
    without_last.remove(&100);
    for at in bytes.len() - last_len..bytes.len() {
        for bit in [0, 3, 7] {
            let copy = tempdir();
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            write(&copy.path().join(&name), &damaged);
            let (_, recovered) = open(copy.path(), SYNC);
            assert_eq!(as_map(&recovered), without_last, "flip at {at} bit {bit}");
            assert_eq!(recovered.discarded_records, 1);
            assert_eq!(recovered.discarded_bytes, last_len as u64);
        }
    }
    // The body of a record in the middle: stepped over (its frame head gives its length), the
    // records after it are kept, and it is reported on every open.
    let (middle_end, middle_key, _) = frames[6].clone();
    let copy = tempdir();
    let mut damaged = bytes.clone();
    damaged[middle_end - 3] ^= 0x10;
    write(&copy.path().join(&name), &damaged);
    let mut without_middle = model.clone();
    without_middle.remove(&middle_key);
    for _ in 0..2 {
        let (_, recovered) = open(copy.path(), SYNC);
        assert_eq!(as_map(&recovered), without_middle);
        assert_eq!(recovered.discarded_records, 1);
        assert_eq!(recovered.discarded_bytes, (middle_end - frames[5].0) as u64);
    }
}

#[test]
fn damage_in_an_older_segment_is_stepped_over_or_reported_corrupt() {
    let original = tempdir();
    {
        let (store, _) = open_small(original.path(), SYNC, 4096);
        for key in 0..200 {
            assert!(store.put(key, &value_of(key, 80)).is_ok());
        }
    }
    let segments = segments_of(original.path());
    assert!(segments.len() >= 3);
    let first = read(&segments[0]);
    let frames = frames_of(&first);
    let name = segments[0]
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let copy_with = |damaged: &[u8]| {
        let copy = tempdir();
        for path in &segments[1..] {
            let other = path.file_name().map(PathBuf::from).unwrap_or_default();
            write(&copy.path().join(other), &read(path));
        }
        write(&copy.path().join(&name), damaged);
        copy
    };
    // A damaged body: that record is reported, every other one is kept.
    let mut damaged = first.clone();
    damaged[frames[2].0 - 1] ^= 1;
    let copy = copy_with(&damaged);
    let (_, recovered) = open(copy.path(), SYNC);
    assert_eq!(recovered.records.len(), 199);
    assert!(recovered
        .records
        .iter()
        .all(|(k, v)| *k != frames[2].1 && *v == value_of(*k, 80)));
    assert_eq!(recovered.discarded_records, 1);
    // A damaged frame head: the records after it cannot be located: Corrupt, not a guess.
    let mut damaged = first.clone();
    damaged[frames[2].0] ^= 1;
    let copy = copy_with(&damaged);
    assert!(matches!(
        Store::open(copy.path(), SYNC),
        Err(StoreError::Corrupt(_))
    ));
    // A segment of a newer format version: Corrupt, naming the version.
    let mut newer = first.clone();
    newer[8] = 2;
    let crc = crc32fast::hash(&newer[0..24]);
    newer[24..28].copy_from_slice(&crc.to_le_bytes());
    let copy = copy_with(&newer);
    match Store::open(copy.path(), SYNC) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("version 2"), "{m}"),
        other => panic!("expected Corrupt, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn a_second_open_in_the_same_process_is_locked() {
    let dir = tempdir();
    let (store, _) = open(dir.path(), SYNC);
    assert!(matches!(
        Store::open(dir.path(), SYNC),
        Err(StoreError::Locked(_))
    ));
    assert!(store.put(1, b"still mine").is_ok());
    drop(store);
    let (_, recovered) = open(dir.path(), SYNC);
    assert_eq!(recovered.records, vec![(1, b"still mine".to_vec())]);
}

/// Runs this test binary again as a child with `role` (see `child_role`).
fn child(role: &str, dir: &Path) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut command = Command::new(exe);
    command
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env("EQ1_STORE_CHILD", role)
        .env("EQ1_STORE_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Not a test of its own: the body of the child processes. Without `EQ1_STORE_CHILD` it does
/// nothing.
#[test]
fn child_role() {
    let (Ok(role), Ok(dir)) = (
        std::env::var("EQ1_STORE_CHILD"),
        std::env::var("EQ1_STORE_DIR"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    match role.as_str() {
        // Open and report: "locked", or "opened <live records>".
        "open" => match Store::open(&dir, SYNC) {
            Ok((_, recovered)) => println!("child: opened {}", recovered.records.len()),
            Err(StoreError::Locked(m)) => println!("child: locked {m}"),
            Err(e) => println!("child: error {e}"),
        },
        // Put forever in batched mode, printing each key once its put returned.
        "stream" => {
            let (store, _) = open(&dir, BATCHED_NEVER_SYNCING);
            for key in 0u64.. {
                if store.put(key, &value_of(key, 64)).is_err() {
                    println!("child: put failed");
                    return;
                }
                if key % 3 == 2 && store.remove(key - 1).is_err() {
                    println!("child: remove failed");
                    return;
                }
                println!("child: acked {key}");
            }
        }
        other => println!("child: unknown role {other}"),
    }
}

/// What the child said on a line (the test harness may print "test child_role ... " first).
fn child_line(line: &str) -> Option<&str> {
    line.find("child: ").map(|at| &line[at + "child: ".len()..])
}

fn child_says(role: &str, dir: &Path) -> String {
    let output = child(role, dir)
        .output()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(child_line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_second_process_gets_locked_and_the_first_keeps_working() {
    let dir = tempdir();
    let (store, _) = open(dir.path(), SYNC);
    assert!(store.put(1, b"first").is_ok());
    let said = child_says("open", dir.path());
    assert!(said.starts_with("locked "), "child said {said:?}");
    assert!(store.put(2, b"second").is_ok());
    assert!(store.remove(1).is_ok());
    drop(store);
    let (_, recovered) = open(dir.path(), SYNC);
    assert_eq!(recovered.records, vec![(2, b"second".to_vec())]);
    drop(recovered);
    // Released on drop: the next process opens it and finds the record.
    assert_eq!(child_says("open", dir.path()), "opened 1");
}

#[test]
fn sigkill_in_batched_mode_loses_nothing_whose_put_returned() {
    let dir = tempdir();
    for round in 0..3 {
        let mut process = child("stream", dir.path())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        let stdout = process.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(key) = child_line(&line).and_then(|l| l.strip_prefix("acked ")) {
                acked.push(key.parse::<u64>().unwrap_or(u64::MAX));
                if acked.len() == 3000 + round * 1000 {
                    break;
                }
            }
        }
        let _ = process.kill(); // SIGKILL
        let _ = process.wait();
        assert_eq!(acked.len(), 3000 + round * 1000, "the child stopped early");
        let (_, recovered) = open(dir.path(), SYNC);
        let found = as_map(&recovered);
        let acked_set: std::collections::BTreeSet<u64> = acked.iter().copied().collect();
        for key in acked {
            if key % 3 != 1 {
                assert_eq!(found.get(&key), Some(&value_of(key, 64)), "key {key} lost");
            } else if acked_set.contains(&(key + 1)) {
                // Its removal returned too (in the step that acked key + 1): it stays removed.
                assert!(!found.contains_key(&key), "removed key {key} came back");
            }
        }
    }
}

#[test]
fn compaction_keeps_the_directory_bounded_over_100k_put_remove_cycles() {
    let dir = tempdir();
    let (store, _) = open(dir.path(), BATCHED);
    // A record that is never removed (a message stuck in the outbox) must survive compaction.
    assert!(store.put(u64::MAX, b"stuck").is_ok());
    let in_flight = 100u64;
    let mut largest = 0;
    for key in 0..100_000u64 {
        assert!(store.put(key, &value_of(key, 64)).is_ok());
        if key >= in_flight {
            assert!(store.remove(key - in_flight).is_ok());
        }
        if key % 1000 == 0 {
            largest = largest.max(dir_bytes(dir.path()));
        }
    }
    assert_eq!(store.live_count(), in_flight as usize + 1);
    // Written in all: ~100k x 150 B = 15 MB. On disk at any time: a few 1 MiB segments.
    let bound = 4 * eq1::persist::DEFAULT_SEGMENT_BYTES;
    assert!(largest <= bound, "directory reached {largest} bytes");
    assert!(store.bytes_used() <= bound);
    drop(store);
    let (_, recovered) = open(dir.path(), SYNC);
    assert_eq!(recovered.records.len(), in_flight as usize + 1);
    assert_eq!(
        recovered.records.last(),
        Some(&(u64::MAX, b"stuck".to_vec()))
    );
    assert_eq!(recovered.records[0].0, 100_000 - in_flight);
}

#[test]
fn compaction_with_small_segments_and_random_removal_order_keeps_the_history() {
    let dir = tempdir();
    let mut rng = Rng(12345);
    let mut model = BTreeMap::new();
    let (store, _) = open_small(dir.path(), BATCHED, 4096);
    let mut largest = 0;
    for step in 0..30_000u64 {
        let key = rng.below(64);
        if model.contains_key(&key) && rng.below(2) == 0 {
            assert!(store.remove(key).is_ok());
            model.remove(&key);
        } else {
            let value = value_of(step, rng.below(100) as usize);
            assert!(store.put(key, &value).is_ok());
            model.insert(key, value);
        }
        largest = largest.max(store.bytes_used());
    }
    // 64 keys of at most ~130 B each: a few segments, whatever the churn (~2.5 MB written).
    assert!(largest <= 16 * 4096, "store reached {largest} bytes");
    assert!(dir_bytes(dir.path()) <= 16 * 4096 + 4096);
    drop(store);
    let (_, recovered) = open(dir.path(), SYNC);
    assert_eq!(as_map(&recovered), model);
}

#[test]
fn max_bytes_refuses_puts_with_full_and_removals_make_room_again() {
    let dir = tempdir();
    let options = StoreOptions {
        durability: Durability::Sync,
        max_bytes: 128 * 1024,
    };
    let (store, _) = open(dir.path(), options);
    let mut stored = Vec::new();
    let error = loop {
        let key = stored.len() as u64;
        match store.put(key, &value_of(key, 200)) {
            Ok(()) => stored.push(key),
            Err(e) => break e,
        }
        assert!(stored.len() < 10_000, "never full");
    };
    assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    assert!(!stored.is_empty());
    assert!(dir_bytes(dir.path()) <= options.max_bytes);
    // Deliveries complete: room comes back, and the bound still holds.
    for key in &stored[..stored.len() / 2] {
        assert!(store.remove(*key).is_ok());
    }
    for key in 50_000..50_010u64 {
        assert!(
            store.put(key, &value_of(key, 200)).is_ok(),
            "put after removals"
        );
    }
    assert!(dir_bytes(dir.path()) <= options.max_bytes);
    drop(store);
    let (_, recovered) = open(dir.path(), options);
    let keys: Vec<u64> = recovered.records.iter().map(|(k, _)| *k).collect();
    let mut expected: Vec<u64> = stored[stored.len() / 2..].to_vec();
    expected.extend(50_000..50_010);
    assert_eq!(keys, expected);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempdir();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        // CI runs as root: a refused mount is a failure, not a reason to skip.
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "mount -t tmpfs on {} failed: {status:?} (these tests need root)",
            dir.path().display()
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, how: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(self.dir.path())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "remount {how}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_gives_no_space_keeps_what_was_stored_and_recovers_when_space_is_freed() {
    for options in [SYNC, BATCHED] {
        let disk = SmallDisk::mount("256k");
        let ballast = disk.path().join("ballast");
        write(&ballast, &vec![7u8; 64 * 1024]);
        let store_dir = disk.path().join("store");
        let (store, _) = open_small(&store_dir, options, 16 * 1024);
        let mut stored = BTreeMap::new();
        let error = loop {
            let key = stored.len() as u64;
            let value = value_of(key, 900);
            match store.put(key, &value) {
                Ok(()) => stored.insert(key, value),
                Err(e) => break e,
            };
            assert!(stored.len() < 1000, "the disk never filled");
        };
        assert!(matches!(error, StoreError::NoSpace(_)), "{error:?}");
        // Still full: refused again, nothing half-written left behind.
        for key in 5000..5005 {
            assert!(matches!(
                store.put(key, &value_of(key, 900)),
                Err(StoreError::NoSpace(_))
            ));
        }
        drop(store);
        let (store, recovered) = open_small(&store_dir, options, 16 * 1024);
        assert_eq!(as_map(&recovered), stored, "what was stored survived");
        assert_eq!(
            (recovered.discarded_bytes, recovered.discarded_records),
            (0, 0)
        );
        // Space freed: puts work again.
        std::fs::remove_file(&ballast).unwrap_or_else(|e| panic!("rm ballast: {e}"));
        for key in 6000..6020 {
            let value = value_of(key, 900);
            assert!(store.put(key, &value).is_ok(), "put after space was freed");
            stored.insert(key, value);
        }
        drop(store);
        let (_, recovered) = open_small(&store_dir, options, 16 * 1024);
        assert_eq!(as_map(&recovered), stored);
    }
}

#[test]
fn a_read_only_store_gives_read_only() {
    let disk = SmallDisk::mount("1m");
    let store_dir = disk.path().join("store");
    {
        let (store, _) = open(&store_dir, SYNC);
        assert!(store.put(1, b"kept").is_ok());
    }
    // Linux refuses a read-only remount while a file is open for writing, so the store is
    // closed first; the next open cannot write its lock file or segments.
    disk.remount("ro");
    let opened = Store::open(&store_dir, SYNC);
    disk.remount("rw");
    match opened {
        Err(StoreError::ReadOnly(m)) => assert!(m.contains("Read-only"), "{m}"),
        other => panic!("expected ReadOnly, got {:?}", other.map(|(_, r)| r)),
    }
    let (_, recovered) = open(&store_dir, SYNC);
    assert_eq!(recovered.records, vec![(1, b"kept".to_vec())]);
}

#[test]
fn concurrent_sync_puts_all_become_durable() {
    let dir = tempdir();
    let (store, _) = open(dir.path(), SYNC);
    std::thread::scope(|scope| {
        for thread in 0..8u64 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..200u64 {
                    let key = thread * 1000 + i;
                    assert!(store.put(key, &value_of(key, 32)).is_ok());
                    if i % 2 == 1 {
                        assert!(store.remove(key - 1).is_ok());
                    }
                }
            });
        }
    });
    assert_eq!(store.live_count(), 8 * 100);
    drop(store);
    let (_, recovered) = open(dir.path(), SYNC);
    assert_eq!(recovered.records.len(), 800);
    assert!(recovered
        .records
        .iter()
        .all(|(k, v)| k % 2 == 1 && *v == value_of(*k, 32)));
}

#[test]
fn store_errors_map_onto_their_statuses() {
    use eq1::core::status::Status;
    let cases = [
        (StoreError::Locked("x".into()), Status::StoreLocked),
        (StoreError::Full("x".into()), Status::StoreFull),
        (StoreError::NoSpace("x".into()), Status::StoreFull),
        (StoreError::Io("x".into()), Status::StoreIo),
        (StoreError::ReadOnly("x".into()), Status::StoreReadOnly),
        (StoreError::Corrupt("x".into()), Status::StoreCorrupt),
    ];
    for (error, status) in cases {
        let error: eq1::Error = error.into();
        assert_eq!(Status::from(&error), status);
    }
    let no_space: eq1::Error = StoreError::NoSpace("ENOSPC on /x".into()).into();
    assert!(no_space.message().contains("no space left"));
}

#[test]
fn a_tombstone_segment_is_kept_while_older_puts_it_cancels_are_on_disk() {
    let dir = tempdir();
    {
        let (store, _) = open_small(dir.path(), SYNC, 4096);
        // Segment 1: a long-lived record and nine short-lived ones.
        assert!(store.put(1, &[1u8; 3000]).is_ok());
        for key in 2..=10 {
            assert!(store.put(key, &[2u8; 80]).is_ok());
        }
        // Segment 2: their tombstones, then a record that is removed in segment 3. Segment 2
        // then holds nothing live, but deleting it would revive keys 2..=10 from segment 1.
        assert!(store.put(100, &[3u8; 800]).is_ok());
        for key in 2..=10 {
            assert!(store.remove(key).is_ok());
        }
        assert!(store.put(101, &[3u8; 3000]).is_ok());
        assert!(store.remove(100).is_ok());
        assert!(store.remove(101).is_ok());
    }
    let (_, recovered) = open(dir.path(), SYNC);
    let keys: Vec<u64> = recovered.records.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![1]);
}

#[test]
fn a_store_kept_at_its_bound_by_dropping_the_oldest_keeps_the_newest_within_the_bound() {
    // What the drop-oldest policy does: `put_cheaply`, and on `Full` remove the oldest record
    // and try again. The store frees room a segment at a time, so a refused put may cost a
    // few removals; over many puts the removals keep pace with the puts.
    let dir = tempdir();
    let options = StoreOptions {
        durability: Durability::Batched {
            interval: Duration::from_millis(10),
        },
        max_bytes: 128 * 1024,
    };
    let (store, _) = open(dir.path(), options);
    let mut live = std::collections::VecDeque::new();
    let mut dropped = 0u64;
    let puts = 5_000u64;
    for key in 0..puts {
        loop {
            match store.put_cheaply(key, &value_of(key, 200)) {
                Ok(()) => break,
                Err(StoreError::Full(_)) => {
                    let oldest = live.pop_front().expect("something to drop");
                    assert!(store.remove(oldest).is_ok());
                    dropped += 1;
                }
                Err(e) => panic!("put {key}: {e}"),
            }
        }
        live.push_back(key);
        assert!(
            dir_bytes(dir.path()) <= options.max_bytes,
            "bound passed at {key}"
        );
    }
    assert!(
        dropped > puts / 2,
        "the bound was reached early: {dropped} dropped"
    );
    // The newest are kept: the live keys are one run ending with the last put.
    assert_eq!(live.back(), Some(&(puts - 1)));
    assert_eq!(live.len() as u64, puts - dropped);
    assert!(live.len() > 100, "{} kept of a 128 KiB store", live.len());
    drop(store);
    let (_, recovered) = open(dir.path(), options);
    let keys: Vec<u64> = recovered.records.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, Vec::from(live));
}
