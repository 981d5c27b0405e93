//! One copy for many recipients: within one transaction, the message files
//! already saved that later copies of the same bytes and the same owner
//! hard-link instead of writing them again, and which copy is being written
//! now (the others wait for it rather than write their own). Must not touch
//! files (the Maildir store links and writes), and holds its lock only to
//! look or mark, never while a file is written.

use std::sync::{Condvar, Mutex, MutexGuard};

use mailstow_maildir::{Saved, Source};

/// What makes two copies of one transaction the same file: the trace block
/// above the message (the message is the transaction's spool) and who owns
/// the files (uid, gid; None: this process, for every mailbox).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub header: Vec<u8>,
    pub owner: Option<(u32, u32)>,
}

/// The files of one transaction's copies.
#[derive(Default)]
pub struct SharedCopies {
    slots: Mutex<Vec<(Key, State)>>,
    /// Wakes the copies waiting for a file being written (done or failed).
    changed: Condvar,
}

#[derive(Debug)]
enum State {
    /// A recipient is writing this copy now.
    Writing,
    /// Durable, at this path: link it.
    Saved(Source),
    /// The writer failed: the next copy writes.
    Free,
}

/// What a copy should do.
pub enum Claim<'a> {
    /// Link this durable file (write one if that fails: see
    /// [`SharedCopies::offer`]).
    Link(Source),
    /// Write the file; the others wait until [`Writer::done`] or the drop.
    Write(Writer<'a>),
}

/// The right and the duty to write one key's file.
pub struct Writer<'a> {
    copies: &'a SharedCopies,
    key: Key,
}

impl SharedCopies {
    /// Link or write a copy with `key`: waits while another recipient is
    /// writing it.
    pub fn claim(&self, key: &Key) -> Claim<'_> {
        let mut slots = self.lock();
        loop {
            let Some(at) = slots.iter().position(|(k, _)| k == key) else {
                slots.push((key.clone(), State::Writing));
                return self.writer(key);
            };
            match &slots[at].1 {
                State::Saved(source) => return Claim::Link(source.clone()),
                State::Free => {
                    slots[at].1 = State::Writing;
                    return self.writer(key);
                }
                State::Writing => {
                    slots = self.changed.wait(slots).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// A copy written because linking `key`'s file failed (it is gone, or
    /// on another file system): later copies link this one.
    pub fn offer(&self, key: &Key, saved: &Saved) {
        if let Ok(source) = Source::of(saved) {
            self.set(key, State::Saved(source));
        }
    }

    fn writer(&self, key: &Key) -> Claim<'_> {
        Claim::Write(Writer {
            copies: self,
            key: key.clone(),
        })
    }

    fn set(&self, key: &Key, state: State) {
        let mut slots = self.lock();
        match slots.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = state,
            None => slots.push((key.clone(), state)),
        }
        drop(slots);
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Key, State)>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Writer<'_> {
    /// The file is durable: the copies waiting, and later ones, link it.
    pub fn done(self, saved: &Saved) {
        self.copies.offer(&self.key, saved);
    }
}

impl Drop for Writer<'_> {
    /// Not written (an error, or `done` could not stat it): the next copy
    /// writes. After `done`, the slot holds the file and stays so.
    fn drop(&mut self) {
        let mut slots = self.copies.lock();
        if let Some(slot) = slots.iter_mut().find(|(k, _)| *k == self.key) {
            if matches!(slot.1, State::Writing) {
                slot.1 = State::Free;
            }
        }
        drop(slots);
        self.copies.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailstow_maildir::{Body, Content, Flags, FolderEncoding, Maildir};
    use std::time::SystemTime;

    fn key(owner: u32) -> Key {
        Key {
            header: b"Return-Path: <s@example.org>\n".to_vec(),
            owner: Some((owner, owner)),
        }
    }

    fn save(md: &Maildir) -> Saved {
        let content = Content {
            header: b"",
            body: Body::Bytes(b"Subject: x\r\n\r\nhi\r\n"),
            bare_lf: 0,
        };
        md.save(
            "INBOX",
            true,
            &Flags::default(),
            &content,
            SystemTime::now(),
        )
        .unwrap()
    }

    #[test]
    fn the_first_claim_writes_the_waiting_ones_link_what_it_saved() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path().join("m"), None, FolderEncoding::Utf7, "mx");
        let copies = SharedCopies::default();
        let Claim::Write(writer) = copies.claim(&key(1)) else {
            panic!("the first claim writes")
        };
        // Another owner's copy is not this file: it writes its own.
        assert!(matches!(copies.claim(&key(2)), Claim::Write(_)));
        std::thread::scope(|s| {
            let waiting = s.spawn(|| match copies.claim(&key(1)) {
                Claim::Link(source) => source.path,
                Claim::Write(_) => panic!("a second writer"),
            });
            let saved = save(&md);
            writer.done(&saved);
            assert_eq!(waiting.join().unwrap(), saved.path);
        });
    }

    #[test]
    fn a_writer_that_fails_hands_the_write_to_the_next_copy() {
        let copies = SharedCopies::default();
        let first = copies.claim(&key(1));
        assert!(matches!(first, Claim::Write(_)));
        std::thread::scope(|s| {
            let next = s.spawn(|| matches!(copies.claim(&key(1)), Claim::Write(_)));
            drop(first);
            assert!(next.join().unwrap(), "the next copy writes");
        });
    }
}
