//! Unit tests of the index's UID and MODSEQ bookkeeping that need states a
//! real run only reaches through a power loss (commits undone) or a
//! reboot; the end-to-end behaviour is in tests/index.rs. Must not need
//! any peer.

use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

use rusqlite::params;

use super::*;
use mailstow_maildir::FolderEncoding;
use mailstow_maildir::{Body, Content, Flags};

fn cfg() -> IndexConfig {
    IndexConfig {
        enabled: true,
        uids: UidMode::Own,
        special_use: Default::default(),
    }
}

fn maildir(home: &Path) -> Maildir {
    Maildir::new(home.join("Maildir"), None, FolderEncoding::Utf7, "test")
}

/// Saves a message and records it; returns its UID.
fn deliver(ix: &Index, subject: &str) -> u32 {
    let msg = format!("Subject: {subject}\r\n\r\nbody\r\n");
    let content = Content {
        header: b"",
        body: Body::Bytes(msg.as_bytes()),
        bare_lf: 0,
    };
    let saved = ix
        .maildir()
        .save(
            "INBOX",
            true,
            &Flags::default(),
            &content,
            SystemTime::now(),
        )
        .unwrap();
    ix.add_delivered(&saved, msg.as_bytes(), SystemTime::now())
        .unwrap()
}

fn folder_numbers(ix: &Index) -> (i64, i64, i64, i64) {
    ix.conn
        .query_row(
            "SELECT uidnext, uid_reserved, highestmodseq, modseq_reserved FROM folders
             WHERE storage_name = ''",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

#[test]
fn reservations_stay_ahead_of_what_was_handed_out() {
    let home = tempfile::tempdir().unwrap();
    let ix = Index::open(maildir(home.path()), home.path(), &cfg()).unwrap();
    for i in 0..3 {
        assert_eq!(deliver(&ix, &format!("m{i}")), i + 1);
    }
    let (uidnext, uid_res, modseq, modseq_res) = folder_numbers(&ix);
    assert_eq!(uidnext, 4);
    assert_eq!(
        uid_res,
        2 + UID_RESERVE,
        "raised once, by the first delivery"
    );
    assert!(modseq < modseq_res);
}

#[test]
fn after_a_reboot_lost_commits_cannot_give_a_seen_uid_again() {
    let home = tempfile::tempdir().unwrap();
    let ix = Index::open(maildir(home.path()), home.path(), &cfg()).unwrap();
    for i in 0..3 {
        deliver(&ix, &format!("m{i}"));
    }
    let (_, uid_res, _, modseq_res) = folder_numbers(&ix);
    // A power loss undid the commits of UIDs 2 and 3 (a reader saw them);
    // the machine came back with another boot id.
    ix.conn
        .execute_batch(
            "DELETE FROM messages WHERE uid >= 2;
             UPDATE folders SET uidnext = 2, highestmodseq = 2;
             UPDATE meta SET value = value + 1 WHERE key = 'boot_id';",
        )
        .unwrap();
    drop(ix);
    let ix = Index::open(maildir(home.path()), home.path(), &cfg()).unwrap();
    let uid = deliver(&ix, "after the reboot");
    assert_eq!(i64::from(uid), uid_res, "UIDNEXT jumped to the reservation");
    let (_, _, modseq, _) = folder_numbers(&ix);
    assert!(modseq > modseq_res);
    // The two lost files are found again, above every UID given before.
    ix.reconcile().unwrap();
    let uids: Vec<i64> = ix
        .conn
        .prepare("SELECT uid FROM messages ORDER BY uid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(uids.len(), 4);
    assert_eq!(uids[0], 1);
    assert!(uids[1..].iter().all(|&u| u >= uid_res), "{uids:?}");
}

#[test]
fn a_new_connection_in_the_same_boot_does_not_jump() {
    let home = tempfile::tempdir().unwrap();
    let ix = Index::open(maildir(home.path()), home.path(), &cfg()).unwrap();
    deliver(&ix, "one");
    drop(ix);
    let ix = Index::open(maildir(home.path()), home.path(), &cfg()).unwrap();
    assert_eq!(deliver(&ix, "two"), 2);
    let n: i64 = ix
        .conn
        .query_row(
            "SELECT count(*) FROM meta WHERE key = 'boot_id' AND value = ?1",
            params![boot_id().unwrap_or(0)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_rows() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(INDEX_DIR);
    {
        let (conn, _) = crate::db::open(&dir, INDEX_FILE, &MIGRATIONS[..1], None).unwrap();
        conn.execute_batch(
            "INSERT INTO folders (storage_name, display_name, uidvalidity, uidnext, highestmodseq)
             VALUES ('', 'INBOX', 7, 5, 9);",
        )
        .unwrap();
    }
    let ix = Index::open(maildir(home.path()), home.path(), &cfg()).unwrap();
    let v: i64 = ix
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, MIGRATIONS.len() as i64);
    // No reservation was recorded in version 1: the first write makes one
    // from what is there.
    assert_eq!(deliver(&ix, "x"), 5);
    let (uidnext, uid_res, _, _) = folder_numbers(&ix);
    assert_eq!((uidnext, uid_res), (6, 6 + UID_RESERVE));
}

/// Saves a message into `folder` (created when missing) without indexing it.
fn save(ix: &Index, folder: &str, subject: &str, flags: &[&str]) -> (Saved, Vec<u8>) {
    mailstow_maildir::save_test_message(ix.maildir(), folder, subject, flags)
}

fn subjects_and_uids(ix: &Index, folder: &str) -> Vec<(String, u32, Vec<String>)> {
    ix.list(Some(folder))
        .unwrap()
        .into_iter()
        .map(|r| (r.subject.unwrap_or_default(), r.uid, r.flags))
        .collect()
}

/// A fresh index in a temporary home, with UIDs of `mode`.
fn index_in(mode: UidMode) -> (tempfile::TempDir, Index) {
    let home = tempfile::tempdir().unwrap();
    let cfg = IndexConfig {
        uids: mode,
        ..cfg()
    };
    let ix = Index::open(maildir(home.path()), home.path(), &cfg).unwrap();
    (home, ix)
}

/// A delivery received when its file was saved.
fn delivered<'a>(saved: &'a Saved, head: &'a [u8]) -> Delivered<'a> {
    // The time the save gave the file, as the pipeline passes the same
    // receive time to both ("now" may fall in the next second); now when
    // the test has already moved or removed the file.
    let received = std::fs::metadata(&saved.path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    Delivered {
        saved,
        head,
        received,
    }
}

#[test]
fn a_batch_is_recorded_in_order_across_folders_with_keywords() {
    for mode in [UidMode::Own, UidMode::Dovecot] {
        let (_home, ix) = index_in(mode);
        let saved = [
            save(&ix, "INBOX", "one", &[]),
            save(&ix, "Lists", "two", &["$Bench"]),
            save(&ix, "INBOX", "three", &["\\Seen"]),
            save(&ix, "Lists", "four", &[]),
        ];
        let batch: Vec<Delivered<'_>> = saved.iter().map(|(s, h)| delivered(s, h)).collect();
        let uids = ix.add_delivered_batch(&batch).unwrap();
        assert_eq!(uids, vec![1, 1, 2, 2], "{mode:?}");
        assert_eq!(
            subjects_and_uids(&ix, "INBOX"),
            vec![
                ("one".to_owned(), 1, vec![]),
                ("three".to_owned(), 2, vec!["\\Seen".to_owned()])
            ]
        );
        assert_eq!(
            subjects_and_uids(&ix, "Lists"),
            vec![
                ("two".to_owned(), 1, vec!["$Bench".to_owned()]),
                ("four".to_owned(), 2, vec![])
            ]
        );
        if mode == UidMode::Dovecot {
            // One append per folder gave the same UIDs Dovecot will read.
            for ((s, _), uid) in saved.iter().zip(&uids) {
                let dir = ix.maildir().folder_dir(&s.storage_name);
                let list = uidlist::read(&dir).unwrap().unwrap();
                assert_eq!(list.uid_of(&s.base), Some(*uid));
            }
        }
        // A second batch continues where the first ended; a file a
        // reconcile already indexed keeps its UID.
        let (five, head) = save(&ix, "INBOX", "five", &[]);
        let again = delivered(&saved[0].0, &saved[0].1);
        let new = delivered(&five, &head);
        assert_eq!(ix.add_delivered_batch(&[again, new]).unwrap(), vec![1, 3]);
        let problems = ix.verify().unwrap();
        assert!(problems.is_empty(), "{mode:?}: {problems:?}");
    }
}

#[test]
fn a_file_expunged_or_moved_before_its_row_gets_none() {
    for mode in [UidMode::Own, UidMode::Dovecot] {
        let (_home, ix) = index_in(mode);
        let (gone, head1) = save(&ix, "INBOX", "expunged", &[]);
        let (moved, head2) = save(&ix, "INBOX", "moved", &[]);
        let (kept, head3) = save(&ix, "INBOX", "kept", &[]);
        std::fs::remove_file(&gone.path).unwrap();
        let cur = moved.path.parent().unwrap().with_file_name("cur");
        std::fs::rename(&moved.path, cur.join(format!("{}:2,S", moved.base))).unwrap();
        let batch = [
            delivered(&gone, &head1),
            delivered(&moved, &head2),
            delivered(&kept, &head3),
        ];
        assert_eq!(
            ix.add_delivered_batch(&batch).unwrap(),
            vec![0, 0, 1],
            "{mode:?}"
        );
        if mode == UidMode::Dovecot {
            let list = uidlist::read(&ix.maildir().folder_dir(""))
                .unwrap()
                .unwrap();
            assert_eq!(
                list.uid_of(&gone.base),
                None,
                "no uidlist line for a gone file"
            );
        }
        // The reconcile records the moved file, with its flag.
        ix.reconcile().unwrap();
        let rows = subjects_and_uids(&ix, "INBOX");
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows.contains(&("moved".to_owned(), 2, vec!["\\Seen".to_owned()])),
            "{rows:?}"
        );
    }
}

/// Records one delivery of `subject` into INBOX through [`record`].
fn record_one(ix: &Index, home: &Path, cfg: &IndexConfig, subject: &str) -> Recorded {
    let (saved, head) = save(ix, "INBOX", subject, &[]);
    record(ix.maildir(), home, cfg, &[delivered(&saved, &head)]).unwrap()
}

#[test]
fn rows_for_a_cold_index_wait_in_the_pending_file_and_the_next_open_records_them_in_order() {
    for mode in [UidMode::Own, UidMode::Dovecot] {
        let (home, ix) = index_in(mode);
        let cfg = IndexConfig {
            uids: mode,
            ..cfg()
        };
        let pending = home.path().join(INDEX_DIR).join(PENDING_FILE);
        // Not in the pool: deferred, the database untouched.
        for n in 0..3 {
            assert_eq!(
                record_one(&ix, home.path(), &cfg, &format!("m{n}")),
                Recorded::Deferred
            );
        }
        assert!(std::fs::metadata(&pending).unwrap().len() > 0);
        assert!(subjects_and_uids(&ix, "INBOX").is_empty(), "{mode:?}");
        // A torn record after them (a crash mid-append) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&pending)
            .unwrap()
            .write_all(b"MSP1\x40")
            .unwrap();
        let again = Index::open(maildir(home.path()), home.path(), &cfg).unwrap();
        let got: Vec<(String, u32)> = subjects_and_uids(&again, "INBOX")
            .into_iter()
            .map(|(s, u, _)| (s, u))
            .collect();
        assert_eq!(
            got,
            vec![("m0".into(), 1), ("m1".into(), 2), ("m2".into(), 3)],
            "{mode:?}"
        );
        assert_eq!(std::fs::metadata(&pending).unwrap().len(), 0);
        // Applying twice (a crash after the commit, before the truncate) adds nothing.
        let (saved, head) = save(&again, "INBOX", "m3", &[]);
        let mut bytes = Vec::new();
        pending::encode(&delivered(&saved, &head), &mut bytes);
        std::fs::write(&pending, [bytes.clone(), bytes].concat()).unwrap();
        assert_eq!(again.apply_pending().unwrap(), 2);
        assert_eq!(subjects_and_uids(&again, "INBOX").len(), 4, "{mode:?}");
    }
}

/// Records a batch too large to wait in the pending file (DEFER_BELOW
/// messages, "b0", "b1", ...), which leaves the index in the pool.
fn record_large_batch(ix: &Index, home: &Path) -> Recorded {
    let batch: Vec<(Saved, Vec<u8>)> = (0..DEFER_BELOW)
        .map(|n| save(ix, "INBOX", &format!("b{n}"), &[]))
        .collect();
    let rows: Vec<Delivered<'_>> = batch.iter().map(|(s, h)| delivered(s, h)).collect();
    record(ix.maildir(), home, &cfg(), &rows).unwrap()
}

#[test]
fn a_pooled_index_or_a_large_batch_is_written_at_once() {
    let (home, ix) = index_in(UidMode::Own);
    let cfg = cfg();
    let r = record_large_batch(&ix, home.path());
    assert_eq!(r, Recorded::Indexed((1..=DEFER_BELOW as u32).collect()));
    // That write left the index in the pool: the next single row is written too.
    assert_eq!(
        record_one(&ix, home.path(), &cfg, "hot"),
        Recorded::Indexed(vec![DEFER_BELOW as u32 + 1])
    );
    assert!(!home.path().join(INDEX_DIR).join(PENDING_FILE).exists());
}

#[test]
fn rows_left_pending_while_the_index_was_open_go_in_before_the_next_batch() {
    let (home, ix) = index_in(UidMode::Own);
    let cfg = cfg();
    // The first record opens the index into the pool; then another thread
    // (or a pipe delivery) leaves a row in the pending file meanwhile.
    record_large_batch(&ix, home.path());
    let (saved, head) = save(&ix, "INBOX", "left", &[]);
    pending::append(
        &home.path().join(INDEX_DIR),
        None,
        &[delivered(&saved, &head)],
    )
    .unwrap();
    assert!(pending::waiting(&home.path().join(INDEX_DIR)));
    let r = record_one(&ix, home.path(), &cfg, "next");
    let n = DEFER_BELOW as u32;
    assert_eq!(r, Recorded::Indexed(vec![n + 2]));
    let got: Vec<(String, u32)> = subjects_and_uids(&ix, "INBOX")
        .into_iter()
        .map(|(s, u, _)| (s, u))
        .collect();
    assert_eq!(
        got[DEFER_BELOW..],
        [("left".to_owned(), n + 1), ("next".to_owned(), n + 2)]
    );
    assert!(!pending::waiting(&home.path().join(INDEX_DIR)));
}

/// Records one delivery of `subject` whose header block carries `pad`
/// bytes more.
fn record_padded(
    ix: &Index,
    home: &Path,
    subject: &str,
    pad: usize,
) -> Result<Recorded, IndexError> {
    let (saved, _) = save(ix, "INBOX", subject, &[]);
    let head = format!("Subject: {subject}\r\nX-Pad: {}\r\n\r\n", "p".repeat(pad));
    record(
        ix.maildir(),
        home,
        &cfg(),
        &[delivered(&saved, head.as_bytes())],
    )
}

#[test]
fn the_delivery_that_brings_the_pending_file_to_32_kib_records_it() {
    let (home, ix) = index_in(UidMode::Own);
    let dir = home.path().join(INDEX_DIR);
    let pad = (APPLY_AT / 4) as usize;
    for n in 0..3 {
        assert_eq!(
            record_padded(&ix, home.path(), &format!("m{n}"), pad).unwrap(),
            Recorded::Deferred
        );
    }
    assert!(pending::waiting(&dir));
    assert!(subjects_and_uids(&ix, "INBOX").is_empty());
    // The fourth crosses APPLY_AT: it opens the index, which records all four.
    assert_eq!(
        record_padded(&ix, home.path(), "m3", pad).unwrap(),
        Recorded::Deferred
    );
    assert!(!pending::waiting(&dir));
    let got: Vec<String> = subjects_and_uids(&ix, "INBOX")
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(got, ["m0", "m1", "m2", "m3"]);
}

#[test]
fn a_pending_file_past_8_mib_takes_no_more_rows() {
    let (home, ix) = index_in(UidMode::Own);
    let path = home.path().join(INDEX_DIR).join(PENDING_FILE);
    std::fs::write(&path, vec![0u8; (pending::MAX_LEN + 1) as usize]).unwrap();
    let e = record_padded(&ix, home.path(), "late", 0).unwrap_err();
    assert!(e.to_string().contains("over 8 MiB"), "{e}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        pending::MAX_LEN + 1
    );
}
