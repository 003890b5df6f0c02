//! The in-memory index of a store: where each live record sits, and what each segment still
//! holds that matters, so compaction knows which segments can go without changing what the log
//! says. Values are not kept here (the caller has them); only locations and counts.
//!
//! The one subtle rule: a tombstone must outlive every older put of its key that is still on
//! disk, or deleting the tombstone's segment would bring the key back to life on recovery. So a
//! key whose latest record is a tombstone keeps an entry (a "grave") while older puts of it
//! survive, and the tombstone's segment counts it as a pin.

use std::collections::{BTreeMap, HashMap};

/// Where a record sits: segment number, offset of its frame, frame length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Default)]
struct Entry {
    /// The live put, if the key's latest record is a put.
    live: Option<Loc>,
    /// The segment of the latest tombstone, while it still cancels older puts on disk.
    grave: Option<u64>,
    /// Put records of this key in segments still on disk (the live one included).
    puts_on_disk: u32,
}

/// What one segment holds, for the compaction decisions.
#[derive(Debug, Default)]
pub struct SegmentStats {
    /// Bytes of the file (header included).
    pub size: u64,
    /// Live puts in this segment and their bytes.
    pub live_count: u64,
    pub live_bytes: u64,
    /// Tombstones here that still cancel older puts on disk.
    pub pins: u64,
    /// Key of every put record written here (so their counts drop when the segment goes).
    put_keys: Vec<u64>,
    /// Key of every tombstone written here (the pinned ones are copied forward on compaction).
    tomb_keys: Vec<u64>,
}

impl SegmentStats {
    /// True when nothing in the segment is needed any more.
    pub fn is_dead(&self) -> bool {
        self.live_count == 0 && self.pins == 0
    }
}

#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<u64, Entry>,
    segments: BTreeMap<u64, SegmentStats>,
    live_count: usize,
    live_bytes: u64,
    bytes_used: u64,
}

impl Index {
    pub fn add_segment(&mut self, segment: u64, size: u64) {
        self.segments.insert(
            segment,
            SegmentStats {
                size,
                ..SegmentStats::default()
            },
        );
        self.bytes_used += size;
    }

    /// `bytes` more were appended to `segment` (a record, good or damaged).
    pub fn grow(&mut self, segment: u64, bytes: u64) {
        if let Some(stats) = self.segments.get_mut(&segment) {
            stats.size += bytes;
            self.bytes_used += bytes;
        }
    }

    pub fn segment(&self, segment: u64) -> Option<&SegmentStats> {
        self.segments.get(&segment)
    }

    /// Segment numbers in log order.
    pub fn segment_numbers(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    pub fn live(&self, key: u64) -> Option<Loc> {
        self.entries.get(&key).and_then(|entry| entry.live)
    }

    pub fn live_count(&self) -> usize {
        self.live_count
    }

    /// Bytes of the live puts plus the tombstones still needed: what compaction must keep.
    pub fn needed_bytes(&self) -> u64 {
        self.live_bytes
            + self.segments.values().map(|s| s.pins).sum::<u64>()
                * crate::persist::record::record_len(0)
    }

    pub fn bytes_used(&self) -> u64 {
        self.bytes_used
    }

    /// A put record of `key` was appended at `loc` (its bytes already counted by `grow`).
    pub fn apply_put(&mut self, key: u64, loc: Loc) {
        let entry = self.entries.entry(key).or_default();
        if let Some(old) = entry.live.take() {
            Self::unlive(&mut self.segments, &old);
            self.live_count -= 1;
            self.live_bytes -= old.len;
        }
        if let Some(grave) = entry.grave.take() {
            Self::unpin(&mut self.segments, grave);
        }
        entry.live = Some(loc);
        entry.puts_on_disk += 1;
        self.live_count += 1;
        self.live_bytes += loc.len;
        if let Some(stats) = self.segments.get_mut(&loc.segment) {
            stats.live_count += 1;
            stats.live_bytes += loc.len;
            stats.put_keys.push(key);
        }
    }

    /// A tombstone of `key` was appended to `segment`.
    pub fn apply_remove(&mut self, key: u64, segment: u64) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return; // no put of it on disk: nothing to cancel
        };
        if let Some(old) = entry.live.take() {
            Self::unlive(&mut self.segments, &old);
            self.live_count -= 1;
            self.live_bytes -= old.len;
        }
        if let Some(grave) = entry.grave.take() {
            Self::unpin(&mut self.segments, grave);
        }
        if entry.puts_on_disk == 0 {
            self.entries.remove(&key);
            return;
        }
        entry.grave = Some(segment);
        if let Some(stats) = self.segments.get_mut(&segment) {
            stats.pins += 1;
            stats.tomb_keys.push(key);
        }
    }

    /// Live puts of `segment`, in the order they were written.
    pub fn live_in(&self, segment: u64) -> Vec<(u64, Loc)> {
        let Some(stats) = self.segments.get(&segment) else {
            return Vec::new();
        };
        let mut out: Vec<(u64, Loc)> = stats
            .put_keys
            .iter()
            .filter_map(|key| match self.live(*key) {
                Some(loc) if loc.segment == segment => Some((*key, loc)),
                _ => None,
            })
            .collect();
        out.sort_by_key(|(_, loc)| loc.offset);
        out.dedup();
        out
    }

    /// Keys whose still-needed tombstone sits in `segment`.
    pub fn pinned_in(&self, segment: u64) -> Vec<u64> {
        let Some(stats) = self.segments.get(&segment) else {
            return Vec::new();
        };
        let mut out: Vec<u64> = stats
            .tomb_keys
            .iter()
            .copied()
            .filter(|key| {
                self.entries
                    .get(key)
                    .is_some_and(|entry| entry.grave == Some(segment))
            })
            .collect();
        out.dedup();
        out
    }

    /// Forgets a dead segment whose file is being deleted: its puts no longer need cancelling.
    pub fn forget_segment(&mut self, segment: u64) {
        let Some(stats) = self.segments.remove(&segment) else {
            return;
        };
        debug_assert!(
            stats.is_dead(),
            "forgetting segment {segment} that is needed"
        );
        self.bytes_used -= stats.size;
        for key in stats.put_keys {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            entry.puts_on_disk = entry.puts_on_disk.saturating_sub(1);
            if entry.live.is_none() && entry.puts_on_disk == 0 {
                if let Some(grave) = entry.grave.take() {
                    Self::unpin(&mut self.segments, grave);
                }
                self.entries.remove(&key);
            }
        }
    }

    fn unlive(segments: &mut BTreeMap<u64, SegmentStats>, loc: &Loc) {
        if let Some(stats) = segments.get_mut(&loc.segment) {
            stats.live_count -= 1;
            stats.live_bytes -= loc.len;
        }
    }

    fn unpin(segments: &mut BTreeMap<u64, SegmentStats>, segment: u64) {
        if let Some(stats) = segments.get_mut(&segment) {
            stats.pins -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(segment: u64, offset: u64) -> Loc {
        Loc {
            segment,
            offset,
            len: 30,
        }
    }

    #[test]
    fn a_tombstone_is_pinned_while_an_older_put_survives() {
        let mut index = Index::default();
        index.add_segment(1, 32);
        index.add_segment(2, 32);
        index.apply_put(5, loc(1, 32));
        index.apply_remove(5, 2);
        assert!(index.segment(1).is_some_and(SegmentStats::is_dead));
        assert!(!index.segment(2).is_some_and(SegmentStats::is_dead));
        index.forget_segment(1);
        assert!(index.segment(2).is_some_and(SegmentStats::is_dead));
        assert_eq!(index.live_count(), 0);
    }

    #[test]
    fn a_put_after_a_tombstone_releases_its_pin() {
        let mut index = Index::default();
        for segment in 1..=3 {
            index.add_segment(segment, 32);
        }
        index.apply_put(5, loc(1, 32));
        index.apply_remove(5, 2);
        index.apply_put(5, loc(3, 32));
        assert!(index.segment(2).is_some_and(SegmentStats::is_dead));
        assert_eq!(index.live_in(3), vec![(5, loc(3, 32))]);
        index.apply_remove(5, 3);
        // Both older puts still on disk: the newest tombstone holds them down.
        assert_eq!(index.pinned_in(3), vec![5]);
        index.forget_segment(1);
        assert_eq!(index.pinned_in(3), vec![5]);
        // The put in segment 3 is its own tombstone's neighbour: still on disk.
        assert_eq!(index.segment(3).map(|s| s.pins), Some(1));
    }
}
