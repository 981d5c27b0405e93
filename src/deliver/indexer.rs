//! The index writers: threads that record durable deliveries in their
//! mailboxes' indexes after the reply, in batches (one transaction, one
//! full-text segment and, in dovecot mode, one uidlist append per batch and
//! mailbox). Must not hold up a reply or hold unbounded memory: a full queue
//! sends the row back to the delivery thread to write itself, a row is
//! written with its mailbox owner's rights (per-user mode), and a row
//! that cannot be written is left to the next reconcile (the Maildir is the
//! truth; the index is rebuilt from it).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::config::IndexConfig;
use mailstow_index::{self as index, Delivered};
use mailstow_maildir::{Maildir, Saved};

/// Rows one writer takes into one batch at most.
const BATCH_MAX: usize = 512;
/// How long a writer waits after the first row for more to join its batch.
/// Rows are written after the reply, so this delays only their appearance
/// in the index; each batch saves a transaction, a full-text segment and
/// the WAL frames of the pages the rows share.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Rows waiting, per writer, before deliveries write their own.
const QUEUE_MAX: usize = 1024;
/// Header bytes waiting, over all writers, before deliveries write their own.
const QUEUED_BYTES_MAX: usize = 8 << 20;

/// One durable message to record.
pub struct Row {
    /// Whose rights the row is written with (per-user rights mode); None:
    /// this process's own.
    pub identity: Option<crate::privilege::Identity>,
    pub user: String,
    pub maildir: Maildir,
    pub home: PathBuf,
    pub saved: Saved,
    /// The message's header block (what the index reads).
    pub head: Vec<u8>,
    pub received: SystemTime,
}

pub struct IndexWriters {
    queues: Mutex<Vec<SyncSender<Box<Row>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    queued_bytes: Arc<AtomicUsize>,
}

impl IndexWriters {
    /// Starts `n` writer threads (at least one).
    pub fn start(cfg: &IndexConfig, n: usize) -> std::io::Result<IndexWriters> {
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::sync_channel(QUEUE_MAX);
            let (cfg, bytes) = (cfg.clone(), queued_bytes.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("index-{i}"))
                    .spawn(move || writer(&cfg, &rx, &bytes))?,
            );
            queues.push(tx);
        }
        Ok(IndexWriters {
            queues: Mutex::new(queues),
            threads: Mutex::new(threads),
            queued_bytes,
        })
    }

    /// Queues a row for its mailbox's writer (rows of one mailbox always go
    /// to the same one, in order). Gives the row back when the queue is
    /// full or stopped: the caller writes it.
    pub fn submit(&self, row: Box<Row>) -> Result<(), Box<Row>> {
        let len = row.head.len();
        if self.queued_bytes.fetch_add(len, Ordering::SeqCst) + len > QUEUED_BYTES_MAX {
            self.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            return Err(row);
        }
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let sent = match queues.len() {
            0 => Err(row),
            n => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                row.home.hash(&mut h);
                queues[(h.finish() % n as u64) as usize]
                    .try_send(row)
                    .map_err(|e| match e {
                        TrySendError::Full(r) | TrySendError::Disconnected(r) => r,
                    })
            }
        };
        if sent.is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::SeqCst);
        }
        sent
    }

    /// Writes every queued row and stops the writers. Later rows are given
    /// back by `submit`.
    pub fn finish(&self) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for IndexWriters {
    fn drop(&mut self) {
        self.finish();
    }
}

fn writer(cfg: &IndexConfig, rx: &Receiver<Box<Row>>, queued_bytes: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH_MAX {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(row) => batch.push(row),
                // Timed out, or stopping: write what there is.
                Err(_) => break,
            }
        }
        let bytes: usize = batch.iter().map(|r| r.head.len()).sum();
        // By mailbox, each in the order delivered.
        let mut by_home: HashMap<&PathBuf, Vec<&Row>> = HashMap::new();
        for row in &batch {
            by_home.entry(&row.home).or_default().push(&**row);
        }
        for rows in by_home.values() {
            write_rows(cfg, rows);
        }
        drop(by_home);
        queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }
}

/// Records the rows of one mailbox in one transaction; when that fails,
/// one by one, so that one bad row does not cost the others theirs.
pub fn write_rows(cfg: &IndexConfig, rows: &[&Row]) {
    let Some(first) = rows.first() else { return };
    // The index lives in the user's home: written as the user (a no-op
    // guard on a delivery thread that already acts as them).
    let _rights = match first.identity.as_ref().map(crate::privilege::AsUser::enter) {
        Some(Err(e)) => {
            tracing::warn!(user = %first.user, error = %e, "could not index as the mailbox's owner; the next reconcile will");
            return;
        }
        other => other.map(Result::ok),
    };
    let delivered: Vec<Delivered<'_>> = rows
        .iter()
        .map(|r| Delivered {
            saved: &r.saved,
            head: &r.head,
            received: r.received,
        })
        .collect();
    match index::record(&first.maildir, &first.home, cfg, &delivered) {
        Ok(r) => {
            tracing::debug!(user = %first.user, rows = rows.len(), deferred = (r == index::Recorded::Deferred), "indexed")
        }
        Err(e) if rows.len() > 1 => {
            tracing::debug!(user = %first.user, error = %e, "batch not indexed; one by one");
            for row in rows {
                write_rows(cfg, &[row]);
            }
        }
        Err(e) => {
            tracing::warn!(user = %first.user, base = %first.saved.base, error = %e, "could not index; the next reconcile will")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FolderEncoding, UidMode};
    use mailstow_index::Index;

    fn row(home: &std::path::Path, subject: &str) -> Box<Row> {
        let maildir = Maildir::new(home.join("Maildir"), None, FolderEncoding::Utf7, "test");
        let (saved, msg) = mailstow_maildir::save_test_message(&maildir, "INBOX", subject, &[]);
        Box::new(Row {
            identity: None,
            user: "u".into(),
            maildir,
            home: home.to_path_buf(),
            saved,
            head: msg,
            received: SystemTime::now(),
        })
    }

    #[test]
    fn queued_rows_are_all_recorded_in_delivery_order_by_finish_and_later_ones_given_back() {
        let cfg = IndexConfig {
            enabled: true,
            uids: UidMode::Own,
            special_use: Default::default(),
        };
        let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let w = IndexWriters::start(&cfg, 2).unwrap();
        for i in 0..40 {
            for h in &homes {
                assert!(w.submit(row(h.path(), &format!("m{i}"))).is_ok());
            }
        }
        w.finish();
        assert!(w.submit(row(homes[0].path(), "late")).is_err());
        assert_eq!(w.queued_bytes.load(Ordering::SeqCst), 0);
        for h in &homes {
            let maildir = Maildir::new(h.path().join("Maildir"), None, FolderEncoding::Utf7, "t");
            let ix = Index::open(maildir, h.path(), &cfg).unwrap();
            let got: Vec<(u32, String)> = ix
                .list(Some("INBOX"))
                .unwrap()
                .into_iter()
                .map(|r| (r.uid, r.subject.unwrap_or_default()))
                .collect();
            let want: Vec<(u32, String)> = (0..40).map(|i| (i + 1, format!("m{i}"))).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_row_over_the_byte_budget_is_given_back_for_the_delivery_to_write() {
        let cfg = IndexConfig {
            enabled: true,
            uids: UidMode::Own,
            special_use: Default::default(),
        };
        let home = tempfile::tempdir().unwrap();
        let w = IndexWriters::start(&cfg, 1).unwrap();
        w.queued_bytes.store(QUEUED_BYTES_MAX, Ordering::SeqCst);
        let back = w.submit(row(home.path(), "over")).unwrap_err();
        assert_eq!(back.head, b"Subject: over\r\n\r\nbody\r\n");
        assert_eq!(w.queued_bytes.load(Ordering::SeqCst), QUEUED_BYTES_MAX);
        // The caller writes it itself; it is in the index at once.
        write_rows(&cfg, &[&back]);
        let maildir = Maildir::new(home.path().join("Maildir"), None, FolderEncoding::Utf7, "t");
        let ix = Index::open(maildir, home.path(), &cfg).unwrap();
        assert_eq!(ix.list(None).unwrap().len(), 1);
        w.queued_bytes.store(0, Ordering::SeqCst);
        w.finish();
    }
}
