//! The crate's one error type, for the index and the Sieve state alike.
//! I/O failures take the Maildir crate's shape ([`StoreError`], built by
//! [`io`]), so a full disk or quota is `StoreError::NoSpace` here as in
//! the Maildir. Must not carry a message's contents, only the operation,
//! the path and the cause.

use std::path::{Path, PathBuf};

use mailstow_maildir::{io_err, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// I/O (named by operation and path), or a Maildir folder name that is
    /// not valid or not there.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {}: schema version {found} is newer than this mailstow knows ({known})", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Maps an I/O error at `path` during `op`, recognising a full disk or
/// quota (as [`mailstow_maildir::io_err`] does).
pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> IndexError + 'a {
    let store = io_err(op, path);
    move |source| IndexError::Store(store(source))
}

/// Maps an SQLite error on the database at `path`.
pub(crate) fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> IndexError + Copy + '_ {
    move |source| IndexError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_the_maildirs_no_space_and_other_errors_name_op_and_path() {
        let path = Path::new("/home/u/.mailstow/index.sqlite-wal");
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let e = io("fsync", path)(std::io::Error::from_raw_os_error(errno));
            assert!(
                matches!(&e, IndexError::Store(StoreError::NoSpace { path: p }) if p == path),
                "{e}"
            );
        }
        let e = io("fsync", path)(std::io::Error::from_raw_os_error(libc::EIO));
        assert!(
            matches!(&e, IndexError::Store(StoreError::Io { op: "fsync", .. })),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("fsync /home/u/.mailstow/index.sqlite-wal: "),
            "{e}"
        );
    }
}
