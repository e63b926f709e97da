//! Which file a path names: how a store notices that its SQLite database file was deleted or
//! replaced on disk while its connections kept the old one open.
//!
//! An open SQLite connection reads the file it opened, not the path: after `rm x.db*` and a new
//! `x.db` made by another process, it would read the deleted file forever. So each connection
//! remembers the identity (device and inode) of the file it opened, and each operation compares
//! it with what the path names now, at the cost of one `stat`.

use std::io;
use std::path::{Path, PathBuf};

/// The identity of a file: it changes when the path is made to name another file, even one at
/// the same place with the same contents. While a connection holds the old file open, its
/// inode cannot be handed to a new file, so a replacement always compares different.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

/// What `path` names now: `Ok(None)` when nothing (deleted or moved away), `Err` when it
/// cannot be told (then nothing is concluded).
#[cfg(unix)]
pub(crate) fn identify(path: &Path) -> io::Result<Option<FileId>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Elsewhere an open file cannot be deleted or replaced, so there is nothing to notice.
#[cfg(not(unix))]
pub(crate) fn identify(_: &Path) -> io::Result<Option<FileId>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Creates an empty file at `path`, failing with `AlreadyExists` when there is one: of
/// processes creating it at once, exactly one succeeds. (An empty file is an empty SQLite
/// database.) Readable by all and writable by its owner, as SQLite makes a database file.
pub(crate) fn create_new(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    options.open(path).map(drop)
}

/// The database file as SQLite resolved it (`PRAGMA database_list`: an absolute path, a `file:`
/// URI's options removed); `None` for an in-memory or temporary database, which has no path.
pub(crate) fn database_path(file: Option<String>) -> Option<PathBuf> {
    file.filter(|f| !f.is_empty()).map(PathBuf::from)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_another_identity() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.db");
        assert_eq!(identify(&path).ok(), Some(None));
        std::fs::write(&path, b"one").unwrap_or_else(|e| panic!("{e}"));
        let first = identify(&path).ok().flatten();
        assert!(first.is_some());
        // Held open, as a connection holds it: the new file cannot reuse its inode.
        let _open = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, b"one").unwrap_or_else(|e| panic!("{e}"));
        let second = identify(&path).ok().flatten();
        assert!(second.is_some());
        assert_ne!(first, second);
    }
}
