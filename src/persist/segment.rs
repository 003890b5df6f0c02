//! Segment files on disk: their names, creating one (header written and durable, directory
//! entry durable), listing them in log order, and the error classification shared by every
//! file operation of the store.

use crate::persist::record::{encode_header, HEADER_LEN};
use crate::persist::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".seg";

/// `0000000000000001.seg`: sixteen hex digits sort in log order.
pub fn path_of(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:016x}{SUFFIX}"))
}

fn sequence_of(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// Segment numbers found in `dir`, ascending. Other files (the lock file) are left alone.
pub fn list(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| classify(e, "listing the store", dir))?;
    for entry in entries {
        let entry = entry.map_err(|e| classify(e, "listing the store", dir))?;
        if let Some(sequence) = entry.file_name().to_str().and_then(sequence_of) {
            found.push(sequence);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Opens an existing segment for appending.
pub fn open_for_append(dir: &Path, sequence: u64) -> Result<File, StoreError> {
    let path = path_of(dir, sequence);
    OpenOptions::new()
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|e| classify(e, "opening", &path))
}

/// Creates segment `sequence` with its header, durable together with its directory entry
/// before any record goes into it. A half-made file is removed again.
pub fn create(dir: &Path, dir_handle: &File, sequence: u64) -> Result<File, StoreError> {
    let path = path_of(dir, sequence);
    let made = OpenOptions::new()
        .append(true)
        .read(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(&encode_header(sequence))?;
            file.sync_data()?;
            Ok(file)
        });
    match made.and_then(|file| dir_handle.sync_all().map(|()| file)) {
        Ok(file) => Ok(file),
        Err(error) => {
            let _ = std::fs::remove_file(&path);
            Err(classify(error, "creating", &path))
        }
    }
}

/// Removes a dead segment; the removal is durable before the call returns, because a segment
/// coming back after a crash could revive keys whose tombstones were deleted after it.
pub fn delete(dir: &Path, dir_handle: &File, sequence: u64) -> Result<(), StoreError> {
    let path = path_of(dir, sequence);
    std::fs::remove_file(&path).map_err(|e| classify(e, "deleting", &path))?;
    dir_handle
        .sync_all()
        .map_err(|e| classify(e, "syncing the directory of", &path))
}

/// The size of a segment that only has its header.
pub const EMPTY_LEN: u64 = HEADER_LEN as u64;

/// ENOSPC and EDQUOT are "no space", EROFS is "read-only"; everything else (EIO, EACCES...)
/// is I/O.
pub fn classify(error: io::Error, doing: &str, path: &Path) -> StoreError {
    let text = format!("{doing} {}: {error}", path.display());
    match error.raw_os_error() {
        Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => StoreError::NoSpace(text),
        Some(code) if code == libc::EROFS => StoreError::ReadOnly(text),
        _ => StoreError::Io(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_log_order_and_foreign_files_are_ignored() {
        let dir = Path::new("/store");
        let name = |s: u64| {
            path_of(dir, s)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .unwrap_or_default()
        };
        assert_eq!(name(1), "0000000000000001.seg");
        assert_eq!(sequence_of(&name(0xabc)), Some(0xabc));
        assert_eq!(sequence_of("LOCK"), None);
        assert_eq!(sequence_of("0000000000000001.seg.tmp"), None);
        assert_eq!(sequence_of("000000000000001.seg"), None);
        assert!(name(9) < name(10));
    }
}
