//! Rows waiting for an index that is not open: `{home}/.mailstow/index.pending`,
//! an append-only file of delivered messages (where the file is, its
//! sizes, its receive time and its header block) that the next open of the
//! index records, in order. Appending costs one open and one write where
//! opening the database costs a schema parse and a WAL recovery; a mailbox
//! whose index is cold pays that once per many deliveries. Must not be
//! trusted: the Maildir is the truth, so a record that is torn (a crash
//! mid-write) or malformed ends the reading, and what it held is left to
//! the next reconcile. Must not lose a record appended while it is being
//! taken: appenders hold a shared lock, the taker an exclusive one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailstow_maildir::{Owner, Saved};

use crate::error::{io, IndexError};
use crate::Delivered;

pub const PENDING_FILE: &str = "index.pending";

/// A pending file is not appended to past this length (its index cannot
/// be opened, say): later messages are left to the next reconcile.
pub(crate) const MAX_LEN: u64 = 8 << 20;

/// Each record starts with these four bytes and its payload's length.
const MAGIC: &[u8; 4] = b"MSP1";

/// A record read back: what [`Delivered`] borrows.
pub(crate) struct Record {
    pub saved: Saved,
    pub head: Vec<u8>,
    pub received: SystemTime,
}

impl Record {
    pub(crate) fn delivered(&self) -> Delivered<'_> {
        Delivered {
            saved: &self.saved,
            head: &self.head,
            received: self.received,
        }
    }
}

/// Appends `batch` to the pending file in `dir` (created 0600, owned by
/// `owner` when running as root) in one write; returns the file's length
/// after it (as far as this append knows).
pub(crate) fn append(
    dir: &Path,
    owner: Option<Owner>,
    batch: &[Delivered<'_>],
) -> Result<u64, IndexError> {
    let path = dir.join(PENDING_FILE);
    let mut bytes = Vec::new();
    for d in batch {
        encode(d, &mut bytes);
    }
    crate::db::create_private_file(&path, owner.filter(|_| nix::unistd::geteuid().is_root()))?;
    let Some(mut file) = open(&path)? else {
        let e = std::io::Error::from(ErrorKind::NotFound);
        return Err(io("open", &path)(e));
    };
    lock(&file, libc::LOCK_SH).map_err(io("lock", &path))?;
    let before = file.metadata().map_err(io("stat", &path))?.len();
    if before > MAX_LEN {
        let e = std::io::Error::new(ErrorKind::FileTooLarge, "pending index rows over 8 MiB");
        return Err(io("append to", &path)(e));
    }
    file.write_all(&bytes).map_err(io("append to", &path))?;
    Ok(before + bytes.len() as u64)
}

/// The pending file, locked against appenders, and its records (up to the
/// first torn or malformed one). None when there is none. The caller
/// records them, then [`clear`]s the file.
pub(crate) fn take(dir: &Path) -> Result<Option<(File, Vec<Record>)>, IndexError> {
    let path = dir.join(PENDING_FILE);
    let Some(mut file) = open(&path)? else {
        return Ok(None);
    };
    lock(&file, libc::LOCK_EX).map_err(io("lock", &path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io("read", &path))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let (records, rest) = decode_all(&bytes);
    if rest > 0 {
        tracing::warn!(path = %path.display(), bytes = rest, "torn or malformed pending index rows skipped; the next reconcile finds their messages");
    }
    Ok(Some((file, records)))
}

/// Are rows waiting in `dir`'s pending file? (One stat: a file emptied
/// by [`clear`] stays, at length 0.)
pub(crate) fn waiting(dir: &Path) -> bool {
    std::fs::metadata(dir.join(PENDING_FILE)).is_ok_and(|m| m.len() > 0)
}

/// Empties a taken pending file (its records are recorded).
pub(crate) fn clear(file: &File, dir: &Path) -> Result<(), IndexError> {
    file.set_len(0)
        .map_err(io("truncate", &dir.join(PENDING_FILE)))
}

/// The pending file for appending and reading; None when there is none.
fn open(path: &Path) -> Result<Option<File>, IndexError> {
    let opened = OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match opened {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("open", path)(e)),
    }
}

fn lock(file: &File, how: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), how) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

// ---------------------------------------------------------------------------
// The record format: MAGIC, u32 payload length, then the payload: path,
// base, storage name (each u32 length + bytes), size, vsize (u64), receive
// time (i64 seconds, u32 nanoseconds), header block (u32 length + bytes).
// Little-endian.
// ---------------------------------------------------------------------------

pub(crate) fn encode(d: &Delivered<'_>, out: &mut Vec<u8>) {
    use std::os::unix::ffi::OsStrExt;
    let mut p = Vec::new();
    put_bytes(&mut p, d.saved.path.as_os_str().as_bytes());
    put_bytes(&mut p, d.saved.base.as_bytes());
    put_bytes(&mut p, d.saved.storage_name.as_bytes());
    p.extend_from_slice(&d.saved.size.to_le_bytes());
    p.extend_from_slice(&d.saved.vsize.to_le_bytes());
    let (secs, nanos) = match d.received.duration_since(UNIX_EPOCH) {
        Ok(t) => (
            i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            t.subsec_nanos(),
        ),
        Err(_) => (0, 0),
    };
    p.extend_from_slice(&secs.to_le_bytes());
    p.extend_from_slice(&nanos.to_le_bytes());
    put_bytes(&mut p, d.head);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&p);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The records of `bytes` up to the first bad one, and how many bytes
/// were left unread.
fn decode_all(mut bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let Some((record, rest)) = decode(bytes) else {
            break;
        };
        records.push(record);
        bytes = rest;
    }
    (records, bytes.len())
}

fn decode(bytes: &[u8]) -> Option<(Record, &[u8])> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (len, rest) = take_u32(rest)?;
    let len = usize::try_from(len).ok()?;
    if rest.len() < len {
        return None;
    }
    let (mut p, rest) = rest.split_at(len);
    let path = take_bytes(&mut p)?;
    let base = String::from_utf8(take_bytes(&mut p)?.to_vec()).ok()?;
    let storage_name = String::from_utf8(take_bytes(&mut p)?.to_vec()).ok()?;
    let size = u64::from_le_bytes(take_n(&mut p)?);
    let vsize = u64::from_le_bytes(take_n(&mut p)?);
    let secs = i64::from_le_bytes(take_n(&mut p)?);
    let nanos = u32::from_le_bytes(take_n(&mut p)?);
    let head = take_bytes(&mut p)?.to_vec();
    if !p.is_empty() || nanos >= 1_000_000_000 {
        return None;
    }
    let received = UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos);
    let saved = Saved {
        path: PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path)),
        base,
        storage_name,
        size,
        vsize,
        created_folder: false,
    };
    Some((
        Record {
            saved,
            head,
            received,
        },
        rest,
    ))
}

fn take_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (n, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*n), rest))
}

fn take_n<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    let (n, rest) = b.split_first_chunk::<N>()?;
    *b = rest;
    Some(*n)
}

fn take_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = take_u32(b)?;
    let len = usize::try_from(len).ok()?;
    if rest.len() < len {
        return None;
    }
    let (v, rest) = rest.split_at(len);
    *b = rest;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(n: u32) -> Saved {
        Saved {
            path: PathBuf::from(format!("/h/Maildir/new/{n}.M1P2.host,S=10,W=11")),
            base: format!("{n}.M1P2.host,S=10,W=11"),
            storage_name: if n.is_multiple_of(2) {
                String::new()
            } else {
                "Lists.Rust".into()
            },
            size: 10 + u64::from(n),
            vsize: 11 + u64::from(n),
            created_folder: true,
        }
    }

    fn encoded(n: u32) -> Vec<u8> {
        let s = saved(n);
        let head = format!("Subject: m{n}\r\n\r\n").into_bytes();
        let received = UNIX_EPOCH + Duration::new(1_700_000_000 + u64::from(n), n);
        let mut out = Vec::new();
        encode(
            &Delivered {
                saved: &s,
                head: &head,
                received,
            },
            &mut out,
        );
        out
    }

    #[test]
    fn records_read_back_as_written_in_order() {
        let bytes: Vec<u8> = (0..3).flat_map(encoded).collect();
        let (records, rest) = decode_all(&bytes);
        assert_eq!(rest, 0);
        assert_eq!(records.len(), 3);
        for (n, r) in (0..3u32).zip(&records) {
            let want = saved(n);
            assert_eq!(r.saved.path, want.path);
            assert_eq!(r.saved.base, want.base);
            assert_eq!(r.saved.storage_name, want.storage_name);
            assert_eq!((r.saved.size, r.saved.vsize), (want.size, want.vsize));
            assert_eq!(r.head, format!("Subject: m{n}\r\n\r\n").into_bytes());
            assert_eq!(
                r.received,
                UNIX_EPOCH + Duration::new(1_700_000_000 + u64::from(n), n)
            );
        }
    }

    #[test]
    fn a_torn_tail_or_garbage_ends_the_reading_after_the_good_records() {
        let mut bytes: Vec<u8> = (0..2).flat_map(encoded).collect();
        let good = bytes.len();
        let third = encoded(2);
        for cut in [1, 4, 8, third.len() - 1] {
            let mut torn = bytes.clone();
            torn.extend_from_slice(&third[..cut]);
            let (records, rest) = decode_all(&torn);
            assert_eq!((records.len(), rest), (2, cut), "cut at {cut}");
        }
        bytes.extend_from_slice(b"MSP1\xff\xff\xff\xffjunk");
        let (records, rest) = decode_all(&bytes);
        assert_eq!((records.len(), rest), (2, bytes.len() - good));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let (records, rest) = decode_all(&bytes);
            proptest::prop_assert!(rest <= bytes.len());
            proptest::prop_assert!(records.len() <= bytes.len() / 8);
        }
    }
}
