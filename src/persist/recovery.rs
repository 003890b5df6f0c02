//! Recovery: reads every segment in log order, rebuilds the index and the live records, and
//! decides what to do with damage (docs/persistence-format.md, "Recovery"):
//!
//! - the end of the last segment is where a crash cuts writes short: from the end of its last
//!   good record on, everything is discarded (counted) and cut off, so new records follow good
//!   data;
//! - a record whose frame head checks out but whose body does not is stepped over (counted) in
//!   any segment: its length is trustworthy, so the records after it are still found;
//! - an unreadable frame head or header in an older segment cannot be a torn write (a segment
//!   is durable before the next one is created), and nothing after it can be located:
//!   `StoreError::Corrupt`, rather than guessing;
//! - a segment of an unknown format version: `StoreError::Corrupt`.

use crate::persist::index::{Index, Loc};
use crate::persist::record::{decode_frame, decode_header, Frame, HeaderError, Op, HEADER_LEN};
use crate::persist::segment::{self, classify};
use crate::persist::StoreError;
use std::collections::BTreeMap;
use std::path::Path;

/// What the segments say.
#[derive(Debug, Default)]
pub struct Scan {
    pub index: Index,
    pub records: BTreeMap<u64, Vec<u8>>,
    pub discarded_bytes: u64,
    pub discarded_records: u64,
    /// The last segment and the length of its good part, when its header was readable.
    pub head: Option<(u64, u64)>,
    /// The last segment, when its header was not (it was being created): to be removed.
    pub unfinished: Option<u64>,
    /// The highest segment number seen.
    pub last_sequence: u64,
}

pub fn scan(dir: &Path) -> Result<Scan, StoreError> {
    let sequences = segment::list(dir)?;
    let mut scan = Scan::default();
    for (i, &sequence) in sequences.iter().enumerate() {
        let last = i + 1 == sequences.len();
        scan.last_sequence = sequence;
        let path = segment::path_of(dir, sequence);
        let bytes = std::fs::read(&path).map_err(|e| classify(e, "reading", &path))?;
        match decode_header(&bytes, sequence) {
            Ok(()) => {}
            Err(HeaderError::Unreadable) if last => {
                // Created but its header never became durable: nothing in it was promised.
                scan.discarded_bytes += bytes.len() as u64;
                scan.unfinished = Some(sequence);
                break;
            }
            Err(HeaderError::Unreadable) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: segment header unreadable",
                    path.display()
                )))
            }
            Err(HeaderError::UnknownVersion(version)) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: format version {version}, this library reads version {}",
                    path.display(),
                    crate::persist::record::FORMAT_VERSION
                )))
            }
            Err(HeaderError::WrongSequence(named)) => {
                return Err(StoreError::Corrupt(format!(
                    "{}: the header names segment {named:016x}",
                    path.display()
                )))
            }
        }
        let good_len = scan_segment(&mut scan, sequence, &bytes, last, &path)?;
        if last {
            scan.head = Some((sequence, good_len));
        }
    }
    Ok(scan)
}

/// Applies the records of one segment; returns the length of its good part.
fn scan_segment(
    scan: &mut Scan,
    sequence: u64,
    bytes: &[u8],
    last: bool,
    path: &Path,
) -> Result<u64, StoreError> {
    scan.index.add_segment(sequence, HEADER_LEN as u64);
    let mut offset = HEADER_LEN;
    let mut good_end = HEADER_LEN;
    // Damaged records since the last good one: kept in the file if a good record follows,
    // cut off with the tail otherwise.
    let mut pending_bad = 0u64;
    while offset < bytes.len() {
        match decode_frame(&bytes[offset..]) {
            Frame::Record { key, op, len } => {
                if pending_bad > 0 {
                    scan.index.grow(sequence, (offset - good_end) as u64);
                    scan.discarded_records += pending_bad;
                    scan.discarded_bytes += (offset - good_end) as u64;
                    pending_bad = 0;
                }
                scan.index.grow(sequence, len as u64);
                match op {
                    Op::Put(value) => {
                        let loc = Loc {
                            segment: sequence,
                            offset: offset as u64,
                            len: len as u64,
                        };
                        scan.index.apply_put(key, loc);
                        scan.records.insert(key, value.to_vec());
                    }
                    Op::Remove => {
                        scan.index.apply_remove(key, sequence);
                        scan.records.remove(&key);
                    }
                }
                offset += len;
                good_end = offset;
            }
            Frame::BadBody { len } => {
                pending_bad += 1;
                offset += len;
            }
            Frame::Unreadable if last => {
                pending_bad += 1;
                break;
            }
            Frame::Unreadable => {
                return Err(StoreError::Corrupt(format!(
                    "{}: unreadable record at offset {offset} of an older segment",
                    path.display()
                )))
            }
        }
    }
    if last {
        // The tail after the last good record: torn writes, cut off by the caller.
        if good_end < bytes.len() {
            scan.discarded_records += pending_bad.max(1);
            scan.discarded_bytes += (bytes.len() - good_end) as u64;
        }
        Ok(good_end as u64)
    } else {
        // Damaged records at the very end of an older segment are stepped over like any other.
        if pending_bad > 0 {
            scan.index.grow(sequence, (bytes.len() - good_end) as u64);
            scan.discarded_records += pending_bad;
            scan.discarded_bytes += (bytes.len() - good_end) as u64;
        }
        Ok(bytes.len() as u64)
    }
}
