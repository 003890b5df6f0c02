//! The exclusive lock of a store directory: `flock` on its `LOCK` file, taken without waiting
//! and held (by keeping the file open) until the store is dropped. The kernel releases it when
//! the process dies, so a crashed owner never leaves the store locked.

use crate::persist::segment::classify;
use crate::persist::StoreError;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

pub const LOCK_FILE: &str = "LOCK";

/// Holds the lock while alive.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| classify(e, "opening the lock file", &path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
                Err(StoreError::Locked(format!(
                    "{} is in use by another store (another process?)",
                    dir.display()
                )))
            }
            Err(errno) => Err(classify(
                std::io::Error::from_raw_os_error(errno.raw_os_error()),
                "locking",
                &path,
            )),
        }
    }
}
