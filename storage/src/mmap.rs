//! Read-only memory maps of immutable block files. This is the only module with `unsafe`.
//!
//! Block files are written under a temporary name, fsynced and renamed into place, and are
//! never modified afterwards; they are unlinked only when the last reader has dropped its
//! handle. That is what makes handing out `&[u8]` views of the mapping sound.

#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::StorageError;

/// A cheaply cloneable view of a whole read-only file.
#[derive(Clone)]
pub(crate) struct MappedFile {
    map: Arc<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path) -> Result<MappedFile, StorageError> {
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len();
        if len == 0 {
            // Mapping an empty file fails on some platforms; an empty file is simply corrupt here.
            return Err(StorageError::Corruption {
                path: path.to_path_buf(),
                offset: 0,
                reason: "file is empty".into(),
            });
        }
        // SAFETY: block files are immutable once renamed into place (see the module docs):
        // nothing writes to or truncates them while they are mapped, and they are deleted only
        // after every `MappedFile` clone has been dropped, so the mapping never changes or
        // disappears underneath the slices handed out by `bytes`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| StorageError::io(path, e))?;
        Ok(MappedFile { map: Arc::new(map) })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[..]
    }
}
